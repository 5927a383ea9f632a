"""Server tuning that is not deployment configuration: timings and limits, injected so tests can shrink them."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import Any, get_type_hints

# `ASISTENTE_<FIELD>` overrides a field, e.g. ASISTENTE_POLL_SECONDS=0.1 (tests and benchmarks shrink timings).
ENV_PREFIX = "ASISTENTE_"
# Never from the environment: a stray variable in a production container must not switch off webhook signatures.
_FLAG_ONLY = {"allow_unsigned_webhooks": "--allow-unsigned-webhooks", "api_docs": "--api-docs"}
_TRUE, _FALSE = {"1", "true", "yes", "on"}, {"0", "false", "no", "off"}


@dataclass(frozen=True)
class ServerOptions:
    """Knobs of the web app and the worker. Defaults suit production; tests pass small timings."""

    # Accept webhooks without a signature when the secret is not configured. Development only (a local tunnel
    # without Twilio credentials); with it off, an unconfigured secret means every webhook is refused with 403.
    allow_unsigned_webhooks: bool = False
    # Serve the API documentation (/docs, /redoc, /openapi.json). Development only: it maps every admin endpoint
    # for whoever reaches the address.
    api_docs: bool = False
    # WhatsApp texts run to 65 536 characters; URL-encoded in Twilio's form, accented or emoji text takes up to 12
    # bytes a character. A message refused here is lost (Twilio does not resend), so the bound is set above that.
    max_body_bytes: int = 1024 * 1024
    # A Twilio webhook is stored through the database within this long, else spooled to disk (Twilio gives up at
    # 15 s); the spool is drained into the database, retried this often while the database does not answer.
    intake_timeout_seconds: float = 3.0
    spool_retry_seconds: float = 2.0
    # A turn starts once the customer has been quiet this long since their last message, so that messages that
    # arrive together ("hola" / "quiero cita" / "mañana" sent while offline, several photos, a forwarded batch,
    # which reach the webhook close together) become one turn, while everyone else waits well under a
    # second. Whatever the customer writes while a turn runs is folded into the next turn anyway. Someone who keeps
    # writing is answered this long after their first message at the latest (`server/pipeline/fold.py`).
    fold_quiet_seconds: float = 0.4
    fold_max_wait_seconds: float = 3.0
    # How long a worker owns a conversation without renewing (a heartbeat renews it every third of this while a turn
    # runs); a dead worker's conversations are taken over by another worker after it.
    lease_seconds: float = 15.0
    poll_seconds: float = 1.0
    # On PostgreSQL each worker listens for the notifications sent when work is stored, by any process (LISTEN/
    # NOTIFY); while its listener is connected, and has seen a probe of its own come back, it polls only this often.
    # The polls then find only what no notification announces, work that becomes due with time: a turn or a send due
    # again after its backoff, the conversations of a worker that died once its lease expires. Each starts up to this
    # much later than due, so it stays short: a dead worker's conversations are still taken over within the lease
    # plus a few seconds, and an idle worker's two loops still cost only a query a second. Reminders are sent by the
    # maintenance pass (`reminder_interval_seconds`). Without a listener (SQLite, a transaction pooler, the database
    # away) the worker polls every `poll_seconds`.
    notify_poll_seconds: float = 2.0
    # A customer whose turn failed (or hangs) hears one holding message after this long; checked this often.
    holding_after_seconds: float = 60.0
    holding_check_seconds: float = 10.0
    # On shutdown, running turns may finish for this long before they are cancelled.
    shutdown_grace_seconds: float = 10.0
    max_concurrent_turns: int = 16
    # A send that fails transiently (Twilio 5xx or 429, network) is tried again after this long, the wait doubling up
    # to the cap, until the message is this old (Twilio's Retry-After is honoured on top); refusals fail at once.
    delivery_first_retry_seconds: float = 2.0
    delivery_max_retry_interval_seconds: float = 300.0
    delivery_give_up_after_seconds: float = 24 * 3600.0
    # A row still 'sending' after this long was left by a dead worker: Twilio is asked whether it went out before it
    # goes again. Well beyond the 10 s bound of one send (and unrelated to the conversation lease).
    delivery_stuck_after_seconds: float = 30.0
    delivery_concurrency: int = 8
    reminder_interval_seconds: float = 30.0
    # A Calendly delivery still 'received' after this long was interrupted and is processed again by the worker.
    calendar_retry_after_seconds: float = 60.0
    # A Calendly booking this fresh and not stored yet may be the agent's own, still being written: apply it later.
    calendly_agent_settle_seconds: float = 20.0
    # A Calendly write (booking, cancellation, reschedule) recorded but unfinished this long, its answer lost (the
    # process died mid-call), is settled by the worker with what Calendly holds; one Calendly still holds nothing of
    # after the second is abandoned. (A turn run again after a crash settles its own writes before this.)
    calendar_write_settle_seconds: float = 60.0
    calendar_write_abandon_seconds: float = 900.0
    rate_window_seconds: float = 60.0
    rate_notice_cooldown_seconds: float = 3600.0
    health_cache_seconds: float = 15.0
    calendly_signature_tolerance_seconds: float = 180.0

    @classmethod
    def from_env(cls, environ: Mapping[str, str]) -> ServerOptions:
        """The defaults, with each field that has an `ASISTENTE_<FIELD>` variable in `environ` set from it (numbers
        of seconds, counts, booleans). Raises ValueError with one line naming the variable for a bad value."""
        hints = get_type_hints(cls)
        values: dict[str, Any] = {}
        for field in fields(cls):
            name = ENV_PREFIX + field.name.upper()
            raw = environ.get(name, "").strip()
            if not raw:
                continue
            if field.name in _FLAG_ONLY:
                raise ValueError(f"{name} cannot be set from the environment; use {_FLAG_ONLY[field.name]}")
            values[field.name] = _parse(name, raw, hints[field.name])
        return cls(**values)


def _parse(name: str, raw: str, kind: object) -> bool | int | float:
    """One variable's value as its field's type: a boolean, or a finite number that is not negative."""
    if kind is bool:
        if raw.lower() not in _TRUE | _FALSE:
            raise ValueError(f"{name} must be true or false, not {raw!r}")
        return raw.lower() in _TRUE
    try:
        number = int(raw) if kind is int else float(raw)
    except ValueError:
        expected = "a whole number" if kind is int else "a number"
        raise ValueError(f"{name} must be {expected}, not {raw!r}") from None
    if not math.isfinite(number) or number < 0:
        raise ValueError(f"{name} must be a finite number >= 0, not {raw!r}")
    return number
