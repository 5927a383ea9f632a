"""Wire adapters for third parties, without business rules: `twilio/` (WhatsApp) and `calendly/` (API v2)."""
