"""Server fixtures: settings with throwaway secrets, fast timings, the app running over ASGI with its worker."""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import httpx
import pytest
from asgi_lifespan import LifespanManager
from fastapi import FastAPI

from core.business import Business
from core.clock import FixedClock
from core.settings import Settings
from server.app import create_app
from server.options import ServerOptions
from server.wiring import Overrides, Services
from store import Database
from tests.server.helpers import PUBLIC_BASE, FakeAgent, TwilioDouble

FAST = ServerOptions(
    fold_quiet_seconds=0.15,
    lease_seconds=3.0,
    poll_seconds=0.02,
    notify_poll_seconds=0.02,  # tests move a fixed clock: time-based work is found by polls, promptly
    delivery_first_retry_seconds=0.0,
    reminder_interval_seconds=0.05,
    calendar_retry_after_seconds=0.0,
    shutdown_grace_seconds=1.0,
)


@dataclass
class Secrets:
    """Per-test random credentials: nothing real, nothing stored in the repository."""

    twilio_token: str = field(default_factory=lambda: secrets.token_hex(16))
    jwt_secret: str = field(default_factory=lambda: secrets.token_hex(32))
    calendly_key: str = field(default_factory=lambda: secrets.token_hex(24))


@pytest.fixture
def keys() -> Secrets:
    """This test's credentials."""
    return Secrets()


@pytest.fixture
def make_settings(database_url: str, keys: Secrets) -> Callable[..., Settings]:
    """Settings for a fully configured server (Twilio, Calendly webhooks, admin API); overrides by keyword."""

    def make(**overrides: Any) -> Settings:
        values: dict[str, Any] = {
            "database_url": database_url,
            "twilio_account_sid": "AC" + "0" * 30 + "42",
            "twilio_auth_token": keys.twilio_token,
            "twilio_whatsapp_number": "+14155238886",
            "twilio_api_base_url": "https://twilio.test",
            "public_base_url": PUBLIC_BASE,
            "jwt_secret": keys.jwt_secret,
            "calendly_webhook_signing_key": keys.calendly_key,
        }
        values.update(overrides)
        return Settings(_env_file=None, **values)  # type: ignore[call-arg]

    return make


@pytest.fixture
def clock(now: datetime) -> FixedClock:
    """The server's clock, pinned (tests move it explicitly)."""
    return FixedClock(now)


@pytest.fixture
def twilio() -> TwilioDouble:
    """The local Twilio REST double."""
    return TwilioDouble()


@pytest.fixture
def agent() -> FakeAgent:
    """The scripted stand-in for the LangGraph agent."""
    return FakeAgent()


@dataclass
class ProbeDouble:
    """Answers every health probe with 200 and counts the calls."""

    calls: list[str] = field(default_factory=list)

    def handle(self, request: httpx.Request) -> httpx.Response:
        self.calls.append(str(request.url))
        return httpx.Response(200, json={"ok": True})


@pytest.fixture
def probes() -> ProbeDouble:
    """The health-probe double."""
    return ProbeDouble()


@dataclass
class RunningApp:
    """An app with its lifespan entered, and a client speaking to it over ASGI."""

    app: FastAPI
    client: httpx.AsyncClient

    @property
    def services(self) -> Services:
        """The app's services (worker, outbox sender, reminder scheduler...)."""
        services: Services = self.app.state.services
        return services


StartApp = Callable[..., AbstractAsyncContextManager[RunningApp]]


@pytest.fixture
def start_app(
    db: Database,
    make_settings: Callable[..., Settings],
    clock: FixedClock,
    twilio: TwilioDouble,
    agent: FakeAgent,
    business: Business,
    probes: ProbeDouble,
) -> StartApp:
    """Start an app (worker included unless `run_worker=False`); other keywords replace fields of `Overrides`
    (`agent=None` with a `model` runs the real assistant around that model; `agent=None` alone, no agent)."""

    @asynccontextmanager
    async def start(**overrides: Any) -> AsyncIterator[RunningApp]:
        fields: dict[str, Any] = {
            "business": business,
            "agent": agent,
            "db": db,
            "clock": clock,
            "options": FAST,
            "twilio_http": twilio.transport,
            "probe_http": httpx.MockTransport(probes.handle),
        }
        settings = overrides.pop("settings", None) or make_settings()
        run_worker = overrides.pop("run_worker", True)
        fields.update(overrides)
        with_agent = fields["agent"] is not None or fields.get("model") is not None
        app = create_app(settings, Overrides(**fields), with_agent=with_agent, run_worker=run_worker)
        async with (
            LifespanManager(app) as manager,
            httpx.AsyncClient(transport=httpx.ASGITransport(app=manager.app), base_url=PUBLIC_BASE) as client,
        ):
            yield RunningApp(app, client)

    return start


@pytest.fixture
async def server(start_app: StartApp) -> AsyncIterator[RunningApp]:
    """The default app: Twilio configured against the double, worker running, fake agent."""
    async with start_app() as running:
        yield running
