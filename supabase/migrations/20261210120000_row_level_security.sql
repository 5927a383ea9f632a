-- Asistente: every table closed to Supabase's Data API (PostgreSQL / Supabase).
-- On Supabase the `public` schema is served over HTTP (PostgREST) to anyone holding the project's anon key, and its
-- default privileges grant the `anon` and `authenticated` roles every right on each new table there. Nothing here is
-- meant for that API: Asistente connects as the tables' owner, whom row-level security does not restrict (it is not
-- FORCEd), so enabling it without any policy leaves those roles no row to read or write; their privileges (and those
-- on the identity sequences, whose values count customers and messages) are revoked as well. On a PostgreSQL without
-- those roles only row-level security applies. `asistente db migrate` does the same for LangGraph's checkpoint tables,
-- created after the migrations, and for any table present that is still open; a later migration that creates a table
-- should still close it itself, for `supabase db push`.

ALTER TABLE clients ENABLE ROW LEVEL SECURITY;
ALTER TABLE appointments ENABLE ROW LEVEL SECURITY;
ALTER TABLE calendar_claims ENABLE ROW LEVEL SECURITY;
ALTER TABLE inbound_messages ENABLE ROW LEVEL SECURITY;
ALTER TABLE outbox ENABLE ROW LEVEL SECURITY;
ALTER TABLE calendar_events ENABLE ROW LEVEL SECURITY;
ALTER TABLE reminders ENABLE ROW LEVEL SECURITY;
ALTER TABLE conversations ENABLE ROW LEVEL SECURITY;
ALTER TABLE system_events ENABLE ROW LEVEL SECURITY;
ALTER TABLE outbox_early_status ENABLE ROW LEVEL SECURITY;
ALTER TABLE client_emails ENABLE ROW LEVEL SECURITY;

DO $$
DECLARE
    grantee text;
BEGIN
    FOR grantee IN SELECT quote_ident(rolname) FROM pg_roles WHERE rolname IN ('anon', 'authenticated') LOOP
        EXECUTE format(
            'REVOKE ALL ON TABLE clients, appointments, calendar_claims, inbound_messages, outbox, calendar_events, '
            'reminders, conversations, system_events, outbox_early_status, client_emails FROM %s',
            grantee
        );
        EXECUTE format(
            'REVOKE ALL ON SEQUENCE clients_id_seq, inbound_messages_id_seq, outbox_id_seq, calendar_events_id_seq, '
            'reminders_id_seq, system_events_id_seq, outbox_early_status_id_seq FROM %s',
            grantee
        );
    END LOOP;
END
$$;
