"""Server tuning that is not deployment configuration: timings and limits, injected so tests can shrink them."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ServerOptions:
    """Knobs of the web app and the worker. Defaults suit production; tests pass small timings."""

    # Accept webhooks without a signature when the secret is not configured. Development only (a local tunnel
    # without Twilio credentials); with it off, an unconfigured secret means every webhook is refused with 403.
    allow_unsigned_webhooks: bool = False
    max_body_bytes: int = 64 * 1024
    # Wait this long after picking up a conversation before reading its messages, so that "hola" / "quiero cita" /
    # "mañana" sent in quick succession become one turn.
    debounce_seconds: float = 1.5
    # How long a worker owns a conversation without renewing (a heartbeat renews it every third of this while a turn
    # runs); a dead worker's conversations are taken over by another worker after it.
    lease_seconds: float = 15.0
    poll_seconds: float = 1.0
    # A customer whose turn failed (or hangs) hears one holding message after this long; checked this often.
    holding_after_seconds: float = 60.0
    holding_check_seconds: float = 10.0
    # On shutdown, running turns may finish for this long before they are cancelled.
    shutdown_grace_seconds: float = 10.0
    max_concurrent_turns: int = 16
    delivery_max_attempts: int = 5
    delivery_backoff_seconds: float = 2.0
    delivery_concurrency: int = 8
    reminder_interval_seconds: float = 30.0
    # A Calendly delivery still 'received' after this long was interrupted and is processed again by the worker.
    calendar_retry_after_seconds: float = 60.0
    # A Calendly booking this fresh and not stored yet may be the agent's own, still being written: apply it later.
    calendly_agent_settle_seconds: float = 20.0
    rate_window_seconds: float = 60.0
    rate_notice_cooldown_seconds: float = 3600.0
    health_cache_seconds: float = 15.0
    calendly_signature_tolerance_seconds: float = 180.0
