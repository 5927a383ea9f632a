-- Asistente: status callbacks that arrive before their message's SID is recorded (SQLite).
-- Mirrors supabase/migrations/20261124160000_outbox_early_status.sql.
-- Twilio may call the status webhook before the worker has stored the SID from the create response (the two race);
-- such a callback is kept here and applied by `mark_sent` when the SID is recorded, instead of being dropped.

CREATE TABLE IF NOT EXISTS outbox_early_status (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    twilio_sid      TEXT NOT NULL,
    status          TEXT NOT NULL,
    error_code      TEXT,
    error_message   TEXT,
    received_at     TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS outbox_early_status_sid_idx ON outbox_early_status (twilio_sid);
CREATE INDEX IF NOT EXISTS outbox_early_status_received_idx ON outbox_early_status (received_at);
