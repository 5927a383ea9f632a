-- Asistente: initial schema (SQLite, the embedded default). Mirrors supabase/migrations/20261124120000_initial_schema.sql:
-- timestamps are fixed-width UTC text, JSON is text, booleans are integers.

CREATE TABLE IF NOT EXISTS clients (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    wa_id           TEXT NOT NULL UNIQUE,
    phone           TEXT NOT NULL,
    name            TEXT,
    profile_name    TEXT,
    email           TEXT,
    language        TEXT,
    preferences     TEXT NOT NULL DEFAULT '{}',
    notes           TEXT,
    last_visit_at   TEXT,
    created_at      TEXT NOT NULL,
    updated_at      TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS clients_email_idx ON clients (lower(email));

CREATE TABLE IF NOT EXISTS appointments (
    id                  TEXT PRIMARY KEY,
    client_id           INTEGER REFERENCES clients (id),
    service             TEXT NOT NULL,
    start_at            TEXT NOT NULL,
    end_at              TEXT NOT NULL,
    status              TEXT NOT NULL CHECK (status IN ('confirmed', 'cancelled')),
    source              TEXT NOT NULL CHECK (source IN ('agent', 'calendly', 'staff')),
    calendar            TEXT NOT NULL CHECK (calendar IN ('local', 'calendly')),
    price_eur           NUMERIC,
    notes               TEXT,
    external_id         TEXT UNIQUE,
    external_invitee    TEXT,
    idempotency_key     TEXT UNIQUE,
    cancel_reason       TEXT,
    created_at          TEXT NOT NULL,
    updated_at          TEXT NOT NULL,
    cancelled_at        TEXT,
    CHECK (end_at > start_at)
);
CREATE INDEX IF NOT EXISTS appointments_client_idx ON appointments (client_id, start_at);
CREATE INDEX IF NOT EXISTS appointments_start_idx ON appointments (start_at) WHERE status = 'confirmed';

CREATE TABLE IF NOT EXISTS calendar_claims (
    resource        INTEGER NOT NULL,
    slot_start      TEXT NOT NULL,
    appointment_id  TEXT NOT NULL REFERENCES appointments (id) ON DELETE CASCADE,
    PRIMARY KEY (resource, slot_start)
);
CREATE INDEX IF NOT EXISTS calendar_claims_appointment_idx ON calendar_claims (appointment_id);

CREATE TABLE IF NOT EXISTS inbound_messages (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    message_sid     TEXT NOT NULL UNIQUE,
    wa_id           TEXT NOT NULL,
    profile_name    TEXT,
    body            TEXT NOT NULL DEFAULT '',
    button_payload  TEXT,
    media           TEXT NOT NULL DEFAULT '[]',
    raw             TEXT NOT NULL DEFAULT '{}',
    status          TEXT NOT NULL DEFAULT 'pending'
                    CHECK (status IN ('pending', 'processing', 'processed', 'rate_limited', 'paused', 'failed')),
    error           TEXT,
    received_at     TEXT NOT NULL,
    processed_at    TEXT
);
CREATE INDEX IF NOT EXISTS inbound_messages_pending_idx ON inbound_messages (wa_id, id) WHERE status = 'pending';
CREATE INDEX IF NOT EXISTS inbound_messages_sender_idx ON inbound_messages (wa_id, received_at);

CREATE TABLE IF NOT EXISTS outbox (
    id                  INTEGER PRIMARY KEY AUTOINCREMENT,
    wa_id               TEXT NOT NULL,
    body                TEXT NOT NULL,
    kind                TEXT NOT NULL DEFAULT 'reply',
    template_sid        TEXT,
    template_variables  TEXT,
    status              TEXT NOT NULL DEFAULT 'pending'
                        CHECK (status IN ('pending', 'sending', 'sent', 'delivered', 'read', 'failed', 'undeliverable')),
    attempts            INTEGER NOT NULL DEFAULT 0,
    next_attempt_at     TEXT NOT NULL,
    twilio_sid          TEXT UNIQUE,
    error_code          TEXT,
    error_message       TEXT,
    dedupe_key          TEXT UNIQUE,
    inbound_message_id  INTEGER REFERENCES inbound_messages (id),
    created_at          TEXT NOT NULL,
    updated_at          TEXT NOT NULL,
    sent_at             TEXT
);
CREATE INDEX IF NOT EXISTS outbox_due_idx ON outbox (next_attempt_at) WHERE status = 'pending';
CREATE INDEX IF NOT EXISTS outbox_wa_idx ON outbox (wa_id, id);

CREATE TABLE IF NOT EXISTS calendar_events (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    delivery_key    TEXT NOT NULL UNIQUE,
    event_type      TEXT NOT NULL,
    external_id     TEXT,
    payload         TEXT NOT NULL,
    status          TEXT NOT NULL DEFAULT 'received'
                    CHECK (status IN ('received', 'processed', 'ignored', 'failed')),
    appointment_id  TEXT REFERENCES appointments (id),
    error           TEXT,
    received_at     TEXT NOT NULL,
    processed_at    TEXT
);

CREATE TABLE IF NOT EXISTS reminders (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    appointment_id  TEXT NOT NULL REFERENCES appointments (id) ON DELETE CASCADE,
    offset_minutes  INTEGER NOT NULL,
    due_at          TEXT NOT NULL,
    status          TEXT NOT NULL DEFAULT 'scheduled'
                    CHECK (status IN ('scheduled', 'sending', 'sent', 'cancelled', 'failed')),
    claimed_by      TEXT,
    claimed_at      TEXT,
    sent_at         TEXT,
    UNIQUE (appointment_id, offset_minutes)
);
CREATE INDEX IF NOT EXISTS reminders_due_idx ON reminders (due_at) WHERE status = 'scheduled';

CREATE TABLE IF NOT EXISTS conversations (
    wa_id               TEXT PRIMARY KEY,
    paused              INTEGER NOT NULL DEFAULT 0,
    paused_by           TEXT,
    paused_at           TEXT,
    last_inbound_at     TEXT,
    rate_notice_at      TEXT,
    lease_owner         TEXT,
    lease_until         TEXT,
    updated_at          TEXT NOT NULL
);
