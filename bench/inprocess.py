"""The in-process suite: Asistente beside the bare loop on SQLite and on PostgreSQL, one section per engine.

Run by `python -m bench`; `sections(quick=True)` is what tests/test_bench.py runs.
"""

from __future__ import annotations

import asyncio
import tempfile
from pathlib import Path

import psycopg

from bench import pg
from bench.acks import AckFigures, ack_rows, measure_acks
from bench.conversation import conversation_rows
from bench.doubles import Doubles, running_doubles
from bench.report import Section
from bench.sizes import FULL, QUICK, Sizes
from bench.targets import ASISTENTE, BARE
from bench.turns import Engine, TurnFigures, measure_turns, turn_rows

SQLITE_TURN_TARGET = 1.3
POSTGRES_TURN_TARGET = 1.5

NOTES = [
    "Turns: both systems run in this process as ASGI apps with their workers in the same event loop; the model and "
    "Twilio are doubles served over HTTP by a process of their own, the model answering at once with one "
    "check_availability call, then a text.",
    "Customers write one after another (each waits for its reply); Asistente's and the bare loop's turns "
    "alternate. Time from posting the signed webhook to the reply reaching the Twilio double. Asistente runs with its "
    "production options except the fold window, set to 0.",
    "Ack: workers off, so only the request path runs. CPU is `time.process_time()` over sequential requests through "
    "the ASGI app in this process (the database's own process not included on PostgreSQL), minus what the client and "
    "ASGI transport cost against an app that answers at once. The burst: each webhook served alone by uvicorn in a "
    "process of its own (access log off for both), every message signed beforehand and posted at the same moment "
    "over a connection of its own; each ack timed from that moment.",
]
POSTGRES_NOTES = [
    "Transactions per turn: `pg_stat_database.xact_commit` of each system's own database (the checkpointer's "
    "transactions included), read once every connection has closed, for two runs of fresh apps that differ only in "
    "the number of rounds of turns (1, then 1 + the timed rounds), so that start-up, shutdown and each customer's "
    "first contact cancel out; the difference divided by the extra turns. Background passes (every kind of polling, "
    "maintenance, holding check) run an hour apart in these runs. Idle transactions per second: the same difference "
    "between two runs that only wait, with production options.",
]


CONVERSATION_NOTES = [
    "One customer writes turn after turn, through the same apps as the turns above. Input size is what the model "
    "double receives per call (messages and tool schemas as JSON, divided by 4 as a token estimate): Asistente sends "
    "its system prompt, every tool's schema and a bounded window; the bare loop sends the whole history and its one "
    "tool. Checkpoint bytes: every stored checkpoint, blob and pending write of the thread (Asistente keeps the "
    "latest checkpoint of a compacted window; the bare loop keeps every checkpoint of its whole history). The bare "
    "loop's turns slow down as the history grows, so it stops earlier and its last figure is projected (a·n² + b·n "
    "through its last two measurements).",
]


def sections(quick: bool = False, *, engines: tuple[str, ...] = ("sqlite", "postgres")) -> list[Section]:
    """Run the suite (doubles started and stopped here); one section per engine, plus the long conversation."""
    sizes = QUICK if quick else FULL
    with running_doubles() as doubles:
        return asyncio.run(_sections(doubles, sizes, engines))


async def _sections(doubles: Doubles, sizes: Sizes, engines: tuple[str, ...]) -> list[Section]:
    found = [Section("In-process: how it is measured", [], [*NOTES, *POSTGRES_NOTES])]
    with tempfile.TemporaryDirectory(prefix="asistente-bench-") as tmp:
        spool = Path(tmp) / "spool"
        if "sqlite" in engines:
            urls = {ASISTENTE: f"sqlite:///{tmp}/asistente.db", BARE: f"sqlite:///{tmp}/bare.db"}
            engine = Engine("SQLite", urls, SQLITE_TURN_TARGET, conversation=True)
            turns, acks = await _measure(engine, doubles, sizes, spool)
            found.append(_section(engine, turns, acks, sizes))
            conversation = Section(
                f"One conversation of {sizes.conversation_turns} turns, SQLite",
                conversation_rows(turns.conversation, sizes),
                list(CONVERSATION_NOTES),
            )
            found.append(conversation)
        if "postgres" in engines:
            found.append(await _postgres(doubles, sizes, spool))
    return found


async def _measure(engine: Engine, doubles: Doubles, sizes: Sizes, spool: Path) -> tuple[TurnFigures, AckFigures]:
    # Turns first (the acks leave messages no worker answers, which a later worker would pick up).
    turns = await measure_turns(engine, doubles, sizes, spool)
    acks = await measure_acks(engine, doubles, sizes, spool)
    return turns, acks


async def _postgres(doubles: Doubles, sizes: Sizes, spool: Path) -> Section:
    admin = pg.admin_url()
    try:
        with pg.throwaway_databases(admin, ["asistente", "bare"]) as urls:
            engine = Engine(
                "PostgreSQL", {ASISTENTE: urls["asistente"], BARE: urls["bare"]}, POSTGRES_TURN_TARGET, admin=admin
            )
            turns, acks = await _measure(engine, doubles, sizes, spool)
            return _section(engine, turns, acks, sizes)
    except psycopg.OperationalError as exc:
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        return Section("In-process, PostgreSQL", [], [f"Not run: PostgreSQL not reachable at {admin} ({reason})."])


def _section(engine: Engine, turns: TurnFigures, acks: AckFigures, sizes: Sizes) -> Section:
    counted = sizes.customers * sizes.turns_per_customer
    notes = [
        f"{counted} timed turns per system ({sizes.customers} customers x {sizes.turns_per_customer}) after "
        f"{sizes.warmup_turns} untimed per customer; ack CPU over {2 * max(sizes.ack_requests // 2, 1)} requests."
    ]
    if engine.admin is not None:
        notes.append(
            f"Idle transactions over {sizes.idle_seconds:g} s (each connection a pool happens to open adds one, so "
            "short runs are noisy)."
        )
    return Section(f"In-process, {engine.name}", turn_rows(engine, turns) + ack_rows(acks, sizes), notes)
