"""WhatsApp statistics for the admin API: traffic per hour, reply latency, bookings, conversion, errors."""

from __future__ import annotations

import math
from collections import Counter
from datetime import datetime, timedelta

from core.clock import Clock
from store.calendar_events import CalendarEventRepository
from store.database import Database
from store.inbound import InboundRepository
from store.outbox import OutboxRepository


def percentile(values: list[float], fraction: float) -> float | None:
    """Nearest-rank percentile (None for no values)."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, math.ceil(fraction * len(ordered)))
    return ordered[rank - 1]


def _hour(moment: datetime) -> str:
    return moment.replace(minute=0, second=0, microsecond=0).isoformat()


class StatsService:
    """Computes statistics from the stored rows (durable and shared by every process, unlike in-memory metrics)."""

    def __init__(
        self,
        *,
        db: Database,
        inbound: InboundRepository,
        outbox: OutboxRepository,
        calendar_events: CalendarEventRepository,
        clock: Clock,
    ) -> None:
        self._db = db
        self._inbound = inbound
        self._outbox = outbox
        self._calendar_events = calendar_events
        self._clock = clock

    async def summary(self, *, hours: int) -> dict[str, object]:
        """Statistics over the last `hours` hours."""
        since = self._clock.now() - timedelta(hours=hours)
        received = await self._inbound.received_since(since)
        sent = await self._outbox.created_since(since)
        per_hour_in = Counter(_hour(m.received_at) for m in received)
        per_hour_out = Counter(_hour(m.sent_at) for m in sent if m.sent_at is not None)
        hours_seen = sorted(set(per_hour_in) | set(per_hour_out))

        received_at = {m.id: m.received_at for m in received}
        first_reply: dict[int, datetime] = {}
        for row in sent:
            if row.kind in ("reply", "question") and row.inbound_message_id in received_at and row.sent_at:
                current = first_reply.get(row.inbound_message_id)
                first_reply[row.inbound_message_id] = row.sent_at if current is None else min(current, row.sent_at)
        latencies = [(at - received_at[mid]).total_seconds() for mid, at in first_reply.items()]

        # Bookings are a cross-table report; a repository method would serve only this endpoint.
        bookings = await self._db.fetch_all(
            "SELECT a.source, a.status, c.wa_id FROM appointments a LEFT JOIN clients c ON c.id = a.client_id "
            "WHERE a.created_at >= :since",
            {"since": since},
        )
        writers = {m.wa_id for m in received}
        booked_writers = {b["wa_id"] for b in bookings if b["wa_id"] in writers}
        # 'undeliverable' is our own decision (WhatsApp's 24-hour rule, no template): Twilio never saw those rows.
        failed_replies = [m for m in sent if m.status == "failed"]
        held_back = sum(1 for m in sent if m.status == "undeliverable")
        system_failed = await self._db.fetch_value(
            "SELECT COUNT(*) AS n FROM system_events WHERE status = 'failed' AND created_at >= :since",
            {"since": since},
        )
        return {
            "window_hours": hours,
            "since": since.isoformat(),
            "messages_per_hour": [
                {"hour": h, "received": per_hour_in.get(h, 0), "sent": per_hour_out.get(h, 0)} for h in hours_seen
            ],
            "messages": {
                "received": len(received),
                "by_status": dict(Counter(m.status for m in received)),
                "outbound": len(sent),
                "outbound_by_status": dict(Counter(m.status for m in sent)),
            },
            "reply_latency_seconds": {
                "count": len(latencies),
                "mean": sum(latencies) / len(latencies) if latencies else None,
                "p95": percentile(latencies, 0.95),
            },
            "bookings": {
                "total": len(bookings),
                "by_source": dict(Counter(str(b["source"]) for b in bookings)),
                "cancelled": sum(1 for b in bookings if b["status"] == "cancelled"),
            },
            "conversion": {
                "customers_writing": len(writers),
                "customers_booking": len(booked_writers),
                "rate": len(booked_writers) / len(writers) if writers else None,
            },
            "errors": {
                "twilio": len(failed_replies),
                "twilio_by_code": dict(Counter(m.error_code or "none" for m in failed_replies)),
                "undeliverable": held_back,
                "agent": sum(1 for m in received if m.status == "failed") + int(system_failed or 0),
                "calendly": await self._calendar_events.count_failed_since(since),
            },
        }
