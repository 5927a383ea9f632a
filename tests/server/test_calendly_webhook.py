"""POST /api/calendly/webhook: signatures, deduplication, appointment mirroring, reschedules, system turns."""

from __future__ import annotations

import copy
import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from core.clock import FixedClock
from store import Database
from store.appointments import AppointmentRepository
from store.clients import ClientRepository
from store.database import parse_datetime, parse_json
from store.models import Appointment, Client
from tests.server.conftest import RunningApp, Secrets, StartApp
from tests.server.helpers import CUSTOMER, FakeAgent, calendly_headers, fixture_json, wait_until

EVENT_1 = "https://api.calendly.com/scheduled_events/00000000-0000-0000-0000-000000000002"
INVITEE_1 = EVENT_1 + "/invitees/00000000-0000-0000-0000-000000000001"
EVENT_2 = "https://api.calendly.com/scheduled_events/00000000-0000-0000-0000-0000000000e2"
INVITEE_2 = EVENT_2 + "/invitees/00000000-0000-0000-0000-0000000000f2"
START = datetime(2026, 12, 1, 9, 30, tzinfo=UTC)  # a week after the test's "now"
NEW_START = datetime(2026, 12, 3, 15, 0, tzinfo=UTC)
EVENT_TYPE = "https://api.calendly.com/event_types/AAAAAAAAAAAAAAAA"  # "Corte y Peinado" in the example salon


def delivery(
    name: str,
    *,
    event_uri: str = EVENT_1,
    invitee_uri: str = INVITEE_1,
    start: datetime = START,
    created_at: str = "2026-11-24T20:59:00.000000Z",
    **payload: Any,
) -> dict[str, Any]:
    """A fixture delivery moved onto our appointment: its URIs, a future start, the salon's event type."""
    body = copy.deepcopy(fixture_json(name))
    body["created_at"] = created_at
    body["payload"].update({"uri": invitee_uri, "event": event_uri, **payload})
    scheduled = body["payload"]["scheduled_event"]
    scheduled.update(
        {
            "uri": event_uri,
            "event_type": EVENT_TYPE,
            "start_time": start.isoformat().replace("+00:00", "Z"),
            "end_time": (start + timedelta(minutes=45)).isoformat().replace("+00:00", "Z"),
        }
    )
    return body


async def post_delivery(
    running: RunningApp,
    keys: Secrets,
    clock: FixedClock,
    body: dict[str, Any],
    *,
    age: int = 0,
    key: str | None = None,
) -> Any:
    raw = json.dumps(body).encode()
    headers = calendly_headers(key or keys.calendly_key, raw, int(clock.now().timestamp()) - age)
    return await running.client.post("/api/calendly/webhook", content=raw, headers=headers)


@pytest.fixture
async def customer(db: Database, now: datetime) -> Client:
    return await ClientRepository(db).ensure(CUSTOMER, now=now, profile_name="Ana")


async def stored_appointment(
    db: Database, now: datetime, client: Client | None, source: str = "calendly"
) -> Appointment:
    return await AppointmentRepository(db).create(
        client_id=client.id if client else None,
        service="Corte y Peinado",
        start_at=START,
        end_at=START + timedelta(minutes=45),
        source=source,  # type: ignore[arg-type]
        calendar="calendly",
        now=now,
        external_id=EVENT_1,
        external_invitee=INVITEE_1,
    )


async def table(db: Database, name: str) -> list[dict[str, Any]]:
    return await db.fetch_all(f"SELECT * FROM {name} ORDER BY id")


async def system_turns(agent: FakeAgent, count: int) -> None:
    async def done() -> bool:
        return len([c for c in agent.completed if c.kind == "system"]) >= count

    await wait_until(done)


async def test_signed_delivery_is_accepted_and_recorded_once(
    server: RunningApp, db: Database, keys: Secrets, clock: FixedClock, customer: Client
) -> None:
    body = delivery("calendly-invitee-created.json", text_reminder_number="+34 600 123 456")
    first = await post_delivery(server, keys, clock, body)
    again = await post_delivery(server, keys, clock, body)

    assert first.status_code == 200 and first.json()["status"] == "processed"
    assert again.status_code == 200 and again.json()["status"] == "duplicate"
    events = await table(db, "calendar_events")
    assert [(e["event_type"], e["status"]) for e in events] == [("invitee.created", "processed")]
    appointments = await table(db, "appointments")
    assert [(a["client_id"], a["service"], a["source"], a["external_id"]) for a in appointments] == [
        (customer.id, "Corte y Peinado", "calendly", EVENT_1)
    ]
    reminders = await table(db, "reminders")
    assert sorted(r["offset_minutes"] for r in reminders) == [120, 1440]


@pytest.mark.parametrize("problem", ["wrong", "stale", "missing", "other_body"])
async def test_bad_signatures_are_refused_and_nothing_stored(
    server: RunningApp, db: Database, keys: Secrets, clock: FixedClock, problem: str
) -> None:
    body = delivery("calendly-invitee-created.json")
    if problem == "wrong":
        response = await post_delivery(server, keys, clock, body, key="not-the-signing-key")
    elif problem == "stale":
        response = await post_delivery(server, keys, clock, body, age=181)
    elif problem == "missing":
        response = await server.client.post(
            "/api/calendly/webhook", content=json.dumps(body), headers={"Content-Type": "application/json"}
        )
    else:
        raw = json.dumps(body).encode()
        headers = calendly_headers(keys.calendly_key, raw, int(clock.now().timestamp()))
        response = await server.client.post("/api/calendly/webhook", content=raw + b" ", headers=headers)
    assert response.status_code == 403
    assert await table(db, "calendar_events") == []
    assert await table(db, "appointments") == []


async def test_cancellation_on_calendly_reaches_the_customer_thread_as_a_system_turn(
    start_app: StartApp, db: Database, keys: Secrets, clock: FixedClock, customer: Client, agent: FakeAgent
) -> None:
    appointment = await stored_appointment(db, clock.now(), customer)
    async with start_app() as running:
        await running.services.reminders.schedule(appointment)
        agent.sender = running.services.sender
        agent.system_reply = "Hemos recibido la cancelación de tu cita."
        response = await post_delivery(running, keys, clock, delivery("calendly-invitee-canceled.json"))
        assert response.status_code == 200 and response.json()["customer_notified"] is True
        await system_turns(agent, 1)

        async def queued() -> bool:
            return len(await table(db, "outbox")) == 1

        await wait_until(queued)

    [call] = [c for c in agent.completed if c.kind == "system"]
    assert call.wa_id == CUSTOMER
    assert "cancelled" in call.texts[0] and appointment.id in call.texts[0] and "No puedo ir" in call.texts[0]
    stored = (await table(db, "appointments"))[0]
    assert (stored["status"], stored["cancel_reason"]) == ("cancelled", "No puedo ir")
    assert {r["status"] for r in await table(db, "reminders")} == {"cancelled"}
    [event] = await table(db, "system_events")
    assert (event["source"], event["status"], event["kind_hint"]) == ("calendly", "processed", "cancellation")
    [message] = await table(db, "outbox")
    # What the agent sent during that turn is a cancellation notice, templated outside the 24-hour window.
    assert message["kind"] == "cancellation"
    assert parse_json(message["template_variables"]) == {
        "1": "Ana",
        "2": "Corte y Peinado",
        "3": "01/12/2026",
        "4": "10:30",
    }


async def test_reschedule_pair_leaves_one_moved_appointment_with_moved_reminders(
    start_app: StartApp, db: Database, keys: Secrets, clock: FixedClock, customer: Client, agent: FakeAgent
) -> None:
    appointment = await stored_appointment(db, clock.now(), customer)
    async with start_app() as running:
        await running.services.reminders.schedule(appointment)
        canceled = delivery("calendly-invitee-canceled.json", rescheduled=True, new_invitee=INVITEE_2)
        created = delivery(
            "calendly-invitee-created.json",
            event_uri=EVENT_2,
            invitee_uri=INVITEE_2,
            start=NEW_START,
            old_invitee=INVITEE_1,
            created_at="2026-11-24T20:59:01.000000Z",
        )
        assert (await post_delivery(running, keys, clock, canceled)).status_code == 200
        assert (await post_delivery(running, keys, clock, created)).status_code == 200
        await system_turns(agent, 1)

    [moved] = await table(db, "appointments")
    assert moved["id"] == appointment.id
    assert (moved["status"], moved["external_id"], moved["external_invitee"]) == ("confirmed", EVENT_2, INVITEE_2)
    assert parse_datetime(moved["start_at"]) == NEW_START
    reminders = {r["offset_minutes"]: r for r in await table(db, "reminders")}
    assert set(reminders) == {120, 1440}
    for offset, reminder in reminders.items():
        assert parse_datetime(reminder["due_at"]) == NEW_START - timedelta(minutes=offset)
        assert reminder["status"] == "scheduled"
    [call] = [c for c in agent.completed if c.kind == "system"]
    assert "moved" in call.texts[0]
    assert [e["status"] for e in await table(db, "calendar_events")] == ["processed", "processed"]


async def test_booking_made_by_the_agent_is_recorded_not_injected(
    start_app: StartApp, db: Database, keys: Secrets, clock: FixedClock, customer: Client, agent: FakeAgent
) -> None:
    await stored_appointment(db, clock.now(), customer, source="agent")
    async with start_app() as running:
        response = await post_delivery(running, keys, clock, delivery("calendly-invitee-created.json"))
        assert response.status_code == 200
        assert response.json()["customer_notified"] is False
    [event] = await table(db, "calendar_events")
    assert event["status"] == "ignored"
    assert await table(db, "system_events") == []
    assert agent.calls == []
    assert len(await table(db, "appointments")) == 1


async def test_booking_on_calendly_by_a_known_customer_found_by_a_proven_email(
    start_app: StartApp, db: Database, keys: Secrets, clock: FixedClock, agent: FakeAgent
) -> None:
    # Proven as the agent's booking proves it (a typed e-mail alone matches nobody: tests/server/test_identity.py).
    john = await ClientRepository(db).ensure("whatsapp:+34611000111", now=clock.now())
    await ClientRepository(db).prove_email(john.id, "John.Doe@example.com", source="agent_booking", now=clock.now())
    async with start_app() as running:
        response = await post_delivery(running, keys, clock, delivery("calendly-invitee-created.json"))
        assert response.json()["customer_notified"] is True
        await system_turns(agent, 1)
    [call] = [c for c in agent.completed if c.kind == "system"]
    assert call.wa_id == "whatsapp:+34611000111"
    assert "booked" in call.texts[0]


async def test_booking_for_an_unknown_customer_is_mirrored_without_a_turn(
    start_app: StartApp, db: Database, keys: Secrets, clock: FixedClock, agent: FakeAgent
) -> None:
    async with start_app() as running:
        response = await post_delivery(running, keys, clock, delivery("calendly-invitee-created.json"))
    assert response.json() | {"appointment_id": None} == {
        "status": "processed",
        "detail": "appointment booked on Calendly",
        "appointment_id": None,
        "customer_notified": False,
    }
    [appointment] = await table(db, "appointments")
    assert appointment["client_id"] is None
    assert await table(db, "reminders") == []  # nobody to remind
    assert agent.calls == []


async def test_verification_probe(server: RunningApp) -> None:
    response = await server.client.get("/api/calendly/webhook")
    assert response.status_code == 200
    assert response.json()["webhook_url"] == "https://asistente.example.com/api/calendly/webhook"
    assert response.json()["signing_key_configured"] is True


async def test_reschedule_pair_arriving_in_reverse_order_still_moves_one_appointment(
    server: RunningApp, db: Database, keys: Secrets, clock: FixedClock, customer: Client
) -> None:
    appointment = await stored_appointment(db, clock.now(), customer)
    created = delivery(
        "calendly-invitee-created.json",
        event_uri=EVENT_2,
        invitee_uri=INVITEE_2,
        start=NEW_START,
        old_invitee=INVITEE_1,
    )
    canceled = delivery("calendly-invitee-canceled.json", rescheduled=True, new_invitee=INVITEE_2)
    assert (await post_delivery(server, keys, clock, created)).json()["detail"] == "appointment rescheduled"
    assert (await post_delivery(server, keys, clock, canceled)).json()["status"] == "ignored"
    [moved] = await table(db, "appointments")
    assert (moved["id"], moved["status"], moved["external_id"]) == (appointment.id, "confirmed", EVENT_2)


async def test_a_delivery_interrupted_before_it_was_applied_is_finished_by_the_worker(
    start_app: StartApp, db: Database, clock: FixedClock, customer: Client, agent: FakeAgent
) -> None:
    body = delivery("calendly-invitee-created.json", text_reminder_number="+34600123456")
    await db.execute(
        "INSERT INTO calendar_events (delivery_key, event_type, external_id, payload, status, received_at) "
        "VALUES ('interrupted', 'invitee.created', :event, :payload, 'received', :at)",
        {"event": EVENT_1, "payload": body, "at": clock.now() - timedelta(minutes=2)},
    )
    async with start_app():
        await system_turns(agent, 1)
    [event] = await table(db, "calendar_events")
    [appointment] = await table(db, "appointments")
    assert (event["status"], event["appointment_id"]) == ("processed", appointment["id"])
    assert appointment["client_id"] == customer.id


async def test_a_signed_delivery_with_nul_characters_is_stored_without_them(
    server: RunningApp, db: Database, keys: Secrets, clock: FixedClock
) -> None:
    body = delivery("calendly-invitee-created.json", email="ana\x00@example.com")
    body["payload"].update({"name": "A\x00na", "odd\x00key": ["\x00"]})

    response = await post_delivery(server, keys, clock, body)

    assert response.status_code == 200, response.text
    [event] = await table(db, "calendar_events")
    assert "\\u0000" not in json.dumps(parse_json(event["payload"]))
    [appointment] = await table(db, "appointments")
    assert "\x00" not in json.dumps(appointment, default=str, ensure_ascii=False)


@pytest.mark.parametrize(
    ("answers", "found"),
    [
        (["2026-11-30", "600 123 456"], True),  # a national number, read with the salon's +34
        (["2026-11-30", "20261130"], False),  # a date is no phone number (it used to become +20261130)
    ],
)
async def test_booking_found_by_a_national_phone_answer_not_by_a_date(
    server: RunningApp,
    db: Database,
    keys: Secrets,
    clock: FixedClock,
    customer: Client,
    answers: list[str],
    found: bool,
) -> None:
    await ClientRepository(db).ensure("whatsapp:+20261130", now=clock.now())  # would match a date read as E.164
    qas = [{"question": f"Q{i}", "answer": answer, "position": i} for i, answer in enumerate(answers)]
    body = delivery("calendly-invitee-created.json", email=None, questions_and_answers=qas)

    response = await post_delivery(server, keys, clock, body)

    assert response.status_code == 200, response.text
    [appointment] = await table(db, "appointments")
    assert appointment["client_id"] == (customer.id if found else None)


FRESH = "2026-11-24T20:59:55.000000Z"  # five seconds before the test's "now": the agent may still be writing


async def test_a_fresh_booking_that_is_the_agents_own_is_not_announced_twice(
    start_app: StartApp, db: Database, keys: Secrets, clock: FixedClock, customer: Client, agent: FakeAgent
) -> None:
    """Calendly's webhook for the agent's booking arrives before the agent stored its row: it waits, then is
    recognised as the agent's own (one appointment, nothing injected)."""
    async with start_app(run_worker=False) as running:
        body = delivery("calendly-invitee-created.json", created_at=FRESH, text_reminder_number="+34600123456")
        response = await post_delivery(running, keys, clock, body)
        assert response.status_code == 202 and response.json()["status"] == "received"
        assert await table(db, "appointments") == []  # deferred, nothing mirrored yet
        await stored_appointment(db, clock.now(), customer, source="agent")  # the agent's write lands
        clock.advance(timedelta(seconds=1))
        applied = await running.services.calendly.retry_unfinished(
            older_than=timedelta(0), give_up_after=timedelta(days=1)
        )
        assert applied == 1
    [event] = await table(db, "calendar_events")
    assert event["status"] == "ignored"
    [appointment] = await table(db, "appointments")
    assert appointment["source"] == "agent"
    assert await table(db, "system_events") == [] and agent.calls == []


async def test_a_fresh_booking_from_the_calendly_page_is_applied_by_the_worker_shortly_after(
    start_app: StartApp, db: Database, keys: Secrets, clock: FixedClock, customer: Client, agent: FakeAgent
) -> None:
    async with start_app() as running:  # the fast test worker sweeps deferred deliveries at once
        body = delivery("calendly-invitee-created.json", created_at=FRESH, text_reminder_number="+34600123456")
        response = await post_delivery(running, keys, clock, body)
        assert response.status_code == 202 and response.json()["status"] == "received"
        clock.advance(timedelta(seconds=1))
        await system_turns(agent, 1)
    [appointment] = await table(db, "appointments")
    assert (appointment["source"], appointment["client_id"]) == ("calendly", customer.id)
    [event] = await table(db, "calendar_events")
    assert event["status"] == "processed"
