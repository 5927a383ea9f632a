-- Asistente: indexes for the hottest lookups (SQLite). Mirrors
-- supabase/migrations/20261124140000_hot_query_indexes.sql.
-- Without them each of these scans its whole table, which only grows:
--   inbound_messages (received_at)  statistics: messages received since a moment (all senders);
--   outbox (created_at)             statistics: messages queued since a moment;
--   clients (phone, id)             matching a Calendly invitee to a customer by phone (first client by id).
-- IF NOT EXISTS keeps the file safe to run again.

CREATE INDEX IF NOT EXISTS inbound_messages_received_idx ON inbound_messages (received_at);
CREATE INDEX IF NOT EXISTS outbox_created_idx ON outbox (created_at);
CREATE INDEX IF NOT EXISTS clients_phone_idx ON clients (phone, id);
