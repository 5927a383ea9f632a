"""Calendly answering 429: with a long reset (60 s) the turn answers within seconds ("try again shortly") and the
admin sync answers 503 with Retry-After at once (issue 10, item 7); a short reset is waited out and the booking goes
on."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

import httpx
import pytest

from server.http.auth import mint_admin_token
from tests.reliability.figures import answers, last_answer, pending_work, report
from tests.reliability.flows import request_booking
from tests.reliability.waits import eventually
from tests.reliability.world import World

# "Answers within seconds": the fold window, a capped wait inside the turn and two model calls fit well inside this.
TURN_BOUND = 12.0
REQUEST_BOUND = 10.0


@pytest.mark.timeout(180)
def test_calendly_429_long_reset(world: World) -> None:
    world.stack.start(workers=1)
    started = time.monotonic()
    world.calendly.rate_limit(60)
    asked = world.customers.say(0, "Hola, quiero pedir cita para un corte a las 10:00")
    eventually(lambda: bool(answers(world.twilio, asked)), 90)
    token = mint_admin_token(world.jwt_secret, subject="reliability", now=datetime.now(UTC), ttl=timedelta(minutes=5))
    before = time.monotonic()
    sync = httpx.post(
        world.stack.base_url + "/api/calendly/sync", headers={"Authorization": f"Bearer {token}"}, timeout=90
    )
    sync_seconds = time.monotonic() - before
    settled = eventually(lambda: pending_work(world.database_url) == 0, 30)
    figures = world.measure("calendly_429_60s", "Calendly answers 429, X-RateLimit-Reset 60 s", started, calendly=True)
    reply = [m.body for m in world.twilio.to(asked.wa_id)]
    figures.extra |= {
        "tool_errors": [c for c in world.model.tool_result_codes() if c],
        "sync_status": sync.status_code,
        "sync_retry_after": sync.headers.get("retry-after"),
        "sync_seconds": round(sync_seconds, 1),
        "reply": reply[-1] if reply else None,
    }
    report(
        figures,
        {
            f"the turn answered within {TURN_BOUND:g} s": (figures.answer_max_seconds or 1e9) <= TURN_BOUND,
            "the tool reported the rate limit": "rate_limited" in figures.extra["tool_errors"],
            "none lost, none twice": figures.lost == 0 and figures.duplicated == 0,
            "nothing booked": figures.bookings_calendly == 0 and figures.appointments_stored == 0,
            "sync answered 503 with Retry-After": sync.status_code == 503 and bool(sync.headers.get("retry-after")),
            f"sync answered within {REQUEST_BOUND:g} s": sync_seconds <= REQUEST_BOUND,
            "work settled": settled,
        },
    )


@pytest.mark.timeout(180)
def test_calendly_429_short_reset_is_waited_out(world: World) -> None:
    world.stack.start(workers=1)
    started = time.monotonic()
    world.calendly.rate_limit(3)
    asked = request_booking(world, 0, "10:00")
    eventually(lambda: last_answer(world.twilio, [asked]) is not None, 60)
    settled = eventually(lambda: pending_work(world.database_url) == 0, 30)
    figures = world.measure("calendly_429_3s", "Calendly answers 429, X-RateLimit-Reset 3 s", started, calendly=True)
    figures.extra["throttled_requests"] = sum(1 for _, _, status in world.calendly.requests if status == 429)
    report(
        figures,
        {
            "the customer got the confirmation question": figures.answered_once == 1,
            "Calendly was throttling meanwhile": figures.extra["throttled_requests"] > 0,
            f"within {TURN_BOUND:g} s": (figures.answer_max_seconds or 1e9) <= TURN_BOUND,
            "work settled": settled,
        },
    )
