"""Calendly -> appointments: webhook deliveries and the catch-up sync, told to the conversation as system turns."""
