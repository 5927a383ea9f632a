"""Typed tools the model calls, and the adapters behind them (calendars, client directory, WhatsApp sender)."""
