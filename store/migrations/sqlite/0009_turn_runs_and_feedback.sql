-- Asistente: each turn's traced run, and feedback on it (SQLite). Mirrors
-- supabase/migrations/20261230090000_turn_runs_and_feedback.sql.
-- A turn is ('customer', id of the first inbound message it folded) or ('system', system_events.id). Each run of it
-- (a failed turn is run again, each time as a new run) is traced in LangSmith under a run id known before it starts,
-- and recorded here so staff can rate "the reply to this message" or "this outgoing message" without knowing run ids.
-- Feedback (staff ratings, and signals the system already has: a hand-off, a failed turn...) is stored first and sent
-- to LangSmith afterwards, under its own `feedback_id`, so a resend after a crash or an outage is not counted twice.

CREATE TABLE IF NOT EXISTS turn_runs (
    run_id          TEXT PRIMARY KEY,
    trace_id        TEXT NOT NULL,
    wa_id           TEXT NOT NULL,
    kind            TEXT NOT NULL CHECK (kind IN ('customer', 'system')),
    turn_ref        INTEGER NOT NULL,
    message_sids    TEXT NOT NULL DEFAULT '[]',
    outcome         TEXT NOT NULL,
    appointment_ids TEXT NOT NULL DEFAULT '[]',
    created_at      TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS turn_runs_turn_idx ON turn_runs (kind, turn_ref, created_at);
CREATE INDEX IF NOT EXISTS turn_runs_customer_idx ON turn_runs (wa_id, created_at);

CREATE TABLE IF NOT EXISTS turn_feedback (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    run_id          TEXT NOT NULL REFERENCES turn_runs (run_id) ON DELETE CASCADE,
    key             TEXT NOT NULL,
    score           REAL,
    comment         TEXT,
    source          TEXT NOT NULL CHECK (source IN ('staff', 'system')),
    author          TEXT,
    feedback_id     TEXT NOT NULL UNIQUE,
    created_at      TEXT NOT NULL,
    sent_at         TEXT,
    attempts        INTEGER NOT NULL DEFAULT 0,
    next_attempt_at TEXT,
    last_error      TEXT
);
CREATE INDEX IF NOT EXISTS turn_feedback_run_idx ON turn_feedback (run_id, id);
CREATE INDEX IF NOT EXISTS turn_feedback_unsent_idx ON turn_feedback (id) WHERE sent_at IS NULL;
