"""What an admin sees in LangSmith, end to end: signed webhooks through the server and its worker, the real
assistant around a scripted model, traces sent by the real LangSmith client to a local HTTP double of LangSmith.

Checked on the bytes that left the process (multipart bodies, decompressed): named root runs with the turn's
metadata, one thread per customer under a keyed hash, the confirmation pause not an error, no phone number, e-mail
or name anywhere; and feedback, from staff through the admin API and from the system's own signals, arriving on the
right run.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import timedelta
from typing import Any

from agent.prompt_version import prompt_version
from core.business import Business
from core.clock import FixedClock
from core.settings import Settings
from server.http.auth import mint_admin_token
from store import Database
from store.clients import ClientRepository
from tests.langsmith_double import FAKE_API_KEY, Json, LangSmithDouble
from tests.scripted_model import ScriptedChatModel, Step, call, says, uses
from tests.server.conftest import RunningApp, Secrets, StartApp
from tests.server.helpers import CUSTOMER, inbound_form, outbox_settled, post_signed, wait_until
from tests.server.test_gate_end_to_end import (
    EVENT_A,
    INVITEE_A,
    START_A,
    appointment,
    cancellation,
    post_calendly,
    system_event_done,
)

NAME = "María López"
EMAIL = "maria.lopez@example.com"
DIGITS = CUSTOMER.removeprefix("whatsapp:+")  # 34600123456 (or whatever the helpers' customer is)
NATIONAL = DIGITS[-9:]


def scripted(*steps: Step) -> ScriptedChatModel:
    model = ScriptedChatModel(script=[])
    model.extend(*steps)
    return model


@asynccontextmanager
async def traced_app(
    start_app: StartApp, make_settings: Callable[..., Settings], model: ScriptedChatModel, **settings: Any
) -> AsyncIterator[tuple[RunningApp, LangSmithDouble]]:
    """The server with tracing on against the LangSmith double, running the real assistant around `model`."""
    with LangSmithDouble() as double:
        configured = make_settings(
            langsmith_tracing=True,
            langsmith_api_key=FAKE_API_KEY,
            langsmith_endpoint=double.url,
            langsmith_project="salon-prod",
            **settings,
        )
        async with start_app(settings=configured, agent=None, model=model) as running:
            yield running, double


async def says_on_whatsapp(running: RunningApp, keys: Secrets, sid: str, body: str) -> None:
    form = inbound_form(sid, body, ProfileName=NAME)
    response = await post_signed(running.client, keys.twilio_token, "/webhook/whatsapp", form)
    assert response.status_code == 200, response.text


def roots_named(double: LangSmithDouble, name: str, count: int) -> list[Json]:
    """Wait for `count` root runs called `name` to have ended (their outputs arrived), oldest first."""

    def ended() -> list[Json] | None:
        found = [r for r in double.roots() if r.get("name") == name and r.get("end_time")]
        return found if len(found) >= count else None

    found = double.wait_for(ended, timeout=10, what=f"{count} ended '{name}' root runs")
    return sorted(found, key=lambda r: str(r.get("start_time")))


def metadata(run: Json) -> dict[str, Any]:
    return dict((run.get("extra") or {}).get("metadata") or {})


def assert_no_personal_data(double: LangSmithDouble) -> None:
    sent = double.all_bytes()
    for needle in (DIGITS, NATIONAL, EMAIL, "maria.lopez", NAME, "María", "López", "Lopez"):
        at = sent.find(needle.encode())
        assert at < 0, f"{needle!r} was sent to LangSmith: ...{sent[max(0, at - 150) : at + 60]!r}..."


async def test_a_booking_is_two_named_traces_in_one_masked_thread_and_staff_feedback_reaches_its_run(
    start_app: StartApp,
    make_settings: Callable[..., Settings],
    db: Database,
    keys: Secrets,
    clock: FixedClock,
    business: Business,
) -> None:
    model = scripted(
        uses(
            call(
                "book_appointment",
                service="Corte y Peinado",
                start_time="2026-11-26T10:00:00",
                customer_name=NAME,
                customer_email=EMAIL,
            )
        ),
        says(f"¡Hecho, {NAME}! Te esperamos el jueves. Te escribiremos a {EMAIL} o al +{DIGITS}."),
    )
    async with traced_app(start_app, make_settings, model) as (running, double):
        await says_on_whatsapp(
            running, keys, "SM" + "1" * 32, f"Hola, soy {NAME}, corte el jueves a las 10. Mi correo: {EMAIL}"
        )
        await outbox_settled(db, 1)
        await says_on_whatsapp(running, keys, "SM" + "2" * 32, "Sí")
        await outbox_settled(db, 2)
        running.services.tracer.flush()
        question, booking = roots_named(double, "WhatsApp turn", 2)

        # The turn's metadata, on the root an admin opens.
        first, second = metadata(question), metadata(booking)
        assert first["customer"].startswith("cust_") and first["customer"] == second["customer"]
        assert first["thread_id"] == second["thread_id"] == first["customer"]  # one LangSmith thread per customer
        assert first["turn_kind"] == second["turn_kind"] == "customer"
        assert first["prompt_version"] == prompt_version(business) and first["model"] == "ScriptedChatModel"
        assert first["app_version"]
        assert first["message_sids"] == ["SM" + "1" * 32] and second["message_sids"] == ["SM" + "2" * 32]
        assert first["outcome"] == "asked_to_confirm" and second["outcome"] == "booked"
        [appointment_id] = [r["id"] for r in await db.fetch_all("SELECT id FROM appointments")]
        assert second["appointment_ids"] == [appointment_id] and first["appointment_ids"] == []
        assert question["session_name"] == "salon-prod"

        # The pause for the customer's yes is a normal end; the write shows as a tool run under the second turn.
        assert not [run["name"] for run in double.runs.values() if run.get("error")]
        tools = [run for run in double.runs.values() if run.get("name") == "book_appointment"]
        assert len(tools) == 1 and tools[0]["trace_id"] == booking["id"]
        assert "[name]" in str(tools[0]["inputs"]) and "***@***" in str(tools[0]["inputs"])
        assert all(metadata(run).get("thread_id") == first["thread_id"] for run in double.runs.values())

        # Each traced turn is stored with its run: what staff's ratings and the signals attach to.
        stored = await db.fetch_all("SELECT run_id, outcome FROM turn_runs ORDER BY created_at, outcome")
        assert {(r["run_id"], r["outcome"]) for r in stored} == {
            (question["id"], "asked_to_confirm"),
            (booking["id"], "booked"),
        }

        # Staff rate the booking turn by the customer's "Sí" (its MessageSid); LangSmith gets it on that run.
        token = mint_admin_token(keys.jwt_secret, subject="ana", now=clock.now(), ttl=timedelta(hours=1))
        rating = {"message_sid": "SM" + "2" * 32, "score": 1, "comment": f"Muy bien con {NAME}"}
        response = await running.client.post("/api/feedback", json=rating, headers={"Authorization": f"Bearer {token}"})
        assert response.status_code == 201, response.text
        assert response.json()["sent"] is True and response.json()["run_id"] == booking["id"]
        [feedback] = double.wait_for(lambda: list(double.feedback.values()) or None, what="staff feedback")
        assert str(feedback["run_id"]) == booking["id"] and feedback["key"] == "staff_rating"
        assert feedback["score"] == 1 and "[name]" in feedback["comment"]
        assert_no_personal_data(double)


async def test_a_hand_off_and_a_repeat_become_feedback_on_their_runs(
    start_app: StartApp, make_settings: Callable[..., Settings], db: Database, keys: Secrets
) -> None:
    model = scripted(
        says("Nuestro horario es de 10 a 20h."),
        uses(call("handoff_to_staff", reason="quiere hablar con una persona")),
        says("Te paso con el equipo."),
    )
    async with traced_app(start_app, make_settings, model) as (running, double):
        question = "¿Puedo cambiar la cita de mañana por la tarde?"
        await says_on_whatsapp(running, keys, "SM" + "a" * 32, question)
        await outbox_settled(db, 1)
        await says_on_whatsapp(running, keys, "SM" + "b" * 32, question + "?")  # says it again: not helped
        await wait_until(lambda: _count(db, "SELECT count(*) FROM turn_runs"), within=10)
        running.services.tracer.flush()
        await running.services.worker.maintenance()  # signals are sent by the maintenance pass
        hours, handoff = roots_named(double, "WhatsApp turn", 2)

        # Sent by a maintenance pass (this one or the worker's own): waited for without blocking their event loop.
        await wait_until(lambda: _has_signals(double, {"customer_repeated", "handoff"}), within=10)
        found = {f["key"]: str(f["run_id"]) for f in double.feedback.values()}
        assert found["handoff"] == handoff["id"]
        assert found["customer_repeated"] == hours["id"]  # on the answer that did not help
        assert metadata(handoff)["outcome"] == "handed_off"
        assert_no_personal_data(double)


async def _has_signals(double: LangSmithDouble, keys: set[str]) -> bool:
    return keys <= {f["key"] for f in double.feedback.values()}


async def _has_feedback(double: LangSmithDouble) -> bool:
    return bool(double.feedback)


async def _count(db: Database, sql: str, *, at_least: int = 2) -> bool:
    return int(await db.fetch_value(sql) or 0) >= at_least


async def test_a_calendly_cancellation_is_a_calendar_event_trace_without_the_invitees_data(
    start_app: StartApp,
    make_settings: Callable[..., Settings],
    db: Database,
    keys: Secrets,
    clock: FixedClock,
) -> None:
    customer = await ClientRepository(db).ensure(CUSTOMER, now=clock.now(), profile_name=NAME)
    cancelled = await appointment(db, customer, EVENT_A, INVITEE_A, START_A)
    model = scripted(uses(call("send_whatsapp", message=f"{NAME}, tu cita se ha cancelado.")), says("Avisada."))
    async with traced_app(start_app, make_settings, model) as (running, double):
        response = await post_calendly(running, keys, clock, cancellation(EVENT_A, INVITEE_A, START_A))
        assert response.status_code == 200, response.text
        await system_event_done(db)
        running.services.tracer.flush()
        [event] = roots_named(double, "Calendar event", 1)
        [event_id] = [r["id"] for r in await db.fetch_all("SELECT id FROM system_events")]
        assert metadata(event)["turn_kind"] == "system" and metadata(event)["event_id"] == str(event_id)
        assert metadata(event)["outcome"] == "notified"
        [stored] = await db.fetch_all("SELECT run_id, kind, turn_ref FROM turn_runs")
        assert (stored["run_id"], stored["kind"], stored["turn_ref"]) == (event["id"], "system", event_id)
        assert cancelled.id in str(event["inputs"])  # ids are not personal data: kept for the admin
        sent = double.all_bytes()
        assert b"john.doe@example.com" not in sent and NAME.encode() not in sent
        assert_no_personal_data(double)


async def test_a_failed_turn_is_stored_flagged_and_ratable(
    start_app: StartApp, make_settings: Callable[..., Settings], db: Database, keys: Secrets
) -> None:
    def model_down(messages: object) -> Any:
        raise RuntimeError("APIConnectionError: the model provider is down")

    async with traced_app(start_app, make_settings, scripted(model_down)) as (running, double):
        await says_on_whatsapp(running, keys, "SM" + "f" * 32, "¿Abrís el sábado?")
        await wait_until(lambda: _count(db, "SELECT count(*) FROM turn_feedback", at_least=1), within=10)
        running.services.tracer.flush()
        [failed] = roots_named(double, "WhatsApp turn", 1)
        assert failed["error"] and metadata(failed)["outcome"] == "failed"
        [stored] = await db.fetch_all("SELECT run_id, outcome FROM turn_runs")
        assert (stored["run_id"], stored["outcome"]) == (failed["id"], "failed")
        # Sent by the worker's maintenance pass: waited for without blocking the event loop it runs on.
        await wait_until(lambda: _has_feedback(double), within=10)
        [signal] = double.feedback.values()
        assert signal["key"] == "turn_failed" and str(signal["run_id"]) == failed["id"]
