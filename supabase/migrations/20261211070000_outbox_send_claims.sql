-- Asistente: checkable sends and Retry-After on outbox rows (PostgreSQL / Supabase).
-- Twilio has no idempotency key, so a worker that dies between its POST and recording the answer leaves a row
-- 'sending' without knowing whether the message went out. `claimed_at` is when the row was taken for its current
-- send, written before the request: recovery asks Twilio for messages to that customer since then before sending
-- again. `retry_not_before` is the moment Twilio's Retry-After asked us to wait for: re-driving a backlog after an
-- outage never brings a row forward past it. NULL in both for rows written before this version.

ALTER TABLE outbox ADD COLUMN IF NOT EXISTS claimed_at TIMESTAMPTZ;
ALTER TABLE outbox ADD COLUMN IF NOT EXISTS retry_not_before TIMESTAMPTZ;
CREATE INDEX IF NOT EXISTS outbox_sending_idx ON outbox (claimed_at) WHERE status = 'sending';
