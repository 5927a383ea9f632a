-- Asistente: retrying turns after a transient agent failure (PostgreSQL / Supabase).
-- A turn that fails (e.g. the model provider is down) puts its messages or event back to 'pending' with a backoff
-- instead of failing them for good; `attempts` counts the failed turns, `next_attempt_at` is when to try again
-- (NULL: as soon as possible).

ALTER TABLE inbound_messages ADD COLUMN IF NOT EXISTS attempts INTEGER NOT NULL DEFAULT 0;
ALTER TABLE inbound_messages ADD COLUMN IF NOT EXISTS next_attempt_at TIMESTAMPTZ;
ALTER TABLE system_events ADD COLUMN IF NOT EXISTS attempts INTEGER NOT NULL DEFAULT 0;
ALTER TABLE system_events ADD COLUMN IF NOT EXISTS next_attempt_at TIMESTAMPTZ;
