-- Asistente: write-ahead intents for calendar writes made in another system (SQLite). Mirrors
-- supabase/migrations/20261220080000_write_intents.sql.
-- A Calendly booking, cancellation or reschedule is an HTTP call whose answer can be lost: the process dies while it
-- is in flight, or the connection drops after Calendly acted. Each such write is recorded here, and committed, before
-- the call, under a key stable for that one logical write. A write still 'pending' afterwards is settled by asking
-- Calendly what happened (when the turn runs again, or in the worker's sweep) before anything is written again; a
-- write Calendly turns out to hold is stored as if its answer had arrived.
-- action: 'book' (a new booking), 'cancel' (a customer's cancellation), 'move' (a reschedule's new booking) and
-- 'release' (cancelling the event a reschedule moved away from). status: 'pending' until the outcome is stored, then
-- 'done'; 'failed' when Calendly refused; 'abandoned' when, long after, Calendly holds nothing of it.

CREATE TABLE IF NOT EXISTS write_intents (
    intent_key      TEXT PRIMARY KEY,
    action          TEXT NOT NULL CHECK (action IN ('book', 'cancel', 'move', 'release')),
    status          TEXT NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'done', 'failed', 'abandoned')),
    client_id       INTEGER REFERENCES clients (id) ON DELETE SET NULL,
    appointment_id  TEXT,
    service         TEXT NOT NULL,
    event_type      TEXT,
    start_at        TEXT NOT NULL,
    end_at          TEXT NOT NULL,
    email           TEXT,
    target          TEXT,
    appointment_key TEXT,
    price_eur       NUMERIC,
    notes           TEXT,
    attempts        INTEGER NOT NULL DEFAULT 1,
    error           TEXT,
    created_at      TEXT NOT NULL,
    updated_at      TEXT NOT NULL,
    finished_at     TEXT
);
CREATE INDEX IF NOT EXISTS write_intents_pending_idx ON write_intents (updated_at) WHERE status = 'pending';
CREATE INDEX IF NOT EXISTS write_intents_client_idx ON write_intents (client_id) WHERE status = 'pending';
