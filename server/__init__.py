"""FastAPI app (Twilio and Calendly webhooks, admin API, health, metrics), the background worker and the CLI.

Flow: a webhook is verified and stored (`intake`, `calendly_events`), answered at once, and the `worker` runs the
turns under a per-conversation lease (`turns`), writes replies to the outbox and delivers it (`delivery`).
`app.create_app` is the factory; `runtime.open_runtime` opens the same services for `asistente worker`.

Decisions worth knowing:
- Webhooks without a configured secret (TWILIO_AUTH_TOKEN, CALENDLY_WEBHOOK_SIGNING_KEY) are refused with 403;
  `asistente serve --allow-unsigned-webhooks` (`ServerOptions.allow_unsigned_webhooks`) accepts them, for
  development only.
- A due reminder goes straight to the outbox as kind 'reminder' (template outside the 24-hour window), not
  through an agent turn: it must go out exactly once whatever the model would say (see `reminders`).
- Replies are linked to the earliest message of their turn, so reply latency is the longest a customer waited.
"""
