"""kill -9 of a worker mid-turn, mid-send and mid-booking, with a second worker up to take over.

Each crash lands while a request is in flight (held by a double): the model's answer, Twilio's response to an
accepted message, Calendly's response to a booking it has made. Nothing may be lost or said twice; the booking
exists once, in Calendly and in the store, and the customer hears that it is booked.
"""

from __future__ import annotations

import time

import pytest

from tests.reliability.figures import answers, last_answer, pending_work, report
from tests.reliability.flows import ask, confirm, request_booking
from tests.reliability.model_policy import BOOKED, NOT_BOOKED
from tests.reliability.waits import eventually, wait_for
from tests.reliability.world import World

LEASE_SECONDS = 15.0
# A dead worker's conversations are taken over within about the lease; the rest is one short turn.
TAKEOVER_BOUND = LEASE_SECONDS + 5.0


@pytest.mark.timeout(180)
def test_kill_worker_mid_turn(world: World) -> None:
    [first] = world.stack.start(workers=1)
    started = time.monotonic()
    world.model.gate.close()
    sent = [ask(world, number) for number in range(5)]
    wait_for(lambda: world.model.gate.held >= len(sent), 60, "five turns waiting on the model")
    world.stack.start_worker()
    first.kill()
    killed = time.monotonic()
    world.model.gate.open()  # the dead worker's requests are answered into closed sockets
    eventually(lambda: last_answer(world.twilio, sent) is not None, 90)
    settled = eventually(lambda: pending_work(world.database_url) == 0, 30)
    figures = world.measure("kill_mid_turn", "kill -9 of the worker while 5 turns wait on the model", started)
    done = last_answer(world.twilio, sent)
    figures.recovery_seconds = None if done is None else round(done - killed, 1)
    report(
        figures,
        {
            "none lost": figures.lost == 0,
            "none answered twice": figures.duplicated == 0,
            f"taken over within {TAKEOVER_BOUND:g} s": done is not None and done - killed <= TAKEOVER_BOUND,
            "work settled": settled,
        },
    )


@pytest.mark.timeout(180)
def test_kill_worker_mid_send(world: World) -> None:
    [first] = world.stack.start(workers=1)
    started = time.monotonic()
    world.twilio.accepted_gate.close()
    sent = [ask(world, number) for number in range(8)]
    # Twilio has accepted every reply (the customers get them) but the worker has not heard back.
    wait_for(lambda: world.twilio.accepted_gate.held >= len(sent), 60, "eight replies accepted, responses held")
    world.stack.start_worker()
    first.kill()
    killed = time.monotonic()
    world.twilio.accepted_gate.open()
    settled = eventually(lambda: pending_work(world.database_url) == 0, 90)
    figures = world.measure("kill_mid_send", "kill -9 of the worker after Twilio accepted 8 replies", started)
    figures.recovery_seconds = round(time.monotonic() - killed, 1) if settled else None
    figures.extra["twilio_lookups"] = world.twilio.list_requests
    report(
        figures,
        {
            "none lost": figures.lost == 0,
            "none sent twice": figures.duplicated == 0,
            "work settled": settled,
        },
    )


@pytest.mark.timeout(180)
def test_kill_worker_mid_booking(world: World) -> None:
    [first] = world.stack.start(workers=1)
    started = time.monotonic()
    asked = request_booking(world, 0, "11:00")
    wait_for(lambda: bool(answers(world.twilio, asked)), 60, "the confirmation question")
    world.calendly.booking_gate.close()
    yes = confirm(world, 0)
    # Calendly has made the booking; its answer never reaches the worker.
    wait_for(lambda: world.calendly.booking_gate.held >= 1, 60, "the booking made at Calendly, answer held")
    world.stack.start_worker()
    first.kill()
    killed = time.monotonic()
    world.calendly.booking_gate.open()

    def outcome() -> list[str]:
        return [m.body for m in world.twilio.to(yes.wa_id) if m.monotonic >= yes.sent_at]

    eventually(lambda: any(BOOKED in b or NOT_BOOKED in b for b in outcome()), 90)
    settled = eventually(lambda: pending_work(world.database_url) == 0, 30)
    figures = world.measure("kill_mid_booking", "kill -9 of the worker while Calendly books", started, calendly=True)
    done = last_answer(world.twilio, [yes])
    figures.recovery_seconds = None if done is None else round(done - killed, 1)
    figures.extra["told_not_booked"] = sum(NOT_BOOKED in b for b in outcome())
    report(
        figures,
        {
            "one booking at Calendly": figures.bookings_calendly == 1,
            "one appointment row": figures.appointments_stored == 1,
            "no orphan, no double booking": figures.orphans == 0 and figures.double_bookings == 0,
            "customer told booked, once": figures.lost == 0 and figures.duplicated == 0,
            "customer never told it failed": figures.extra["told_not_booked"] == 0,
            "work settled": settled,
        },
    )
