"""Mirroring a booking made on Calendly as a local appointment, shared by the webhook and the catch-up sync."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from core.business import Business
from integrations.calendly.webhook_models import InviteePayload, event_uri_of_invitee
from server.pipeline.reminders import ReminderScheduler
from store.appointments import AppointmentRepository
from store.clients import ClientRepository
from store.models import Appointment, Client


async def find_client(
    clients: ClientRepository, invitee: InviteePayload, *, country_code: str | None = None
) -> Client | None:
    """The customer behind a Calendly invitee: by the SMS reminder number, then phone answers, then e-mail.

    `country_code` (the business's) turns national numbers such as "600 123 456" into +34600123456.
    """
    for phone in invitee.phone_candidates(country_code):
        client = await clients.find_by_contact(phone=phone)
        if client is not None:
            return client
    return await clients.find_by_contact(email=invitee.email) if invitee.email else None


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
) -> Mirrored:
    """Store a booking made on Calendly (webhook or sync) with its reminders.

    A reschedule (the invitee names an old invitee whose appointment is still confirmed) moves that same row, so
    its id, which the customer may quote, stays valid; otherwise a new appointment mirrors the event.
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
    client = (
        await find_client(clients, invitee, country_code=business.phone_country_code) if invitee is not None else None
    )
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
    return Mirrored(created)


def mirror_key(invitee_uri: str) -> str:
    """Idempotency key of the appointment mirrored from a Calendly invitee.

    Shared by the webhook and the sync, so whichever of them mirrors a booking first, the other finds its row.
    """
    return f"calendly:{invitee_uri}"
