"""Agent overhead per turn: graph, tools, local calendar, store and checkpoint, with a scripted (instant) model.

What a real turn costs beyond the model's own latency. Targets: p95 under 30 ms per turn on SQLite, and the
checkpointed thread stops growing once the stored window is full (bounded window + pruning).
Memory is measured in a second, traced pass, since tracing itself slows Python down.
"""

from __future__ import annotations

import statistics
import tempfile
import time
import tracemalloc
from dataclasses import dataclass
from datetime import datetime
from zoneinfo import ZoneInfo

from agent.api import IncomingText
from agent.assistant import Assistant
from agent.checkpointer import open_checkpointer
from agent.graph import build_graph
from agent.window import STORED_WINDOW_TURNS
from booking.local_calendar import LocalCalendar
from core.business import example_business
from core.clock import FixedClock
from store import open_database
from store.appointments import AppointmentRepository
from store.clients import ClientRepository
from store.migrate import migrate
from tests.scripted_model import ScriptedChatModel, call, says, uses
from tools.context import ToolServices
from tools.whatsapp import RecordingSender

TURN_P95_TARGET_MS = 30.0
CUSTOMERS = 5
TURNS_PER_CUSTOMER = 40


@dataclass
class Result:
    """Timings and sizes of one run."""

    p50_ms: float
    p95_ms: float
    checkpoint_bytes_window_full: int
    checkpoint_bytes_last: int
    peak_mib: float

    def lines(self) -> list[str]:
        """A readable report with the verdict per target."""
        flat = self.checkpoint_bytes_last <= 1.1 * self.checkpoint_bytes_window_full
        return [
            f"agent turn   p50 {self.p50_ms:6.1f} ms   p95 {self.p95_ms:6.1f} ms   "
            f"(target p95 < {TURN_P95_TARGET_MS:.0f} ms: {'ok' if self.p95_ms < TURN_P95_TARGET_MS else 'MISSED'})",
            f"checkpoint   {self.checkpoint_bytes_window_full} B after {STORED_WINDOW_TURNS} turns (window full), "
            f"{self.checkpoint_bytes_last} B after "
            f"{TURNS_PER_CUSTOMER} ({'flat: ok' if flat else 'GROWS'})",
            f"memory       peak {self.peak_mib:.1f} MiB traced during the run",
        ]


async def _checkpoint_bytes(db_url: str, thread: str) -> int:
    db = open_database(db_url)
    try:
        value = await db.fetch_value(
            "SELECT COALESCE(SUM(LENGTH(checkpoint)), 0) + COALESCE(SUM(LENGTH(metadata)), 0) AS n "
            "FROM checkpoints WHERE thread_id = :t",
            {"t": thread},
        )
        return int(value or 0)
    finally:
        await db.close()


async def run() -> Result:
    """Time a run, then measure memory in a second, traced run (tracing slows Python down)."""
    timed = await _drive(trace_memory=False)
    traced = await _drive(trace_memory=True)
    return Result(
        p50_ms=timed.p50_ms,
        p95_ms=timed.p95_ms,
        checkpoint_bytes_window_full=timed.checkpoint_bytes_window_full,
        checkpoint_bytes_last=timed.checkpoint_bytes_last,
        peak_mib=traced.peak_mib,
    )


async def _drive(*, trace_memory: bool) -> Result:
    """Drive CUSTOMERS x TURNS_PER_CUSTOMER availability turns and measure them."""
    business = example_business()
    clock = FixedClock(datetime(2026, 11, 24, 22, 0, tzinfo=ZoneInfo("Europe/Madrid")))
    with tempfile.TemporaryDirectory() as tmp:
        url = f"sqlite:///{tmp}/bench.db"
        db = open_database(url)
        await migrate(db)
        model = ScriptedChatModel(script=[])
        appointments = AppointmentRepository(db)
        durations: list[float] = []
        sizes: dict[int, int] = {}
        if trace_memory:
            tracemalloc.start()
        async with open_checkpointer(db) as saver:
            calendar = LocalCalendar(business, appointments, clock)
            services = ToolServices(business, clock, calendar, ClientRepository(db), appointments, RecordingSender())
            assistant = Assistant(build_graph(model, services, saver), services)
            for turn in range(TURNS_PER_CUSTOMER):
                for customer in range(CUSTOMERS):
                    model.extend(
                        uses(call("check_availability", service="corte", date_from="2026-11-26")),
                        says(f"Turno {turn}: el jueves hay huecos por la mañana y por la tarde."),
                    )
                    started = time.perf_counter()
                    await assistant.customer_turn(
                        f"whatsapp:+3460000{customer:04d}", [IncomingText(body=f"¿Huecos el jueves? ({turn})")]
                    )
                    durations.append((time.perf_counter() - started) * 1000)
                if turn + 1 in (STORED_WINDOW_TURNS, TURNS_PER_CUSTOMER):
                    sizes[turn + 1] = await _checkpoint_bytes(url, "whatsapp:+34600000000")
        peak = tracemalloc.get_traced_memory()[1] if trace_memory else 0
        tracemalloc.stop()
        await db.close()
    quantiles = statistics.quantiles(durations, n=20)
    return Result(
        p50_ms=statistics.median(durations),
        p95_ms=quantiles[18],
        checkpoint_bytes_window_full=sizes[STORED_WINDOW_TURNS],
        checkpoint_bytes_last=sizes[TURNS_PER_CUSTOMER],
        peak_mib=peak / 2**20,
    )
