-- Asistente: system events queued for the worker (SQLite). Mirrors supabase/migrations/20261124130000_system_events.sql.
-- A calendar change made elsewhere (Calendly) becomes a system turn for the customer's conversation; it is queued
-- here so the worker runs it under the same per-conversation lease as customer messages, after the webhook answered.

CREATE TABLE IF NOT EXISTS system_events (
    id                  INTEGER PRIMARY KEY AUTOINCREMENT,
    wa_id               TEXT NOT NULL,
    source              TEXT NOT NULL,
    description         TEXT NOT NULL,
    kind_hint           TEXT,
    template_variables  TEXT,
    dedupe_key          TEXT NOT NULL UNIQUE,
    status              TEXT NOT NULL DEFAULT 'pending'
                        CHECK (status IN ('pending', 'processing', 'processed', 'paused', 'failed')),
    error               TEXT,
    created_at          TEXT NOT NULL,
    processed_at        TEXT
);
CREATE INDEX IF NOT EXISTS system_events_open_idx ON system_events (wa_id, id) WHERE status IN ('pending', 'processing');
CREATE INDEX IF NOT EXISTS inbound_messages_open_idx ON inbound_messages (wa_id, id) WHERE status = 'processing';
CREATE INDEX IF NOT EXISTS outbox_open_idx ON outbox (wa_id, id) WHERE status IN ('pending', 'sending');
CREATE INDEX IF NOT EXISTS calendar_events_received_idx ON calendar_events (received_at) WHERE status = 'received';
