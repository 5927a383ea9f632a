-- Asistente: system events queued for the worker (PostgreSQL / Supabase).
-- A calendar change made elsewhere (Calendly) becomes a system turn for the customer's conversation; it is queued
-- here so the worker runs it under the same per-conversation lease as customer messages, after the webhook answered.

CREATE TABLE IF NOT EXISTS system_events (
    id                  BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    wa_id               TEXT NOT NULL,
    source              TEXT NOT NULL,                 -- 'calendly', 'staff'
    description         TEXT NOT NULL,                 -- what the agent is told, e.g. "appointment cancelled on Calendly"
    kind_hint           TEXT,                          -- outbound kind for what the agent sends in that turn
    template_variables  JSONB,                         -- ContentVariables if that message needs a template
    dedupe_key          TEXT NOT NULL UNIQUE,          -- one system turn per source event, however often retried
    status              TEXT NOT NULL DEFAULT 'pending'
                        CHECK (status IN ('pending', 'processing', 'processed', 'paused', 'failed')),
    error               TEXT,
    created_at          TIMESTAMPTZ NOT NULL,
    processed_at        TIMESTAMPTZ
);
CREATE INDEX IF NOT EXISTS system_events_open_idx ON system_events (wa_id, id) WHERE status IN ('pending', 'processing');
CREATE INDEX IF NOT EXISTS inbound_messages_open_idx ON inbound_messages (wa_id, id) WHERE status = 'processing';
CREATE INDEX IF NOT EXISTS outbox_open_idx ON outbox (wa_id, id) WHERE status IN ('pending', 'sending');
CREATE INDEX IF NOT EXISTS calendar_events_received_idx ON calendar_events (received_at) WHERE status = 'received';
