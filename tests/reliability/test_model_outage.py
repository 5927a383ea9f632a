"""The model answering 500 for 90 s while customers wait.

Required (issue 10, item 6): after about a minute without an answer the customer gets one short holding message,
retries go on, and the real answer follows once the model is back (no apology, nothing lost or doubled).
"""

from __future__ import annotations

import time

import pytest

from tests.reliability.figures import HOLDING, answers, last_answer, pending_work, report
from tests.reliability.flows import ask
from tests.reliability.waits import eventually, sleep_until
from tests.reliability.world import World

OUTAGE = 90.0
# "After about a minute": not before 45 s, not after 80 s (the production setting is 60 s, checked every 2 s here).
HOLDING_WINDOW = (45.0, 80.0)


@pytest.mark.timeout(420)
def test_model_down_90s(world: World) -> None:
    world.stack.start(workers=1)
    started = time.monotonic()
    world.model.fault_status = 500
    down = time.monotonic()
    first = [ask(world, number) for number in range(3)]
    # A customer writes again while waiting: still one holding message for them.
    sleep_until(down + 30)
    again = ask(world, 0, 1)
    sleep_until(down + OUTAGE)
    world.model.fault_status = None
    back = time.monotonic()
    sent = [*first, again]
    eventually(lambda: last_answer(world.twilio, sent) is not None, 180)
    settled = eventually(lambda: pending_work(world.database_url) == 0, 30)
    figures = world.measure("model_down_90s", f"model answers 500 for {OUTAGE:g} s", started)
    done = last_answer(world.twilio, sent)
    figures.recovery_seconds = None if done is None else round(done - back, 1)
    holding_after: list[float] = []
    holding_before_answer = True
    for message in first:
        got = world.twilio.to(message.wa_id)
        holds = [m.monotonic for m in got if m.body.strip() in HOLDING]
        holding_after += [round(t - message.sent_at, 1) for t in holds]
        replies = answers(world.twilio, message)
        holding_before_answer &= bool(holds and replies) and min(holds) < min(replies)
    figures.extra["holding_after_seconds"] = holding_after
    figures.extra["model_requests"] = world.model.requests
    low, high = HOLDING_WINDOW
    report(
        figures,
        {
            "one holding message per waiting customer": figures.holding == len(first),
            f"holding message {low:g}-{high:g} s after the message": all(low <= t <= high for t in holding_after),
            "holding message before the answer": holding_before_answer,
            "no apology": figures.apologies == 0,
            "none lost": figures.lost == 0,
            "none answered twice": figures.duplicated == 0,
            "work settled": settled,
        },
    )
