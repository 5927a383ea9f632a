-- Asistente: e-mail addresses proven to belong to a customer (SQLite). Mirrors
-- supabase/migrations/20261201120000_client_emails.sql.
-- `clients.email` is whatever the customer typed: it is still what the agent books with on Calendly, but anybody can
-- type anybody's address, so it never decides whose conversation a Calendly booking belongs to. A Calendly booking
-- without a matching phone number is matched by e-mail only through this table, which holds an address once it is
-- proven for a customer: the agent booked for that customer's WhatsApp number with it ('agent_booking'), or a
-- Calendly booking matched to that customer by phone carried it ('calendly_phone').
-- One row per (customer, address), not a column on `clients`: a customer may keep several proven addresses, typing a
-- new address must neither carry the old proof over to it nor erase it, and an address proven for two customers is
-- visible as such (and then matches neither). Addresses are stored trimmed and lower-cased; no backfill: nothing
-- recorded so far tells a typed address from one a booking was made with.

CREATE TABLE IF NOT EXISTS client_emails (
    client_id   INTEGER NOT NULL REFERENCES clients (id) ON DELETE CASCADE,
    email       TEXT NOT NULL,
    source      TEXT NOT NULL CHECK (source IN ('agent_booking', 'calendly_phone')),
    proven_at   TEXT NOT NULL,
    PRIMARY KEY (client_id, email)
);
CREATE INDEX IF NOT EXISTS client_emails_email_idx ON client_emails (email, client_id);
