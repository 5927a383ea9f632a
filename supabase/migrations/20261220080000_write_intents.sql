-- Asistente: write-ahead intents for calendar writes made in another system (PostgreSQL / Supabase).
-- A Calendly booking, cancellation or reschedule is an HTTP call whose answer can be lost: the process dies while it
-- is in flight, or the connection drops after Calendly acted. Each such write is recorded here, and committed, before
-- the call, under a key stable for that one logical write. A write still 'pending' afterwards is settled by asking
-- Calendly what happened (when the turn runs again, or in the worker's sweep) before anything is written again; a
-- write Calendly turns out to hold is stored as if its answer had arrived.

CREATE TABLE IF NOT EXISTS write_intents (
    intent_key      TEXT PRIMARY KEY,              -- stable for one logical write (e.g. the confirmed tool call)
    action          TEXT NOT NULL CHECK (action IN ('book', 'cancel', 'move', 'release')),
    status          TEXT NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'done', 'failed', 'abandoned')),
    client_id       BIGINT REFERENCES clients (id) ON DELETE SET NULL,  -- whose write it is
    appointment_id  TEXT,                          -- the appointment cancelled or moved; for a booking, once stored
    service         TEXT NOT NULL,
    event_type      TEXT,                          -- Calendly event type URI (book, move)
    start_at        TIMESTAMPTZ NOT NULL,          -- the time booked, or the start of the event cancelled
    end_at          TIMESTAMPTZ NOT NULL,
    email           TEXT,                          -- the invitee's address: what Calendly's events are searched by
    target          TEXT,                          -- the Calendly event cancelled (cancel, release)
    appointment_key TEXT,                          -- a booking's appointment idempotency key
    price_eur       NUMERIC(10, 2),
    notes           TEXT,                          -- a booking's notes, a cancellation's reason
    attempts        INTEGER NOT NULL DEFAULT 1,
    error           TEXT,
    created_at      TIMESTAMPTZ NOT NULL,
    updated_at      TIMESTAMPTZ NOT NULL,          -- when the last attempt began
    finished_at     TIMESTAMPTZ
);
CREATE INDEX IF NOT EXISTS write_intents_pending_idx ON write_intents (updated_at) WHERE status = 'pending';
CREATE INDEX IF NOT EXISTS write_intents_client_idx ON write_intents (client_id) WHERE status = 'pending';

-- Closed to Supabase's Data API like every table (see 20261210120000_row_level_security.sql).
ALTER TABLE write_intents ENABLE ROW LEVEL SECURITY;
DO $$
DECLARE
    grantee text;
BEGIN
    FOR grantee IN SELECT quote_ident(rolname) FROM pg_roles WHERE rolname IN ('anon', 'authenticated') LOOP
        EXECUTE format('REVOKE ALL ON TABLE write_intents FROM %s', grantee);
    END LOOP;
END
$$;
