"""Write calls are refused for their real reason, with free times to offer, before the customer is asked anything.

Each scenario drives the real graph with a scripted model on the local calendar and on Calendly (`scenario` in
conftest.py; cassettes tests/cassettes/calendly/agent_<test name without "test_">.yaml), on SQLite and PostgreSQL.
A refusal must come back to the model as the tool result, with no question pending, no interrupt, and no
appointment (or seat) changed. Now is Tuesday 24 November 2026, 22:00 in Madrid; the salon opens Thursday
09:30-14:00 and 16:00-20:00, Friday 09:30-14:00 and 16:00-20:30, with two chairs and a 15-minute grid.
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from typing import Any

from langchain_core.messages import ToolMessage

from agent.api import TurnResult
from agent.assistant import thread_config
from store.appointments import slot_starts
from tests.agent.conftest import CUSTOMER, OTHER, Harness, madrid
from tests.calendly.conftest import EVENT_URI, INVITEE_URI
from tests.scripted_model import call, says, uses

CORTE_MINUTES = 45


def _result(message: ToolMessage) -> dict[str, Any]:
    parsed: dict[str, Any] = json.loads(str(message.content))
    return parsed


def _times(alternatives: list[dict[str, Any]], day: str) -> list[str]:
    """Every start time offered on `day` ('09:30-10:00' -> 09:30, 09:45, 10:00)."""
    times: list[str] = []
    for group in alternatives:
        if group["date"] != day:
            continue
        for item in group["start_times"]:
            first, _, last = item.partition("-")
            current, end = datetime.strptime(first, "%H:%M"), datetime.strptime(last or first, "%H:%M")
            while current <= end:
                times.append(current.strftime("%H:%M"))
                current += timedelta(minutes=15)
    return times


async def _rows(h: Harness) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Every appointment row and seat claim, to show that a refusal changed nothing."""
    appointments = await h.db.fetch_all(
        "SELECT id, client_id, service, status, start_at, end_at, updated_at, external_id, external_invitee "
        "FROM appointments ORDER BY id"
    )
    claims = await h.db.fetch_all(
        "SELECT resource, slot_start, appointment_id FROM calendar_claims ORDER BY resource, slot_start"
    )
    return appointments, claims


async def _own_appointment(h: Harness, start: datetime) -> str:
    """María's Corte y Peinado, booked earlier: seat claims on the local calendar, the mirror of her Calendly
    event CCCC... (invitee DDDD...) on Calendly."""
    client = await h.clients.ensure(CUSTOMER, now=h.clock.now())
    end = start + timedelta(minutes=CORTE_MINUTES)
    local = h.calendar.kind == "local"
    appointment = await h.appointments.create(
        client_id=client.id,
        service="Corte y Peinado",
        start_at=start,
        end_at=end,
        source="agent",
        calendar=h.calendar.kind,
        now=h.clock.now(),
        claim_slots=slot_starts(start, end, h.business.slot_minutes) if local else (),
        capacity=h.business.capacity,
        external_id=None if local else EVENT_URI,
        external_invitee=None if local else INVITEE_URI,
    )
    return appointment.id


async def _others_booked(h: Harness, start: datetime, minutes: int, chairs: int) -> None:
    """Other customers hold `chairs` chairs from `start` (local calendar). On Calendly they booked on its page,
    and the cassette's availability already leaves those times out."""
    if h.calendar.kind != "local":
        return
    other = await h.clients.ensure(OTHER, now=h.clock.now())
    end = start + timedelta(minutes=minutes)
    for _ in range(chairs):
        await h.appointments.create(
            client_id=other.id,
            service="Peinado",
            start_at=start,
            end_at=end,
            source="staff",
            calendar="local",
            now=h.clock.now(),
            claim_slots=slot_starts(start, end, h.business.slot_minutes),
            capacity=h.business.capacity,
        )


async def _refused_before_asking(h: Harness, reply: TurnResult, code: str) -> dict[str, Any]:
    """The turn ended with the model's answer to a refusal: no question asked, nothing waiting for a yes."""
    assert not reply.awaiting_confirmation
    assert reply.replies == ("Te propongo otra hora.",)
    snapshot = await h.graph.aget_state(thread_config(CUSTOMER))
    assert snapshot.values.get("pending") is None and not snapshot.interrupts and not snapshot.next
    refusal = _result((await h.tool_results())[-1])
    assert refusal["ok"] is False and refusal["error"] == code, refusal
    # The model read the refusal before it answered.
    assert any(f'"error": "{code}"' in str(m.content) for m in h.model.calls[-1])
    h.model.assert_complete()
    return refusal


async def test_off_grid_booking_is_refused_as_off_grid(scenario: Harness) -> None:
    h = scenario
    before = await _rows(h)
    h.model.extend(
        uses(call("book_appointment", service="corte", start_time="2026-11-26T10:07:00")),
        says("Te propongo otra hora."),
    )
    refusal = await _refused_before_asking(h, await h.say("corte el jueves a las 10:07"), "off_grid")
    assert refusal["step_minutes"] == 15
    thursday = _times(refusal["alternatives"], "2026-11-26")
    assert {"10:00", "10:15"} <= set(thursday) and "10:07" not in thursday  # the nearest start times, same day
    assert await _rows(h) == before and await h.confirmed() == []


async def test_booking_beyond_the_horizon_is_refused_as_beyond_horizon(scenario: Harness) -> None:
    h = scenario
    before = await _rows(h)
    h.model.extend(
        uses(call("book_appointment", service="corte", start_time="2027-03-02T10:00:00")),
        says("Te propongo otra hora."),
    )
    refusal = await _refused_before_asking(h, await h.say("corte el 2 de marzo a las 10"), "beyond_horizon")
    assert refusal["horizon_days"] == 60 and refusal["last_bookable_day"] == "2027-01-23"
    # The latest free times inside the horizon, nearest to the asked time of day on its last day (a Saturday).
    assert [group["date"] for group in refusal["alternatives"]] == ["2027-01-23"]
    assert "10:00" in _times(refusal["alternatives"], "2027-01-23")
    assert await _rows(h) == before and await h.confirmed() == []


async def test_reschedule_ending_after_closing_is_refused_before_asking(scenario: Harness) -> None:
    h = scenario
    appointment_id = await _own_appointment(h, madrid(2026, 11, 26, 19, 0))
    before = await _rows(h)
    # 19:30 overlaps her own 19:00-19:45, but 45 minutes from 19:30 end at 20:15, after Thursday's 20:00 closing.
    h.model.extend(
        uses(call("reschedule_appointment", appointment_id=appointment_id, new_start_time="2026-11-26T19:30:00")),
        says("Te propongo otra hora."),
    )
    refusal = await _refused_before_asking(h, await h.say("¿me la pasas a las 19:30?"), "outside_hours")
    assert refusal["opening_hours"] == ["09:30-14:00", "16:00-20:00"] and refusal["duration_minutes"] == 45
    thursday = _times(refusal["alternatives"], "2026-11-26")
    assert "19:15" in thursday and "19:30" not in thursday
    assert "19:00" not in thursday  # never offered the time the appointment already has
    assert await _rows(h) == before


async def test_reschedule_to_an_off_grid_time_is_refused_before_asking(scenario: Harness) -> None:
    h = scenario
    appointment_id = await _own_appointment(h, madrid(2026, 11, 26, 10, 0))
    before = await _rows(h)
    h.model.extend(
        uses(call("reschedule_appointment", appointment_id=appointment_id, new_start_time="2026-11-26T10:07:00")),
        says("Te propongo otra hora."),
    )
    refusal = await _refused_before_asking(h, await h.say("¿puede ser a las 10:07?"), "off_grid")
    assert refusal["step_minutes"] == 15
    thursday = _times(refusal["alternatives"], "2026-11-26")
    assert "10:15" in thursday and "10:00" not in thursday
    assert await _rows(h) == before


async def test_reschedule_whose_new_part_is_taken_is_refused_before_asking(scenario: Harness) -> None:
    h = scenario
    appointment_id = await _own_appointment(h, madrid(2026, 11, 27, 10, 0))
    await _others_booked(h, madrid(2026, 11, 27, 11, 0), CORTE_MINUTES, chairs=2)
    before = await _rows(h)
    # 10:30-11:15 overlaps her own 10:00-10:45, but both chairs are taken from 11:00: her own seat does not help.
    h.model.extend(
        uses(call("reschedule_appointment", appointment_id=appointment_id, new_start_time="2026-11-27T10:30:00")),
        says("Te propongo otra hora."),
    )
    refusal = await _refused_before_asking(h, await h.say("¿y a las 10:30?"), "slot_taken")
    friday = _times(refusal["alternatives"], "2026-11-27")
    assert friday and not {"10:30", "11:00"} & set(friday)
    assert await _rows(h) == before


async def test_valid_reschedule_overlapping_its_own_slot_still_asks(scenario: Harness) -> None:
    h = scenario
    appointment_id = await _own_appointment(h, madrid(2026, 11, 27, 10, 0))
    # The other chair is taken until 11:00, so 10:30 is free only once her own seat is released by the move.
    await _others_booked(h, madrid(2026, 11, 27, 10, 0), 60, chairs=1)
    before = await _rows(h)
    h.model.extend(
        uses(call("reschedule_appointment", appointment_id=appointment_id, new_start_time="2026-11-27T10:30:00"))
    )
    question = await h.say("¿la puedes retrasar media hora?")
    assert question.awaiting_confirmation and "10:30" in question.replies[0]
    pending = (await h.state())["pending"]
    assert pending["tool_call"]["args"]["new_start_time"] == "2026-11-27T10:30:00"
    assert await _rows(h) == before  # nothing moves before the yes
    if h.calendar.kind == "local":
        # The calendar agrees with the validation: after the yes the seats are swapped and the move is made.
        h.model.extend(says("Cambiada a las 10:30."))
        await h.say("sí")
        moved = await h.appointments.get(appointment_id)
        assert moved is not None and moved.start_at == madrid(2026, 11, 27, 10, 30)
        h.model.assert_complete()
