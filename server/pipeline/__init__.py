"""The durable message path, in flow order: intake -> worker -> turns -> outbox -> delivery; reminders, hand-off."""
