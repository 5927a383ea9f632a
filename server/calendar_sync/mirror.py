"""Mirroring a booking made on Calendly as a local appointment, shared by the webhook and the catch-up sync."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from core.business import Business
from integrations.calendly.webhook_models import InviteePayload, event_uri_of_invitee
from server.calendar_sync.alerts import UnmatchedBookingAlert
from server.pipeline.reminders import ReminderScheduler
from store.appointments import AppointmentRepository
from store.clients import ClientRepository
from store.models import Appointment, Client


async def match_client(
    clients: ClientRepository, invitee: InviteePayload, *, now: datetime, country_code: str | None = None
) -> Client | None:
    """The customer behind a Calendly invitee: by the SMS reminder number, then phone answers, then proven e-mail.

    An e-mail a customer merely typed matches nobody (anybody can type anybody's address, and the customer found
    sees the booking and may cancel it); only an address proven for exactly one customer does. A match by phone
    proves the invitee's e-mail for that customer, so their later bookings without a phone number are found too.
    `country_code` (the business's) turns national numbers such as "600 123 456" into +34600123456.
    """
    for phone in invitee.phone_candidates(country_code):
        client = await clients.find_by_contact(phone=phone)
        if client is not None:
            await clients.prove_email(client.id, invitee.email, source="calendly_phone", now=now)
            return client
    return await clients.find_by_proven_email(invitee.email) if invitee.email else None


def service_name(business: Business, event_type: str | None, event_name: str | None) -> str:
    """The salon service a Calendly event type stands for, else the event's own name."""
    for service in business.services:
        if event_type and service.calendly_event_type == event_type:
            return service.name
    return event_name or "appointment"


class BookedEvent(Protocol):
    """What mirroring needs of a scheduled event: the webhook payload's and the API's shapes both have it."""

    @property
    def uri(self) -> str: ...
    @property
    def name(self) -> str | None: ...
    @property
    def start_time(self) -> datetime: ...
    @property
    def end_time(self) -> datetime: ...
    @property
    def event_type(self) -> str | None: ...


@dataclass(frozen=True)
class Mirrored:
    """A Calendly booking as stored locally; `previous` is the row as it was when a reschedule moved it."""

    appointment: Appointment
    previous: Appointment | None = None


async def mirror_booking(
    *,
    appointments: AppointmentRepository,
    clients: ClientRepository,
    reminders: ReminderScheduler,
    business: Business,
    now: datetime,
    event: BookedEvent,
    invitee: InviteePayload | None,
    alert: UnmatchedBookingAlert,
) -> Mirrored:
    """Store a booking made on Calendly (webhook or sync) with its reminders.

    A reschedule (the invitee names an old invitee whose appointment is still confirmed) moves that same row, so
    its id, which the customer may quote, stays valid; otherwise a new appointment mirrors the event, for the
    customer `match_client` finds or, when it finds none, for nobody, and staff are alerted through `alert`.
    """
    previous = None
    if invitee is not None and invitee.old_invitee:
        previous = await appointments.by_external_id(event_uri_of_invitee(invitee.old_invitee))
    if invitee is not None and previous is not None and previous.status == "confirmed":
        moved = await appointments.move(
            previous.id,
            start_at=event.start_time,
            end_at=event.end_time,
            now=now,
            external_id=event.uri,
            external_invitee=invitee.uri,
        )
        await reminders.schedule(moved)
        return Mirrored(moved, previous)
    client = None
    if invitee is not None:
        client = await match_client(clients, invitee, now=now, country_code=business.phone_country_code)
    created = await appointments.create(
        client_id=client.id if client else None,
        service=service_name(business, event.event_type, event.name),
        start_at=event.start_time,
        end_at=event.end_time,
        source="calendly",
        calendar="calendly",
        now=now,
        external_id=event.uri,
        external_invitee=invitee.uri if invitee else None,
        idempotency_key=mirror_key(invitee.uri) if invitee else None,
    )
    await reminders.schedule(created)
    if created.client_id is None:
        await alert.unmatched(created, invitee.email if invitee else None)
    return Mirrored(created)


def mirror_key(invitee_uri: str) -> str:
    """Idempotency key of the appointment mirrored from a Calendly invitee.

    Shared by the webhook and the sync, so whichever of them mirrors a booking first, the other finds its row.
    """
    return f"calendly:{invitee_uri}"
