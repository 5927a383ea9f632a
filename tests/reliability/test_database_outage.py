"""PostgreSQL down (crashed: `pg_ctl stop -m immediate`) for 10 s, 40 s and (long) 5 minutes while customers keep
writing.

Required (issue 10, item 4): the webhook answers within a few seconds whatever the database does, and what it
acknowledged is durable: every acknowledged message is stored and answered once the database is back.
"""

from __future__ import annotations

import time

import pytest

from tests.reliability.figures import last_answer, pending_work, report
from tests.reliability.flows import ask, keep_writing
from tests.reliability.waits import eventually, wait_for
from tests.reliability.world import World

# "A few seconds": well inside Twilio's 15 s webhook timeout.
WEBHOOK_BOUND = 5.0


@pytest.mark.parametrize(
    "seconds",
    [
        pytest.param(10.0, id="10s"),
        pytest.param(40.0, id="40s"),
        pytest.param(300.0, id="5min", marks=pytest.mark.reliability_long),
    ],
)
@pytest.mark.timeout(900)
def test_database_outage(world: World, seconds: float) -> None:
    world.stack.start(workers=1)
    started = time.monotonic()
    warm = ask(world, 0)
    wait_for(lambda: last_answer(world.twilio, [warm]) is not None, 60, "the first answer")
    world.cluster.stop("immediate")
    with keep_writing(world, range(1, 9), every=2.0):
        time.sleep(seconds)  # the outage itself: the scenario's parameter
        world.cluster.start()
    back = time.monotonic()
    ask(world, 10)  # and after
    acked = world.customers.acknowledged()
    eventually(lambda: last_answer(world.twilio, acked) is not None, 120)
    settled = eventually(lambda: pending_work(world.database_url) == 0, 60)
    figures = world.measure(f"database_down_{seconds:g}s", f"PostgreSQL crashed for {seconds:g} s", started)
    done = last_answer(world.twilio, acked)
    figures.recovery_seconds = None if done is None else round(done - back, 1)
    report(
        figures,
        {
            "every message acknowledged": figures.acknowledged == figures.sent,
            f"webhook answered within {WEBHOOK_BOUND:g} s": figures.ack_max_seconds <= WEBHOOK_BOUND,
            "every message stored": figures.stored == figures.sent,
            "none lost": figures.lost == 0,
            "none answered twice": figures.duplicated == 0,
            "work settled": settled,
        },
    )
