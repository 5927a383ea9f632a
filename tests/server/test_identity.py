"""Identity cannot be claimed: a Calendly booking reaches a WhatsApp thread by phone, or by a *proven* e-mail only.

An e-mail a customer merely types (`remember_client_details`) is still what the agent books with, but it never
decides whose thread a Calendly booking lands in: the customer found would see, and could cancel, somebody else's
appointment. It becomes proven when the agent books with it for that WhatsApp number, or when a Calendly booking
matched by phone carries it. Unmatched bookings are stored without a customer and staff are alerted (masked).
Everything goes through the signed webhook into the app, on SQLite and PostgreSQL.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest

from core.business import Business
from core.clock import FixedClock
from core.settings import Settings
from prompts import render_localized
from server.calendar_sync.alerts import mask_email
from store import Database
from store.clients import ClientRepository
from store.database import parse_json
from tests.agent.conftest import make_harness
from tests.scripted_model import ScriptedChatModel, call, says, uses
from tests.server.conftest import RunningApp, Secrets, StartApp
from tests.server.helpers import FakeAgent
from tests.server.test_calendly_webhook import EVENT_1, EVENT_2, INVITEE_2, delivery, post_delivery, system_turns, table

ANA = "whatsapp:+34600123456"  # the customer who types somebody else's address
JOHN = "whatsapp:+34611000111"  # the address's owner
EMAIL = "john.doe@example.com"  # the invitee's e-mail in the Calendly fixture (name "John Doe")
STAFF = "+34699000111"
STAFF_WA = f"whatsapp:{STAFF}"


@pytest.fixture
def staffed(make_settings: Callable[..., Settings]) -> Settings:
    """Settings with a staff number, so an unmatched booking alerts it."""
    return make_settings(staff_whatsapp_number=STAFF)


def phoneless(**payload: Any) -> dict[str, Any]:
    """The fixture's invitee.created: John's e-mail, no SMS number, no phone answer."""
    return delivery("calendly-invitee-created.json", **payload)


async def staff_alerts(db: Database) -> list[dict[str, Any]]:
    return [row for row in await table(db, "outbox") if row["kind"] == "staff"]


async def post(running: RunningApp, keys: Secrets, clock: FixedClock, body: dict[str, Any]) -> dict[str, Any]:
    response = await post_delivery(running, keys, clock, body)
    assert response.status_code == 200, response.text
    result: dict[str, Any] = response.json()
    return result


async def test_a_typed_email_does_not_bring_someone_elses_calendly_booking_into_the_thread(
    start_app: StartApp, staffed: Settings, db: Database, keys: Secrets, clock: FixedClock, agent: FakeAgent
) -> None:
    clients = ClientRepository(db)
    # What `remember_client_details` does with "my e-mail is john.doe@example.com", typed by Ana.
    ana = await clients.update_profile(ANA, now=clock.now(), email="John.Doe@example.com")

    async with start_app(settings=staffed) as running:
        result = await post(running, keys, clock, phoneless())

    assert result["status"] == "processed" and result["customer_notified"] is False
    [appointment] = await table(db, "appointments")
    assert appointment["client_id"] is None  # stored for nobody: not in Ana's upcoming appointments
    assert await table(db, "system_events") == [] and agent.calls == []
    assert await clients.proven_emails(ana.id) == []
    # The typed address is kept: the agent still books on Calendly with it.
    assert (await clients.get(ANA)).email == "John.Doe@example.com"  # type: ignore[union-attr]
    [alert] = await staff_alerts(db)
    assert alert["wa_id"] == STAFF_WA
    body = alert["body"]
    assert "Corte y Peinado" in body and "1 de diciembre, 10:30" in body and appointment["id"] in body
    assert "j***@example.com" in body
    assert EMAIL not in body.lower() and "John" not in body and "600123456" not in body
    variables = parse_json(alert["template_variables"])
    assert variables["1"] == "j***@example.com" and variables["2"] == "-"
    assert "\n" not in variables["3"] and EMAIL not in variables["3"].lower()


async def test_an_email_the_agent_booked_with_matches_a_later_phoneless_calendly_booking(
    start_app: StartApp, db: Database, keys: Secrets, clock: FixedClock, agent: FakeAgent
) -> None:
    clients = ClientRepository(db)
    await clients.update_profile(ANA, now=clock.now(), email=EMAIL)  # Ana claims it first (lower id)
    john = await clients.ensure(JOHN, now=clock.now())
    # What `book_appointment` records once it booked for John's number with his e-mail.
    await clients.prove_email(john.id, "John.Doe@Example.com", source="agent_booking", now=clock.now())

    async with start_app() as running:
        result = await post(running, keys, clock, phoneless())
        assert result["customer_notified"] is True
        await system_turns(agent, 1)

    [appointment] = await table(db, "appointments")
    assert appointment["client_id"] == john.id
    [event] = await table(db, "system_events")
    assert event["wa_id"] == JOHN
    assert [c.wa_id for c in agent.calls] == [JOHN]
    assert await staff_alerts(db) == []


async def test_booking_through_the_agent_proves_the_typed_email_it_booked_with(
    start_app: StartApp, db: Database, business: Business, keys: Secrets, clock: FixedClock, agent: FakeAgent
) -> None:
    clients = ClientRepository(db)
    await clients.update_profile(ANA, now=clock.now(), email=EMAIL)  # Ana claims it first (lower id)
    model = ScriptedChatModel(script=[])
    async for h in make_harness(db, business, clock, model):
        # John types his address, then books without repeating it: the typed address is what the booking uses.
        h.model.extend(uses(call("remember_client_details", email=EMAIL)), says("Apuntado."))
        await h.say("mi correo es john.doe@example.com", wa_id=JOHN)
        john = await clients.get(JOHN)
        assert john is not None and await clients.proven_emails(john.id) == []  # typed only
        h.model.extend(uses(call("book_appointment", service="Corte y Peinado", start_time="2026-11-26T10:00:00")))
        assert (await h.say("corte el jueves a las 10", wa_id=JOHN)).awaiting_confirmation
        h.model.extend(says("¡Listo!"))
        await h.say("Sí", wa_id=JOHN)
        [booked] = await h.confirmed()
        assert booked.client_id == john.id
        assert await clients.proven_emails(john.id) == [EMAIL]
        h.model.assert_complete()

    async with start_app() as running:
        result = await post(running, keys, clock, phoneless())
        assert result["customer_notified"] is True
        await system_turns(agent, 1)

    mirrored = [a for a in await table(db, "appointments") if a["source"] == "calendly"]
    assert [a["client_id"] for a in mirrored] == [john.id]
    assert [c.wa_id for c in agent.calls] == [JOHN]


async def test_a_booking_matched_by_phone_proves_its_email_for_later_phoneless_bookings(
    start_app: StartApp, db: Database, keys: Secrets, clock: FixedClock, agent: FakeAgent
) -> None:
    clients = ClientRepository(db)
    await clients.update_profile(ANA, now=clock.now(), email=EMAIL)  # Ana claims it first (lower id)
    john = await clients.ensure(JOHN, now=clock.now())

    async with start_app() as running:
        first = await post(running, keys, clock, phoneless(text_reminder_number="+34 611 000 111"))
        assert first["customer_notified"] is True
        assert await clients.proven_emails(john.id) == [EMAIL]
        later = phoneless(event_uri=EVENT_2, invitee_uri=INVITEE_2, created_at="2026-11-24T20:59:30.000000Z")
        second = await post(running, keys, clock, later)
        assert second["customer_notified"] is True
        await system_turns(agent, 2)

    appointments = await table(db, "appointments")
    assert {a["external_id"]: a["client_id"] for a in appointments} == {EVENT_1: john.id, EVENT_2: john.id}
    assert {e["wa_id"] for e in await table(db, "system_events")} == {JOHN}
    assert await staff_alerts(db) == []


async def test_an_email_proven_for_two_customers_matches_neither(
    start_app: StartApp, staffed: Settings, db: Database, keys: Secrets, clock: FixedClock, agent: FakeAgent
) -> None:
    clients = ClientRepository(db)
    for wa_id in (ANA, JOHN):  # e.g. a couple booking with one shared address
        client = await clients.ensure(wa_id, now=clock.now())
        await clients.prove_email(client.id, EMAIL, source="agent_booking", now=clock.now())

    async with start_app(settings=staffed) as running:
        result = await post(running, keys, clock, phoneless())

    assert result["customer_notified"] is False
    [appointment] = await table(db, "appointments")
    assert appointment["client_id"] is None
    assert await table(db, "system_events") == [] and agent.calls == []
    assert len(await staff_alerts(db)) == 1


async def test_an_unmatched_booking_applied_again_alerts_staff_once(
    start_app: StartApp, staffed: Settings, db: Database, keys: Secrets, clock: FixedClock
) -> None:
    body = phoneless()
    async with start_app(settings=staffed, run_worker=False) as running:
        await post(running, keys, clock, body)
        # The same booking arriving again as another delivery (say, after a crash) mirrors to the same row.
        await db.execute(
            "INSERT INTO calendar_events (delivery_key, event_type, external_id, payload, status, received_at) "
            "VALUES ('again', 'invitee.created', :event, :payload, 'received', :at)",
            {"event": body["payload"]["event"], "payload": body, "at": clock.now() - timedelta(minutes=2)},
        )
        applied = await running.services.calendly.retry_unfinished(
            older_than=timedelta(0), give_up_after=timedelta(days=1)
        )
        assert applied == 1

    assert len(await table(db, "appointments")) == 1
    assert len(await staff_alerts(db)) == 1


async def test_without_a_staff_number_an_unmatched_booking_is_logged_without_personal_data(
    start_app: StartApp, db: Database, keys: Secrets, clock: FixedClock, caplog: pytest.LogCaptureFixture
) -> None:
    await ClientRepository(db).update_profile(ANA, now=clock.now(), email=EMAIL)
    with caplog.at_level(logging.WARNING, logger="server.calendar_sync.alerts"):
        async with start_app() as running:
            await post(running, keys, clock, phoneless())

    assert await table(db, "outbox") == []
    [appointment] = await table(db, "appointments")
    [record] = [r for r in caplog.records if r.name == "server.calendar_sync.alerts"]
    assert record.levelno == logging.WARNING and "STAFF_WHATSAPP_NUMBER" in record.getMessage()
    logged = f"{record.getMessage()} {vars(record)}".lower()
    assert appointment["id"] in logged
    assert "example.com" not in logged and "john" not in logged and "600123456" not in logged


@pytest.mark.parametrize(
    ("email", "masked"),
    [
        ("maria.lopez@example.com", "m***@example.com"),
        (" J@x.es ", "J***@x.es"),
        ("not-an-address", "***"),
        ("", None),
        (None, None),
    ],
)
def test_mask_email(email: str | None, masked: str | None) -> None:
    assert mask_email(email) == masked


@pytest.mark.parametrize("language", ["es", "en"])
def test_the_staff_alert_renders_in_each_language_with_and_without_an_email(language: str) -> None:
    facts = {"service": "Tinte", "when": "1 Dec, 10:30", "appointment_id": "apt_1"}
    with_email = render_localized("messages/staff_unmatched_booking", language, email="m***@example.com", **facts)
    without = render_localized("messages/staff_unmatched_booking", language, email=None, **facts)
    assert "Calendly" in with_email and "Tinte" in with_email and "m***@example.com" in with_email
    assert "@" not in without and "\n" not in with_email
