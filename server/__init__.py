"""FastAPI app (Twilio and Calendly webhooks, admin API, health, metrics), the background worker and the CLI."""
