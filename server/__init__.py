"""The service: FastAPI app, the durable message pipeline, the Calendly mirror and operations.

Rooms, in the order a message meets them:
- `http/`: thin handlers (one router per resource), dependencies, admin auth, error answers.
- `pipeline/`: the durable message path in flow order: `intake` (verify, deduplicate, store), `worker` (loops),
  `turns` (one conversation under a lease, messages folded into one turn), `outbox` and `delivery` (the 24-hour
  rule, templates, retries), `reminders`, `handoff`.
- `calendar_sync/`: Calendly -> appointments (webhook deliveries and the catch-up sync), injected as system turns.
- `ops/`: health, probes, statistics, Prometheus metrics.
`wiring.py` is the one composition root (settings -> services); `app.py` only builds the FastAPI app around it.

Decisions worth knowing:
- Webhooks without a configured secret (TWILIO_AUTH_TOKEN, CALENDLY_WEBHOOK_SIGNING_KEY) are refused with 403;
  `asistente serve --allow-unsigned-webhooks` (`ServerOptions.allow_unsigned_webhooks`) accepts them, for
  development only.
- A due reminder goes straight to the outbox as kind 'reminder' (template outside the 24-hour window), not
  through an agent turn: it must go out exactly once whatever the model would say (see `pipeline.reminders`).
- Replies are linked to the earliest message of their turn, so reply latency is the longest a customer waited.
"""
