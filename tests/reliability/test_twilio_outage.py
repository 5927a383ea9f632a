"""Twilio failing for minutes while customers keep writing: 500s, then 429s with Retry-After.

Required (issue 10, item 2): transient failures are retried on a long schedule that honours Retry-After, and what
failed is re-driven when Twilio answers again: nothing lost, nothing sent twice.
"""

from __future__ import annotations

import time

import pytest

from tests.reliability.figures import Figures, last_answer, pending_work, report
from tests.reliability.flows import ask, keep_writing
from tests.reliability.twilio_double import Attempt, TwilioDouble, TwilioFault
from tests.reliability.waits import eventually, wait_for
from tests.reliability.world import World

WRITERS = range(1, 11)
# Slack for clocks and polling when checking that a retry came no earlier than Retry-After said.
RETRY_AFTER_SLACK = 0.5


def _outage(world: World, name: str, fault: TwilioFault, seconds: float) -> tuple[Figures, bool]:
    """Warm up, break Twilio for `seconds` while customers write, mend it, one more customer writes, then count."""
    world.stack.start(workers=1)
    started = time.monotonic()
    warm = ask(world, 0)
    wait_for(lambda: last_answer(world.twilio, [warm]) is not None, 60, "the first answer")
    world.twilio.fault = fault
    with keep_writing(world, WRITERS, every=max(seconds / 10, 2.0)):
        time.sleep(seconds)  # the outage itself: the scenario's parameter
        world.twilio.fault = None
    mended = time.monotonic()
    ask(world, 20)  # customers keep writing once Twilio is back
    acked = world.customers.acknowledged()
    eventually(lambda: last_answer(world.twilio, acked) is not None, 120)
    settled = eventually(lambda: pending_work(world.database_url) == 0, 60)
    retry_after = "" if fault.retry_after is None else f" (Retry-After {fault.retry_after:g} s)"
    figures = world.measure(name, f"Twilio answers {fault.status}{retry_after} for {seconds:g} s", started)
    done = last_answer(world.twilio, acked)
    figures.recovery_seconds = None if done is None else round(done - mended, 1)
    figures.extra["failed_attempts"] = sum(1 for a in world.twilio.attempts if a.status >= 400)
    return figures, settled


def _early_retries(twilio: TwilioDouble) -> int:
    """Retries of a message sent sooner after a 429 than its Retry-After allowed."""
    early = 0
    by_message: dict[tuple[str, str], list[Attempt]] = {}
    for attempt in twilio.attempts:
        by_message.setdefault((attempt.to, attempt.body), []).append(attempt)
    for attempts in by_message.values():
        for before, after in zip(attempts, attempts[1:], strict=False):
            if before.status == 429 and before.retry_after is not None:
                early += after.monotonic - before.monotonic < before.retry_after - RETRY_AFTER_SLACK
    return early


@pytest.mark.parametrize(
    "seconds",
    [pytest.param(60.0, id="60s"), pytest.param(600.0, id="10min", marks=pytest.mark.reliability_long)],
)
@pytest.mark.timeout(1200)
def test_twilio_500_outage(world: World, seconds: float) -> None:
    figures, settled = _outage(world, f"twilio_500_{seconds:g}s", TwilioFault(500), seconds)
    report(
        figures,
        {
            "every message acknowledged": figures.acknowledged == figures.sent,
            "none lost": figures.lost == 0,
            "none sent twice": figures.duplicated == 0,
            "work settled": settled,
        },
    )


@pytest.mark.parametrize(
    "seconds",
    [pytest.param(20.0, id="20s"), pytest.param(300.0, id="5min", marks=pytest.mark.reliability_long)],
)
@pytest.mark.timeout(900)
def test_twilio_429_with_retry_after(world: World, seconds: float) -> None:
    figures, settled = _outage(world, f"twilio_429_{seconds:g}s", TwilioFault(429, retry_after=8.0), seconds)
    figures.extra["retries_before_retry_after"] = _early_retries(world.twilio)
    report(
        figures,
        {
            "every message acknowledged": figures.acknowledged == figures.sent,
            "none lost": figures.lost == 0,
            "none sent twice": figures.duplicated == 0,
            "Retry-After honoured": figures.extra["retries_before_retry_after"] == 0,
            "work settled": settled,
        },
    )
