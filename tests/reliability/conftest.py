"""The reliability suite's world: its own PostgreSQL cluster, the Twilio, Calendly and model doubles served from
this process, and the `asistente` processes under test, all on loopback ports, all torn down after each scenario.

Needs the PostgreSQL server binaries (initdb, pg_ctl), not the shared database: without them every scenario is
skipped with one reason.
"""

from __future__ import annotations

import asyncio
import os
import pwd
import secrets
from collections.abc import Iterator
from pathlib import Path

import pytest

from core.business import example_business
from store import open_database
from store.migrate import migrate
from tests.reliability.calendly_double import CalendlyDouble
from tests.reliability.customers import Customers
from tests.reliability.model_double import ModelDouble
from tests.reliability.ports import free_port
from tests.reliability.postgres import PgCluster, postgres_bin
from tests.reliability.processes import Stack
from tests.reliability.twilio_double import TwilioDouble
from tests.reliability.world import BUSINESS_NUMBER, World, environment

HERE = Path(__file__).resolve().parent


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Every test here that runs a world is a reliability scenario (`-m reliability` selects them)."""
    for item in items:
        if HERE in Path(str(item.path)).parents and "world" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.reliability)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> object:
    """Remember each phase's outcome on the item, so the world can print process logs for a failed scenario."""
    report = yield
    setattr(item, f"reliability_{call.when}", report)
    return report


@pytest.fixture
def cluster() -> Iterator[PgCluster]:
    """A fresh PostgreSQL cluster of this scenario's own, started."""
    bindir = postgres_bin()
    if bindir is None:
        pytest.skip("initdb not found: the reliability suite needs the PostgreSQL server binaries")
    if os.geteuid() == 0 and not _has_user("postgres"):
        pytest.skip("running as root without a postgres user: initdb refuses root")
    pg = PgCluster(bindir)
    try:
        pg.init()
        pg.start()
        yield pg
    finally:
        pg.destroy()


def _has_user(name: str) -> bool:
    try:
        pwd.getpwnam(name)
    except KeyError:
        return False
    return True


async def _migrate(url: str) -> None:
    database = open_database(url)
    try:
        await migrate(database)
    finally:
        await database.close()


@pytest.fixture
def world(request: pytest.FixtureRequest, cluster: PgCluster, tmp_path: Path) -> Iterator[World]:
    """Doubles up, a database created; the scenario starts the server and workers it needs (`world.stack`)."""
    database_url = cluster.create_database("asistente")
    # The schema first, so the server (which migrates again: nothing to do) and workers can start side by side.
    asyncio.run(_migrate(database_url))
    twilio = TwilioDouble("AC" + secrets.token_hex(16), secrets.token_hex(16))
    business = example_business()
    calendly = CalendlyDouble(
        secrets.token_hex(20),
        timezone=business.timezone,
        closed_dates=frozenset(d.isoformat() for d in business.closed_dates),
    )
    model = ModelDouble("sk-reliability-" + secrets.token_hex(12))
    doubles = (twilio.server, calendly.server, model.server)
    port = free_port()
    jwt = secrets.token_hex(32)
    env = environment(database_url, twilio, calendly, model, port, jwt)
    stack = Stack(env, tmp_path, port)
    try:
        for server in doubles:
            server.start()
        customers = Customers(stack.base_url, twilio.auth_token, twilio.account_sid, BUSINESS_NUMBER)
        yield World(cluster, database_url, twilio, calendly, model, stack, customers, env, jwt)
    finally:
        # Whatever the scenario left held or broken is released first, so nothing waits on it while stopping.
        twilio.fault, model.fault_status, model.hang = None, None, False
        for gate in (twilio.accepted_gate, calendly.booking_gate, model.gate):
            gate.open()
        if not cluster.running:
            cluster.start()
        stack.close()
        for server in doubles:
            server.stop()
        report = getattr(request.node, "reliability_call", None)
        if report is not None and report.failed:
            print(stack.logs())  # shown with the failure
