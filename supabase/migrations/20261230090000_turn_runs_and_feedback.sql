-- Asistente: each turn's traced run, and feedback on it (PostgreSQL / Supabase).
-- A turn is ('customer', id of the first inbound message it folded) or ('system', system_events.id). Each run of it
-- (a failed turn is run again, each time as a new run) is traced in LangSmith under a run id known before it starts,
-- and recorded here so staff can rate "the reply to this message" or "this outgoing message" without knowing run ids.
-- Feedback (staff ratings, and signals the system already has: a hand-off, a failed turn...) is stored first and sent
-- to LangSmith afterwards, under its own `feedback_id`, so a resend after a crash or an outage is not counted twice.

CREATE TABLE IF NOT EXISTS turn_runs (
    run_id          TEXT PRIMARY KEY,              -- the LangSmith root run of one run of the turn (a UUID)
    trace_id        TEXT NOT NULL,
    wa_id           TEXT NOT NULL,
    kind            TEXT NOT NULL CHECK (kind IN ('customer', 'system')),
    turn_ref        BIGINT NOT NULL,               -- first inbound_messages.id folded, or system_events.id
    message_sids    JSONB NOT NULL DEFAULT '[]'::jsonb,  -- the customer messages the turn folded
    outcome         TEXT NOT NULL,                 -- booked, handed_off, answered, failed...
    appointment_ids JSONB NOT NULL DEFAULT '[]'::jsonb,  -- appointments the turn wrote
    created_at      TIMESTAMPTZ NOT NULL
);
CREATE INDEX IF NOT EXISTS turn_runs_turn_idx ON turn_runs (kind, turn_ref, created_at);
CREATE INDEX IF NOT EXISTS turn_runs_customer_idx ON turn_runs (wa_id, created_at);

CREATE TABLE IF NOT EXISTS turn_feedback (
    id              BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    run_id          TEXT NOT NULL REFERENCES turn_runs (run_id) ON DELETE CASCADE,
    key             TEXT NOT NULL,                 -- 'staff_rating', 'handoff', 'turn_failed'...
    score           DOUBLE PRECISION,
    comment         TEXT,
    source          TEXT NOT NULL CHECK (source IN ('staff', 'system')),
    author          TEXT,                          -- the admin token's subject (staff), never a customer's data
    feedback_id     TEXT NOT NULL UNIQUE,          -- the id LangSmith gets: sending it again changes nothing
    created_at      TIMESTAMPTZ NOT NULL,
    sent_at         TIMESTAMPTZ,                   -- NULL until LangSmith accepted it
    attempts        INTEGER NOT NULL DEFAULT 0,
    next_attempt_at TIMESTAMPTZ,                   -- not tried again before then (NULL: now); holds a send in flight
    last_error      TEXT
);
CREATE INDEX IF NOT EXISTS turn_feedback_run_idx ON turn_feedback (run_id, id);
CREATE INDEX IF NOT EXISTS turn_feedback_unsent_idx ON turn_feedback (id) WHERE sent_at IS NULL;

-- Closed to Supabase's Data API like every table (see 20261210120000_row_level_security.sql).
ALTER TABLE turn_runs ENABLE ROW LEVEL SECURITY;
ALTER TABLE turn_feedback ENABLE ROW LEVEL SECURITY;
DO $$
DECLARE
    grantee text;
BEGIN
    FOR grantee IN SELECT quote_ident(rolname) FROM pg_roles WHERE rolname IN ('anon', 'authenticated') LOOP
        EXECUTE format('REVOKE ALL ON TABLE turn_runs, turn_feedback FROM %s', grantee);
        EXECUTE format('REVOKE ALL ON SEQUENCE turn_feedback_id_seq FROM %s', grantee);
    END LOOP;
END
$$;
