"""No fault: 20 customers at once, two workers. The reference every other scenario is read against."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from tests.reliability.figures import last_answer, pending_work, report
from tests.reliability.flows import ask, book
from tests.reliability.waits import eventually
from tests.reliability.world import World

CUSTOMERS = 20
BOOKING_TIMES = ("10:00", "10:15", "10:30", "10:45")


@pytest.mark.timeout(240)
def test_baseline_twenty_customers(world: World) -> None:
    world.stack.start(workers=2)
    started = time.monotonic()

    def customer(number: int) -> None:
        if number < len(BOOKING_TIMES):
            book(world, number, BOOKING_TIMES[number])
        else:
            ask(world, number)
            ask(world, number, 1)

    with ThreadPoolExecutor(max_workers=8) as pool:
        list(pool.map(customer, range(CUSTOMERS)))
    acked = world.customers.acknowledged()
    eventually(lambda: last_answer(world.twilio, acked) is not None, 90)
    settled = eventually(lambda: pending_work(world.database_url) == 0, 30)
    figures = world.measure("baseline", "none", started, calendly=True)
    report(
        figures,
        {
            "every message acknowledged": figures.acknowledged == figures.sent,
            "every message stored": figures.stored == figures.sent,
            "none lost": figures.lost == 0,
            "none answered twice": figures.duplicated == 0,
            "no apology, no holding message": figures.apologies == 0 and figures.holding == 0,
            "four bookings at Calendly, four rows": figures.bookings_calendly == figures.appointments_stored == 4,
            "no orphan, no double booking": figures.orphans == 0 and figures.double_bookings == 0,
            "work settled": settled,
        },
        context=world.stack.logs() if not settled else "",
    )
