"""CalendlyClient against hand-authored cassettes of Calendly API v2 (tests/cassettes/calendly/client_*.yaml)."""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import httpx
import pytest
import yaml

from integrations.calendly.client import CalendlyClient
from integrations.calendly.models import (
    CalendlyRateLimited,
    CalendlyUnavailable,
    Location,
    QuestionAndAnswer,
)
from tests.calendly.conftest import (
    BASE_URL,
    CASSETTES,
    EVENT_TYPE_URI,
    EVENT_URI,
    TEST_TOKEN,
    USER_URI,
    RecordedSleep,
    SentRequests,
    fixture_json,
    play,
)

ORGANIZATION_URI = "https://api.calendly.com/organizations/OOOOOOOOOOOOOOOO"
ZONE_MADRID = ZoneInfo("Europe/Madrid")


async def test_list_event_types_follows_next_page_to_the_end(client: CalendlyClient, sent: SentRequests) -> None:
    with play("client_event_types_two_pages") as cassette:
        event_types = await client.list_event_types(USER_URI)

    assert [(t.uri, t.name, t.active) for t in event_types] == [
        (EVENT_TYPE_URI, "Corte y Peinado", True),
        ("https://api.calendly.com/event_types/FFFFFFFFFFFFFFFF", "Tinte", False),
    ]
    assert event_types[0].duration == 45
    assert event_types[0].custom_questions[0].type == "phone_number"
    assert cassette.play_count == 2
    assert sent.requests[1].url.params["page_token"] == "EEEEEEEEEEEEEEEE"


async def test_available_times_clamps_a_past_start_and_splits_ranges_over_31_days(
    client: CalendlyClient, sent: SentRequests
) -> None:
    start = datetime(2026, 11, 20, tzinfo=UTC)  # before the clock's 2026-11-24T21:00Z
    end = datetime(2027, 1, 4, tzinfo=UTC)

    with play("client_available_times_split") as cassette:
        times = await client.available_times(EVENT_TYPE_URI, start, end)

    assert cassette.play_count == 2
    ranges = [(r.url.params["start_time"], r.url.params["end_time"]) for r in sent.requests]
    assert ranges == [
        ("2026-11-24T21:01:00Z", "2026-12-25T21:01:00Z"),
        ("2026-12-25T21:01:00Z", "2027-01-04T00:00:00Z"),
    ]
    assert [t.start_time for t in times] == [
        datetime(2026, 11, 26, 9, 0, tzinfo=UTC),
        datetime(2026, 11, 26, 10, 0, tzinfo=UTC),
        datetime(2027, 1, 2, 9, 30, tzinfo=UTC),
    ]
    assert all(t.start_time.utcoffset() is not None and t.status == "available" for t in times)


async def test_available_times_for_a_range_entirely_in_the_past_asks_nothing(client: CalendlyClient) -> None:
    with play("client_no_requests") as cassette:
        times = await client.available_times(
            EVENT_TYPE_URI, datetime(2026, 11, 1, tzinfo=UTC), datetime(2026, 11, 2, tzinfo=UTC)
        )
    assert times == []
    assert cassette.play_count == 0


def patient_client(sleep: RecordedSleep) -> CalendlyClient:
    """A client allowed to wait out a 37 s reset (a caller nobody waits on; the defaults wait at most 5 s)."""
    return CalendlyClient(BASE_URL, TEST_TOKEN, sleep=sleep, max_rate_limit_wait=60.0, rate_limit_budget=120.0)


async def test_rate_limit_waits_x_ratelimit_reset_seconds_then_retries(sleep: RecordedSleep) -> None:
    with play("client_rate_limited_then_ok") as cassette:
        async with patient_client(sleep) as client:
            user = await client.current_user()

    assert sleep.waits == [37.0]
    assert cassette.play_count == 2
    assert user.uri == USER_URI
    assert user.current_organization == ORGANIZATION_URI


async def test_rate_limit_gives_up_after_its_bound(sleep: RecordedSleep) -> None:
    with play("client_rate_limited_gives_up"), pytest.raises(CalendlyRateLimited) as raised:
        async with patient_client(sleep) as client:
            await client.current_user()
    assert raised.value.reset_seconds == 37.0
    assert sleep.waits == [37.0, 37.0]


async def test_rate_limit_longer_than_the_allowed_wait_is_not_waited(
    client: CalendlyClient, sleep: RecordedSleep
) -> None:
    with play("client_rate_limited_reset_too_long") as cassette, pytest.raises(CalendlyRateLimited) as raised:
        await client.current_user()
    assert raised.value.reset_seconds == 3600.0
    assert sleep.waits == []
    assert cassette.play_count == 1


async def test_create_invitee_sends_exactly_the_documented_request(client: CalendlyClient, sent: SentRequests) -> None:
    expected = fixture_json("calendly-create-invitee-request.json")
    invitee_fields = expected["invitee"]

    with play("client_create_invitee"):
        invitee = await client.create_invitee(
            expected["event_type"],
            datetime(2026, 11, 26, 10, 0, tzinfo=ZONE_MADRID),
            name=invitee_fields["name"],
            email=invitee_fields["email"],
            timezone=invitee_fields["timezone"],
            text_reminder_number=invitee_fields["text_reminder_number"],
            location=Location(kind="physical", location="Calle Mayor 1, Madrid"),
            questions_and_answers=[QuestionAndAnswer(question="Teléfono", answer="+34600123456", position=0)],
        )

    assert sent.json_bodies() == [expected]
    # Same keys in the same order as the fixture, not just equal dictionaries.
    assert list(sent.json_bodies()[0]) == list(expected)
    assert invitee.uri == f"{EVENT_URI}/invitees/DDDDDDDDDDDDDDDD"
    assert invitee.event == EVENT_URI
    assert invitee.created_at == datetime(2026, 11, 24, 21, 0, tzinfo=UTC)


async def test_a_booking_that_failed_with_5xx_is_not_sent_again(client: CalendlyClient, sleep: RecordedSleep) -> None:
    request = fixture_json("calendly-create-invitee-request.json")
    with play("client_create_invitee_server_error") as cassette, pytest.raises(CalendlyUnavailable):
        await client.create_invitee(
            request["event_type"],
            datetime(2026, 11, 26, 9, 0, tzinfo=UTC),
            **request["invitee"],
            location=Location.model_validate(request["location"]),
            questions_and_answers=[QuestionAndAnswer.model_validate(qa) for qa in request["questions_and_answers"]],
        )
    assert cassette.play_count == 1
    assert sleep.waits == []


async def test_reads_are_retried_with_backoff_on_5xx_then_unavailable(
    client: CalendlyClient, sleep: RecordedSleep
) -> None:
    with play("client_server_errors") as cassette, pytest.raises(CalendlyUnavailable, match="503"):
        await client.current_user()
    assert cassette.play_count == 3
    assert sleep.waits == [0.5, 1.0]


async def test_cancel_event_accepts_the_event_uri(client: CalendlyClient, sent: SentRequests) -> None:
    with play("client_cancel_event"):
        cancellation = await client.cancel_event(EVENT_URI, "Cancelada por el cliente por WhatsApp")

    assert sent.json_bodies() == [{"reason": "Cancelada por el cliente por WhatsApp"}]
    assert cancellation.canceler_type == "host"
    assert cancellation.reason == "Cancelada por el cliente por WhatsApp"
    assert cancellation.created_at == datetime(2026, 11, 24, 21, 5, tzinfo=UTC)


async def test_list_scheduled_events_filters_and_follows_pagination(client: CalendlyClient) -> None:
    with play("client_scheduled_events_two_pages") as cassette:
        events = await client.list_scheduled_events(
            USER_URI,
            invitee_email="maria@example.com",
            min_start_time=datetime(2026, 11, 24, 22, 0, tzinfo=ZONE_MADRID),
            status="active",
        )

    assert cassette.play_count == 2
    assert [e.uri.rsplit("/", 1)[-1] for e in events] == ["CCCCCCCCCCCCCCCC", "IIIIIIIIIIIIIIII"]
    assert events[0].start_time == datetime(2026, 11, 26, 9, 0, tzinfo=UTC)
    assert events[1].end_time == datetime(2026, 12, 10, 16, 45, tzinfo=UTC)
    assert events[0].invitees_counter is not None and events[0].invitees_counter.active == 1


async def test_webhook_subscription_is_created_and_listed(client: CalendlyClient, sent: SentRequests) -> None:
    callback = "https://asistente.example/api/calendly/webhook"
    with play("client_webhook_subscriptions"):
        created = await client.create_webhook_subscription(
            callback,
            ["invitee.created", "invitee.canceled"],
            organization=ORGANIZATION_URI,
            user=USER_URI,
            scope="user",
            signing_key="a-signing-key-chosen-by-us",
        )
        listed = await client.list_webhook_subscriptions(ORGANIZATION_URI, "user", user=USER_URI)

    # The cassette holds a placeholder; what went over the wire is the real key.
    assert sent.json_bodies()[0]["signing_key"] == "a-signing-key-chosen-by-us"
    assert created.callback_url == callback
    assert created.events == ("invitee.created", "invitee.canceled")
    assert [s.uri for s in listed] == [created.uri]


async def test_the_token_is_sent_as_bearer_and_never_shown(caplog: pytest.LogCaptureFixture) -> None:
    seen: list[httpx.Request] = []

    def refuse_to_connect(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        raise httpx.ConnectError("connection refused", request=request)

    waits = RecordedSleep()
    caplog.set_level(logging.DEBUG)
    async with httpx.AsyncClient(transport=httpx.MockTransport(refuse_to_connect)) as http:
        client = CalendlyClient(BASE_URL, TEST_TOKEN, http=http, sleep=waits)
        with pytest.raises(CalendlyUnavailable) as raised:
            await client.current_user()

    assert [r.headers["Authorization"] for r in seen] == [f"Bearer {TEST_TOKEN}"] * 3
    assert waits.waits == [0.5, 1.0]
    for text in (str(raised.value), repr(client), caplog.text):
        assert TEST_TOKEN not in text


async def test_a_booking_whose_answer_was_lost_is_not_sent_again() -> None:
    seen: list[httpx.Request] = []

    def time_out(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        raise httpx.ReadTimeout("no answer", request=request)

    async with httpx.AsyncClient(transport=httpx.MockTransport(time_out)) as http:
        client = CalendlyClient(BASE_URL, TEST_TOKEN, http=http, sleep=RecordedSleep())
        with pytest.raises(CalendlyUnavailable, match="ReadTimeout"):
            await client.create_invitee(
                EVENT_TYPE_URI,
                datetime(2026, 11, 26, 9, 0, tzinfo=UTC),
                name="María López",
                email="maria@example.com",
                timezone="Europe/Madrid",
            )
    assert len(seen) == 1


def test_every_cassette_is_marked_hand_authored_holds_no_credentials_and_is_used() -> None:
    tests = [
        *Path(__file__).parent.glob("test_*.py"),
        *(Path(__file__).parents[1] / "agent").glob("test_*.py"),
        Path(__file__).parents[1] / "server" / "test_calendly_sync.py",
    ]
    sources = "".join(p.read_text(encoding="utf-8") for p in tests)
    cassettes = sorted(CASSETTES.glob("*.yaml"))
    assert cassettes
    for path in cassettes:
        text = path.read_text(encoding="utf-8")
        assert text.startswith("# Authored by hand from ../shared/fixtures (no Calendly API access)"), path.name
        assert "CALENDLY_RECORD=1" in text.split("\nversion:", 1)[0], path.name
        for interaction in yaml.safe_load(text)["interactions"]:
            headers = {name.lower() for name in interaction["request"]["headers"]}
            assert "authorization" not in headers, path.name
        assert TEST_TOKEN not in text and "Bearer" not in text, path.name
        # tests/agent's `scenario` fixture plays agent_<test name without "test_">.yaml on Calendly.
        played = f'"{path.stem}' in sources or f"def test_{path.stem.removeprefix('agent_')}(" in sources
        assert played, f"{path.name} is not played by any test"
