"""Pulling bookings from Calendly into `appointments`: the catch-up behind `POST /api/calendly/sync`.

Webhooks keep `appointments` in step as bookings happen; a sync repairs whatever they missed (the server was down,
Calendly disabled the subscription after a day of failed retries, the subscription was created after the first
bookings). It applies the same rules as the webhook path, through the same shared functions: customers are matched
the same way, a booking mirrored by one is found by the other (same idempotency key), and reminders follow.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

from core.business import Business
from core.clock import Clock
from integrations.calendly.client import CalendlyClient
from integrations.calendly.models import Invitee, ScheduledEvent
from integrations.calendly.transport import DEFAULT_RATE_LIMIT_BUDGET, rate_limit_budget
from integrations.calendly.webhook_models import InviteePayload
from server.calendar_sync.alerts import UnmatchedBookingAlert
from server.calendar_sync.mirror import mirror_booking
from server.pipeline.reminders import ReminderScheduler
from store.appointments import AppointmentRepository
from store.clients import ClientRepository

logger = logging.getLogger(__name__)

Change = Literal["created", "moved", "cancelled", "unchanged"]
CHANGES: tuple[Change, ...] = ("created", "moved", "cancelled", "unchanged")


@dataclass(frozen=True)
class _Pulled:
    """A Calendly event as listed and, for an active event not mirrored yet, its invitee (None if it has none)."""

    event: ScheduledEvent
    fresh: bool = False
    invitee: InviteePayload | None = None


def as_webhook_invitee(invitee: Invitee, event: ScheduledEvent) -> InviteePayload:
    """The invitee in the shape of a webhook payload, which is this same resource with its event embedded: the
    webhook path's customer matching then applies unchanged."""
    return InviteePayload.model_validate(
        {**invitee.model_dump(mode="json"), "scheduled_event": event.model_dump(mode="json")}
    )


class CalendlySyncer:
    """`CalendlySync` on the Calendly API: reconciles `appointments` with the user's events from now on.

    A Calendly event unknown here becomes a confirmed appointment (or moves the row its invitee was rescheduled
    from, as the webhook does); a known one whose times changed moves; one canceled on Calendly cancels its
    appointment. A cancelled appointment is never revived: Calendly may still list an event the agent cancelled if
    that cancellation is in flight, and reviving it would remind the customer of an appointment they gave up.

    Nothing is injected into conversations: a sync is a silent catch-up, possibly of days of changes the customer
    or staff made themselves, and telling the customer about them late would confuse rather than inform. The admin
    who asked for the sync gets the summary instead. Reminders are kept consistent as on the webhook path, and a
    booking that matches no customer alerts staff as it does there (once per appointment, whichever path saw it).
    """

    def __init__(
        self,
        *,
        client: CalendlyClient,
        appointments: AppointmentRepository,
        clients: ClientRepository,
        reminders: ReminderScheduler,
        business: Business,
        clock: Clock,
        user_uri: str | None,
        alert: UnmatchedBookingAlert,
        rate_limit_wait_seconds: float = DEFAULT_RATE_LIMIT_BUDGET,
    ) -> None:
        """`user_uri` None means the token's own user, asked from Calendly once, at the first sync; `alert` tells
        staff about a booking that matched no customer (as on the webhook path: staff, not customers, hear of it);
        `rate_limit_wait_seconds` is the most one sync spends waiting out Calendly's 429s, over all its requests."""
        self._client = client
        self._appointments = appointments
        self._clients = clients
        self._reminders = reminders
        self._business = business
        self._clock = clock
        self._user_uri = user_uri
        self._alert = alert
        self._rate_limit_wait_seconds = rate_limit_wait_seconds
        # Two admins syncing at once would do the same work twice; in one process they take turns.
        self._lock = asyncio.Lock()

    async def __call__(self) -> Mapping[str, object]:
        """Sync now; returns how many events were fetched and what happened to them (a second sync: all unchanged).

        Raises `integrations.calendly.CalendlyError` (rate limited, unavailable, refused) with the database untouched;
        a rate limit whose reset is longer than a few seconds raises at once.
        """
        async with self._lock:
            # An admin waits for the answer: all the pull's requests share one few-second allowance for 429s, and
            # beyond it CalendlyRateLimited reaches the route at once (503 with Retry-After).
            with rate_limit_budget(self._rate_limit_wait_seconds):
                pulled = await self._pull()
            counts: dict[str, int] = dict.fromkeys(CHANGES, 0)
            # New bookings first: a rescheduled one moves its row away from the old (canceled) event, which must
            # then find no appointment to cancel.
            for item in sorted(pulled, key=lambda p: not p.fresh):
                counts[await self._reconcile(item)] += 1
        summary: dict[str, object] = {"fetched": len(pulled), **counts}
        logger.info("calendly sync done", extra={"summary": summary})
        return summary

    async def _pull(self) -> list[_Pulled]:
        # Every Calendly read happens here, before anything is written: a rate limit or an outage half-way through
        # raises with the database untouched, and the next sync starts from scratch.
        if self._user_uri is None:
            self._user_uri = (await self._client.current_user()).uri
        # No status filter: active and canceled events both come back.
        events = await self._client.list_scheduled_events(self._user_uri, min_start_time=self._clock.now())
        pulled = []
        for event in events:
            if event.status == "active" and await self._appointments.by_external_id(event.uri) is None:
                invitees = await self._client.list_event_invitees(event.uri, status="active")
                # The salon's event types are one-on-one: the first active invitee is the customer.
                invitee = as_webhook_invitee(invitees[0], event) if invitees else None
                pulled.append(_Pulled(event, fresh=True, invitee=invitee))
            else:
                pulled.append(_Pulled(event))
        return pulled

    async def _reconcile(self, item: _Pulled) -> Change:
        event = item.event
        # Read again rather than trusting _pull: a webhook may have applied the same change meanwhile.
        local = await self._appointments.by_external_id(event.uri)
        now = self._clock.now()
        if local is None:
            if event.status != "active":
                return "unchanged"  # canceled before it was ever mirrored, or the old half of a reschedule
            return await self._mirror(event, item.invitee)
        if local.status != "confirmed":
            return "unchanged"
        if event.status != "active":
            reason = event.cancellation.reason if event.cancellation else None
            await self._appointments.cancel(local.id, now=now, reason=reason)
            await self._reminders.cancel(local.id)
            logger.info("calendly sync: cancelled", extra={"appointment": local.id})
            return "cancelled"
        if (local.start_at, local.end_at) == (event.start_time, event.end_time):
            return "unchanged"
        moved = await self._appointments.move(local.id, start_at=event.start_time, end_at=event.end_time, now=now)
        await self._reminders.schedule(moved)
        logger.info("calendly sync: moved", extra={"appointment": moved.id})
        return "moved"

    async def _mirror(self, event: ScheduledEvent, invitee: InviteePayload | None) -> Change:
        # The same mirroring as the webhook path, without telling the conversation: a sync is a silent catch-up.
        mirrored = await mirror_booking(
            appointments=self._appointments,
            clients=self._clients,
            reminders=self._reminders,
            business=self._business,
            now=self._clock.now(),
            event=event,
            invitee=invitee,
            alert=self._alert,
        )
        if mirrored.previous is not None:
            return "moved"
        logger.info(
            "calendly sync: mirrored",
            extra={"appointment": mirrored.appointment.id, "client": mirrored.appointment.client_id},
        )
        return "created"
