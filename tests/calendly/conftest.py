"""Calendly test helpers: hand-authored vcrpy cassettes, a fixed clock, a client whose waits are recorded.

Cassettes live in tests/cassettes/calendly/. They replay with record_mode="none", so any request a cassette does not
hold fails the test, and `play()` fails a test that leaves an interaction unplayed. To re-record against the real
API, run with CALENDLY_RECORD=1 and a real CALENDLY_ACCESS_TOKEN (see the header of any cassette).
"""

from __future__ import annotations

import itertools
import json
import os
import socket
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
import vcr
from vcr.cassette import Cassette

from core.clock import FixedClock
from integrations.calendly.client import CalendlyClient

# The public payload shapes the cassettes were written from: tests/fixtures is the repository's copy of
# ../shared/fixtures.
FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
if not FIXTURES.is_dir():
    FIXTURES = Path(__file__).resolve().parents[3] / "shared" / "fixtures"
CASSETTES = Path(__file__).resolve().parents[1] / "cassettes" / "calendly"
RECORDING = os.environ.get("CALENDLY_RECORD") == "1"
BASE_URL = "https://api.calendly.com"
NOW = datetime(2026, 11, 24, 21, 0, tzinfo=UTC)
USER_URI = "https://api.calendly.com/users/BBBBBBBBBBBBBBBB"
EVENT_TYPE_URI = "https://api.calendly.com/event_types/AAAAAAAAAAAAAAAA"
EVENT_URI = "https://api.calendly.com/scheduled_events/CCCCCCCCCCCCCCCC"
INVITEE_URI = f"{EVENT_URI}/invitees/DDDDDDDDDDDDDDDD"
# Never a real token: cassettes drop the Authorization header, and this is what tests send when replaying.
TEST_TOKEN = "test-calendly-token"
_REAL_CONNECT = socket.socket.connect


def calendly_vcr() -> vcr.VCR:
    """The vcrpy configuration every Calendly cassette is played (or re-recorded) with."""
    return vcr.VCR(
        cassette_library_dir=str(CASSETTES),
        record_mode="all" if RECORDING else "none",
        match_on=["method", "scheme", "host", "port", "path", "query", "body"],
        filter_headers=["authorization"],
        # Webhook signing keys are secrets too; matching and storing both see the placeholder.
        filter_post_data_parameters=[("signing_key", "<SIGNING_KEY>")],
        decode_compressed_response=True,
    )


@contextmanager
def play(name: str, *, ignore_hosts: tuple[str, ...] = ()) -> Iterator[Cassette]:
    """Replay `tests/cassettes/calendly/<name>.yaml` and fail unless every interaction in it was used.

    `ignore_hosts` pass straight through (vcrpy also intercepts httpx's ASGI transport, so a test calling an app
    in-process names the app's host). When re-recording, the file's leading comment block (provenance, how to
    re-record) is put back on top of what vcrpy writes, since vcrpy drops comments.
    """
    path = CASSETTES / f"{name}.yaml"
    header = _comment_header(path) if RECORDING else ""
    with calendly_vcr().use_cassette(path.name, ignore_hosts=ignore_hosts) as cassette:
        yield cassette
    if RECORDING:
        recorded = path.read_text(encoding="utf-8")
        if not recorded.startswith(header):  # vcrpy rewrote the file (it leaves it alone when nothing was sent)
            path.write_text(header + recorded, encoding="utf-8")
    else:
        assert cassette.all_played, f"{name}.yaml: {len(cassette) - cassette.play_count} interaction(s) never played"


def _comment_header(path: Path) -> str:
    if not path.exists():
        return ""
    lines = path.read_text(encoding="utf-8").splitlines(keepends=True)
    return "".join(itertools.takewhile(lambda line: line.startswith("#"), lines))


def fixture_json(name: str) -> Any:
    """A JSON file from the shared fixtures (../shared/fixtures)."""
    return json.loads((FIXTURES / name).read_text(encoding="utf-8"))


@dataclass
class RecordedSleep:
    """Stands in for asyncio.sleep: remembers each wait instead of waiting."""

    waits: list[float] = field(default_factory=list)

    async def __call__(self, seconds: float) -> None:
        self.waits.append(seconds)


@dataclass
class SentRequests:
    """Every request the client's httpx.AsyncClient sent (vcrpy strips Authorization from what it records)."""

    requests: list[httpx.Request] = field(default_factory=list)

    async def __call__(self, request: httpx.Request) -> None:
        self.requests.append(request)

    def json_bodies(self) -> list[Any]:
        """The decoded JSON body of each request that had one."""
        return [json.loads(r.content) for r in self.requests if r.content]


@pytest.fixture(autouse=True)
def _calendly_reachable_when_recording(_offline_env: None, monkeypatch: pytest.MonkeyPatch) -> None:
    # tests/conftest.py blocks every non-loopback connection; re-recording has to reach api.calendly.com.
    if RECORDING:
        monkeypatch.setattr(socket.socket, "connect", _REAL_CONNECT)


@pytest.fixture
def clock() -> FixedClock:
    """Tuesday 24 November 2026, 21:00 UTC."""
    return FixedClock(NOW)


@pytest.fixture
def sleep() -> RecordedSleep:
    """The client's sleep: records waits (rate limits, backoff) without waiting."""
    return RecordedSleep()


@pytest.fixture
def sent() -> SentRequests:
    """The requests the Calendly client sends."""
    return SentRequests()


@pytest.fixture
async def client(clock: FixedClock, sleep: RecordedSleep, sent: SentRequests) -> AsyncIterator[CalendlyClient]:
    """A CalendlyClient on the real host (cassettes intercept it), with a recorded sleep and fixed clock."""
    token = os.environ.get("CALENDLY_ACCESS_TOKEN", TEST_TOKEN) if RECORDING else TEST_TOKEN
    async with httpx.AsyncClient(event_hooks={"request": [sent]}) as http:
        yield CalendlyClient(BASE_URL, token, http=http, sleep=sleep, clock=clock)
