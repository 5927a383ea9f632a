-- Asistente: initial schema (PostgreSQL / Supabase). Applied by `asistente db migrate`; safe to run twice.

CREATE TABLE IF NOT EXISTS clients (
    id              BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    wa_id           TEXT NOT NULL UNIQUE,          -- WhatsApp address, e.g. 'whatsapp:+34600123456'
    phone           TEXT NOT NULL,
    name            TEXT,
    profile_name    TEXT,                           -- the WhatsApp profile name Twilio reports
    email           TEXT,
    language        TEXT,
    preferences     JSONB NOT NULL DEFAULT '{}'::jsonb,
    notes           TEXT,
    last_visit_at   TIMESTAMPTZ,
    created_at      TIMESTAMPTZ NOT NULL,
    updated_at      TIMESTAMPTZ NOT NULL
);
CREATE INDEX IF NOT EXISTS clients_email_idx ON clients (lower(email));

CREATE TABLE IF NOT EXISTS appointments (
    id                  TEXT PRIMARY KEY,
    client_id           BIGINT REFERENCES clients (id),
    service             TEXT NOT NULL,
    start_at            TIMESTAMPTZ NOT NULL,
    end_at              TIMESTAMPTZ NOT NULL,
    status              TEXT NOT NULL CHECK (status IN ('confirmed', 'cancelled')),
    source              TEXT NOT NULL CHECK (source IN ('agent', 'calendly', 'staff')),
    calendar            TEXT NOT NULL CHECK (calendar IN ('local', 'calendly')),
    price_eur           NUMERIC(10, 2),
    notes               TEXT,
    external_id         TEXT UNIQUE,                -- Calendly scheduled event URI
    external_invitee    TEXT,                       -- Calendly invitee URI
    idempotency_key     TEXT UNIQUE,                -- one confirmed action never books twice
    cancel_reason       TEXT,
    created_at          TIMESTAMPTZ NOT NULL,
    updated_at          TIMESTAMPTZ NOT NULL,
    cancelled_at        TIMESTAMPTZ,
    CHECK (end_at > start_at)
);
CREATE INDEX IF NOT EXISTS appointments_client_idx ON appointments (client_id, start_at);
CREATE INDEX IF NOT EXISTS appointments_start_idx ON appointments (start_at) WHERE status = 'confirmed';

-- The local calendar's seats: one row per (chair, slot) an appointment occupies. The primary key makes a double
-- booking impossible whatever the application does.
CREATE TABLE IF NOT EXISTS calendar_claims (
    resource        INTEGER NOT NULL,
    slot_start      TIMESTAMPTZ NOT NULL,
    appointment_id  TEXT NOT NULL REFERENCES appointments (id) ON DELETE CASCADE,
    PRIMARY KEY (resource, slot_start)
);
CREATE INDEX IF NOT EXISTS calendar_claims_appointment_idx ON calendar_claims (appointment_id);

CREATE TABLE IF NOT EXISTS inbound_messages (
    id              BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    message_sid     TEXT NOT NULL UNIQUE,
    wa_id           TEXT NOT NULL,
    profile_name    TEXT,
    body            TEXT NOT NULL DEFAULT '',
    button_payload  TEXT,
    media           JSONB NOT NULL DEFAULT '[]'::jsonb,
    raw             JSONB NOT NULL DEFAULT '{}'::jsonb,
    status          TEXT NOT NULL DEFAULT 'pending'
                    CHECK (status IN ('pending', 'processing', 'processed', 'rate_limited', 'paused', 'failed')),
    error           TEXT,
    received_at     TIMESTAMPTZ NOT NULL,
    processed_at    TIMESTAMPTZ
);
CREATE INDEX IF NOT EXISTS inbound_messages_pending_idx ON inbound_messages (wa_id, id) WHERE status = 'pending';
CREATE INDEX IF NOT EXISTS inbound_messages_sender_idx ON inbound_messages (wa_id, received_at);

CREATE TABLE IF NOT EXISTS outbox (
    id                  BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    wa_id               TEXT NOT NULL,
    body                TEXT NOT NULL,
    kind                TEXT NOT NULL DEFAULT 'reply',   -- reply, system, confirmation, reminder, cancellation, staff
    template_sid        TEXT,
    template_variables  JSONB,
    status              TEXT NOT NULL DEFAULT 'pending'
                        CHECK (status IN ('pending', 'sending', 'sent', 'delivered', 'read', 'failed', 'undeliverable')),
    attempts            INTEGER NOT NULL DEFAULT 0,
    next_attempt_at     TIMESTAMPTZ NOT NULL,
    twilio_sid          TEXT UNIQUE,
    error_code          TEXT,
    error_message       TEXT,
    dedupe_key          TEXT UNIQUE,
    inbound_message_id  BIGINT REFERENCES inbound_messages (id),
    created_at          TIMESTAMPTZ NOT NULL,
    updated_at          TIMESTAMPTZ NOT NULL,
    sent_at             TIMESTAMPTZ
);
CREATE INDEX IF NOT EXISTS outbox_due_idx ON outbox (next_attempt_at) WHERE status = 'pending';
CREATE INDEX IF NOT EXISTS outbox_wa_idx ON outbox (wa_id, id);

CREATE TABLE IF NOT EXISTS calendar_events (
    id              BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    delivery_key    TEXT NOT NULL UNIQUE,           -- one row per webhook delivery, however often it is retried
    event_type      TEXT NOT NULL,
    external_id     TEXT,
    payload         JSONB NOT NULL,
    status          TEXT NOT NULL DEFAULT 'received'
                    CHECK (status IN ('received', 'processed', 'ignored', 'failed')),
    appointment_id  TEXT REFERENCES appointments (id),
    error           TEXT,
    received_at     TIMESTAMPTZ NOT NULL,
    processed_at    TIMESTAMPTZ
);

CREATE TABLE IF NOT EXISTS reminders (
    id              BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    appointment_id  TEXT NOT NULL REFERENCES appointments (id) ON DELETE CASCADE,
    offset_minutes  INTEGER NOT NULL,
    due_at          TIMESTAMPTZ NOT NULL,
    status          TEXT NOT NULL DEFAULT 'scheduled'
                    CHECK (status IN ('scheduled', 'sending', 'sent', 'cancelled', 'failed')),
    claimed_by      TEXT,
    claimed_at      TIMESTAMPTZ,
    sent_at         TIMESTAMPTZ,
    UNIQUE (appointment_id, offset_minutes)
);
CREATE INDEX IF NOT EXISTS reminders_due_idx ON reminders (due_at) WHERE status = 'scheduled';

-- Per-conversation state: staff takeover, WhatsApp's 24-hour window, and the lease one worker holds on it.
CREATE TABLE IF NOT EXISTS conversations (
    wa_id               TEXT PRIMARY KEY,
    paused              BOOLEAN NOT NULL DEFAULT FALSE,
    paused_by           TEXT,
    paused_at           TIMESTAMPTZ,
    last_inbound_at     TIMESTAMPTZ,
    rate_notice_at      TIMESTAMPTZ,
    lease_owner         TEXT,
    lease_until         TIMESTAMPTZ,
    updated_at          TIMESTAMPTZ NOT NULL
);
