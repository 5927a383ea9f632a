-- Asistente: retrying turns after a transient agent failure (SQLite). Mirrors
-- supabase/migrations/20261124150000_turn_retries.sql.
-- A turn that fails (e.g. the model provider is down) puts its messages or event back to 'pending' with a backoff
-- instead of failing them for good; `attempts` counts the failed turns, `next_attempt_at` is when to try again
-- (NULL: as soon as possible).

ALTER TABLE inbound_messages ADD COLUMN attempts INTEGER NOT NULL DEFAULT 0;
ALTER TABLE inbound_messages ADD COLUMN next_attempt_at TEXT;
ALTER TABLE system_events ADD COLUMN attempts INTEGER NOT NULL DEFAULT 0;
ALTER TABLE system_events ADD COLUMN next_attempt_at TEXT;
