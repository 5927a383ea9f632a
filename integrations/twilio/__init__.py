"""Twilio (WhatsApp): webhook models and signature, the REST transport, message splitting."""
