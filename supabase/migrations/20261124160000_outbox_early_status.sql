-- Asistente: status callbacks that arrive before their message's SID is recorded (PostgreSQL / Supabase).
-- Twilio may call the status webhook before the worker has stored the SID from the create response (the two race);
-- such a callback is kept here and applied by `mark_sent` when the SID is recorded, instead of being dropped.

CREATE TABLE IF NOT EXISTS outbox_early_status (
    id              BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    twilio_sid      TEXT NOT NULL,                 -- the message's SID as Twilio reported it
    status          TEXT NOT NULL,                 -- already mapped to an outbox status ('failed', 'delivered'...)
    error_code      TEXT,
    error_message   TEXT,
    received_at     TIMESTAMPTZ NOT NULL           -- old entries (a SID never recorded) are pruned
);
CREATE INDEX IF NOT EXISTS outbox_early_status_sid_idx ON outbox_early_status (twilio_sid);
CREATE INDEX IF NOT EXISTS outbox_early_status_received_idx ON outbox_early_status (received_at);
