"""Turns through the whole path, Asistente and the bare loop running side by side in this process (their turns
alternate, so both see the same machine): latency from the webhook to the reply reaching Twilio, database
transactions per turn (PostgreSQL), and one long conversation (`bench.conversation`)."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from pathlib import Path

from bench import pg
from bench.conversation import ConversationFigures, run_conversation
from bench.doubles import Doubles
from bench.report import Row, ms, percentile, ratio
from bench.sizes import Sizes
from bench.targets import (
    ASISTENTE,
    BARE,
    QUIET_BACKGROUND,
    Target,
    bench_options,
    open_asistente,
    open_bare,
)
from server.options import ServerOptions

TEXT = "¿Tenéis hueco para un corte mañana? ({n})"


@dataclass
class Engine:
    """One database engine's pair of databases (one per system) and what to measure on it."""

    name: str  # "SQLite" / "PostgreSQL"
    urls: dict[str, str]  # ASISTENTE / BARE -> database URL
    turn_target: float  # the ratio the turn latency should stay under
    admin: str | None = None  # PostgreSQL: where transactions are counted from
    conversation: bool = False  # run the long conversation on this engine


@dataclass
class TurnFigures:
    """What the turn benchmarks measured, per system."""

    latencies: dict[str, list[float]] = field(default_factory=dict)
    transactions: dict[str, float] = field(default_factory=dict)
    idle_per_second: dict[str, float] = field(default_factory=dict)
    conversation: ConversationFigures = field(default_factory=ConversationFigures)


async def measure_turns(engine: Engine, doubles: Doubles, sizes: Sizes, spool: Path) -> TurnFigures:
    """Warm up, then time interleaved turns and run the long conversation (production options but the fold window);
    on PostgreSQL also count transactions per turn and per idle second."""
    figures = TurnFigures()
    async with (
        open_asistente(engine.urls[ASISTENTE], doubles, spool, worker=True) as asistente,
        open_bare(engine.urls[BARE], doubles, worker=True) as bare,
    ):
        targets = (asistente, bare)
        await _rounds(targets, sizes.customers, sizes.warmup_turns, {})  # every customer known, caches warm
        figures.latencies = {t.name: [] for t in targets}
        await _rounds(targets, sizes.customers, sizes.turns_per_customer, figures.latencies)
        if engine.conversation:
            await run_conversation(targets, doubles, sizes, figures.conversation)
    if engine.admin is not None:
        await _count_transactions(engine, engine.admin, doubles, sizes, spool, figures)
    return figures


async def _count_transactions(
    engine: Engine, admin: str, doubles: Doubles, sizes: Sizes, spool: Path, figures: TurnFigures
) -> None:
    """Transactions per turn and per idle second, each the difference of two runs of the apps that differ only in
    the work measured, so that start-up, shutdown and first contact cancel out."""

    async def committed(options: ServerOptions | None, rounds: int, idle: float) -> dict[str, int]:
        before = {name: await pg.quiesced_commits(admin, url) for name, url in engine.urls.items()}
        async with (
            open_asistente(engine.urls[ASISTENTE], doubles, spool, worker=True, options=options) as asistente,
            open_bare(engine.urls[BARE], doubles, worker=True) as bare,
        ):
            await _rounds((asistente, bare), sizes.customers, rounds, {})
            await asyncio.sleep(idle)
        return {name: await pg.quiesced_commits(admin, url) - before[name] for name, url in engine.urls.items()}

    quiet = bench_options(**QUIET_BACKGROUND)
    first = await committed(quiet, 1, 0.0)
    more = await committed(quiet, 1 + sizes.turns_per_customer, 0.0)
    turns = sizes.customers * sizes.turns_per_customer
    figures.transactions = {name: (more[name] - first[name]) / turns for name in first}
    # Both idle runs last long enough for the connection pools to have opened what they open at start.
    still = await committed(None, 0, sizes.pools_settle_seconds)
    waited = await committed(None, 0, sizes.pools_settle_seconds + sizes.idle_seconds)
    figures.idle_per_second = {name: (waited[name] - still[name]) / sizes.idle_seconds for name in still}


async def _rounds(targets: tuple[Target, ...], customers: int, rounds: int, into: dict[str, list[float]]) -> None:
    # Customers take turns one after another; the two systems alternate which goes first.
    n = 0
    for _ in range(rounds):
        for customer in range(customers):
            for target in targets if n % 2 == 0 else targets[::-1]:
                seconds = await target.turn(customer, TEXT.format(n=n))
                into.setdefault(target.name, []).append(seconds)
            n += 1


def turn_rows(engine: Engine, figures: TurnFigures) -> list[Row]:
    """The latency and transaction rows of one engine."""
    a, b = figures.latencies[ASISTENTE], figures.latencies[BARE]
    limit = engine.turn_target
    rows = []
    for label, p in (("p50", 50.0), ("p95", 95.0)):
        mine, bare = percentile(a, p), percentile(b, p)
        r = ratio(mine, bare)
        rows.append(
            Row(
                f"turn, webhook → Twilio send, fold window 0, {label}",
                ms(mine),
                ms(bare),
                r,
                f"≤ {limit:g}x",
                None if r is None else r <= limit,
            )
        )
    if figures.transactions:
        mine, bare = figures.transactions[ASISTENTE], figures.transactions[BARE]
        rows.append(
            Row(
                "DB transactions per turn",
                f"{mine:.1f}",
                f"{bare:.1f}",
                ratio(mine, bare),
                "—",
                None,
                "background passes set far apart",
            )
        )
    if figures.idle_per_second:
        mine, bare = figures.idle_per_second[ASISTENTE], figures.idle_per_second[BARE]
        rows.append(Row("DB transactions per second, idle", f"{mine:.1f}", f"{bare:.1f}", ratio(mine, bare), "—", None))
    return rows
