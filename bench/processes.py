"""The deployed layouts measured as real processes on PostgreSQL, beside the bare loop in the same run:

1. what a customer waits with an instant model, in the shipped `asistente serve` (worker in-process) and in the
   scale-out layout (`serve --no-worker` + one `asistente worker`), vs the bare webhook-and-worker process;
2. every customer of a burst answered (each writes three messages at once) with a slow model and 16 turn slots, vs
   the bare loop running 16 turns at once;
3. turns per second with an instant model, `serve --no-worker` + 1 / 2 / 4 workers, vs as many bare processes of
   16 turn slots each (the same concurrency: 16 turns a process, customers spread over processes by number).

`run(quick=True)` uses tiny sizes and one worker count, to show the whole path works in well under a minute.
"""

from __future__ import annotations

import asyncio
import tempfile
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

from bench.doubles import Doubles, running_doubles
from bench.pg import admin_url, throwaway_databases
from bench.proc_measures import BURST, Throughput, bare_loop_burst, burst, customer_waits, throughput
from bench.proc_systems import System, asistente, bare, fold_window_options, fold_window_seconds
from bench.report import Row, Section, format_ratio, median, pair_ms, percentile, ratio

SLOTS = 16  # turn slots: Asistente's max_concurrent_turns, and the bare loop's concurrency
WAIT_MARGIN_SECONDS = 0.1  # the target: the fold window plus at most this


@dataclass(frozen=True)
class Sizes:
    """How big each measure is."""

    waiting_customers: int
    burst_customers: int
    burst_model_seconds: float
    throughput_customers: int
    workers: tuple[int, ...]
    fold_zero: bool  # also measure turns/s with the fold window at 0


# Quick: the model's 2 s shrunk too, since the burst is then only a few turns.
QUICK = Sizes(3, 5, 0.5, 8, (1,), fold_zero=False)
FULL = Sizes(30, 200, 2.0, 128, (1, 2, 4), fold_zero=True)


def sections(quick: bool) -> list[Section]:
    """The suite's entry for `python -m bench`: `run` in an event loop of its own."""
    return asyncio.run(run(quick))


async def run(quick: bool, sizes: Sizes | None = None) -> list[Section]:
    """Every measure of the deployed layouts, as one section (`sizes` overrides the quick or full ones)."""
    sizes = sizes or (QUICK if quick else FULL)
    names = ["serve", "bare1", "burst_bare", *(f"split{n}" for n in sizes.workers)]
    names += [f"bare{n}" for n in sizes.workers if n > 1]
    names += [f"fold0_{n}" for n in sizes.workers] if sizes.fold_zero else []
    section = Section("Deployed layouts: real processes on PostgreSQL")
    with (
        running_doubles() as doubles,
        tempfile.TemporaryDirectory(prefix="asistente-bench-") as tmp,
        throwaway_databases(admin_url(), names) as urls,
    ):
        await _measure(_Run(doubles, Path(tmp), urls), sizes, section)
    return [section]


@dataclass
class _Run:
    """One run's doubles, scratch directory and databases; each system opened on a database of its own, the doubles
    reset first (they count replies per customer, and customers' numbers repeat across systems)."""

    doubles: Doubles
    tmp: Path
    urls: dict[str, str]

    @asynccontextmanager
    async def asistente(self, name: str, workers: int, options: dict[str, str]) -> AsyncIterator[System]:
        await self.doubles.control(reset=True)
        async with asistente(self.urls[name], self.doubles, self.tmp / name, workers=workers, options=options) as s:
            yield s

    @asynccontextmanager
    async def bare(self, name: str, processes: int) -> AsyncIterator[System]:
        await self.doubles.control(reset=True)
        async with bare(self.urls[name], self.doubles, self.tmp / name, processes=processes, concurrency=SLOTS) as s:
            yield s

    async def model_takes(self, seconds: float) -> None:
        await self.doubles.control(model_delay_seconds=seconds)


async def _measure(run: _Run, sizes: Sizes, section: Section) -> None:
    slots = {"max_concurrent_turns": str(SLOTS)}
    customers = sizes.throughput_customers
    # First turns of the shipped `serve` one at a time, then the burst on the same process.
    await run.model_takes(0.0)
    async with run.asistente("serve", 0, slots) as system:
        assert system.options is not None
        fold = fold_window_seconds(system.options)
        shipped = await customer_waits(system, sizes.waiting_customers)
        await run.model_takes(sizes.burst_model_seconds)
        burst_result = await burst(system, sizes.burst_customers, within=60 + 3 * sizes.burst_customers, first=1000)
    bare_burst = await bare_loop_burst(run.urls["burst_bare"], run.doubles, sizes.burst_customers, SLOTS)
    await run.model_takes(0.0)
    # One bare process and the one-worker split layout: waits first, then turns/s on the same processes.
    async with run.bare("bare1", 1) as system:
        bare_waits = await customer_waits(system, sizes.waiting_customers)
        bare_one = await throughput(system, customers, within=120, first=2000)
    async with run.asistente("split1", 1, slots) as system:
        split = await customer_waits(system, sizes.waiting_customers)
        turns = {1: (await throughput(system, customers, within=120, first=2000), bare_one)}
    for workers in sizes.workers[1:]:
        async with run.asistente(f"split{workers}", workers, slots) as system:
            mine = await throughput(system, customers, within=120, first=2000)
        async with run.bare(f"bare{workers}", workers) as system:
            turns[workers] = (mine, await throughput(system, customers, within=120, first=2000))
    fold_zero: dict[int, Throughput] = {}
    for workers in sizes.workers if sizes.fold_zero else ():
        async with run.asistente(f"fold0_{workers}", workers, {**slots, **fold_window_options(0.0)}) as system:
            fold_zero[workers] = await throughput(system, customers, within=120, first=2000)

    section.rows += [
        _wait_row("what a customer waits, instant model, shipped `serve`", shipped, bare_waits, fold),
        _wait_row("same, `serve --no-worker` + 1 `worker`", split, bare_waits, fold),
        _burst_row(sizes, burst_result.seconds, bare_burst),
    ]
    for workers, (mine, theirs) in turns.items():
        section.rows.append(_turns_row(workers, mine, theirs, fold, judged=True))
    for workers, mine in fold_zero.items():
        section.rows.append(_turns_row(workers, mine, turns[workers][1], 0.0, judged=False))
    section.notes += _notes(sizes, fold, burst_result.acks, turns, fold_zero)


def _wait_row(measure: str, mine: list[float], theirs: list[float], fold: float) -> Row:
    limit = fold + WAIT_MARGIN_SECONDS
    return Row(
        measure=measure + " (p50 / p95)",
        asistente=pair_ms(median(mine), percentile(mine, 95)),
        bare=pair_ms(median(theirs), percentile(theirs, 95)),
        ratio=ratio(median(mine), median(theirs)),
        target=f"p50 ≤ fold window + {WAIT_MARGIN_SECONDS * 1000:.0f} ms = {limit * 1000:.0f} ms",
        met=median(mine) <= limit,
        note=f"fold window {fold * 1000:.0f} ms, {len(mine)} customers one at a time",
    )


def _burst_row(sizes: Sizes, mine: float, theirs: float) -> Row:
    value = ratio(mine, theirs)
    return Row(
        measure=f"all {sizes.burst_customers} bursting customers answered, model {sizes.burst_model_seconds:g} s, "
        f"{SLOTS} turn slots",
        asistente=f"{mine:.1f} s",
        bare=f"{theirs:.1f} s",
        ratio=value,
        target="≤ 1.3x",
        met=value is not None and value <= 1.3,
        note=f"{len(BURST)} messages each, shipped `serve`",
    )


def _turns_row(workers: int, mine: Throughput, theirs: Throughput, fold: float, *, judged: bool) -> Row:
    value = ratio(mine.per_second, theirs.per_second)
    plural = "s" if workers > 1 else ""
    return Row(
        measure=f"turns/s, instant model, `serve --no-worker` + {workers} worker{plural}",
        asistente=f"{mine.per_second:.1f}/s",
        bare=f"{theirs.per_second:.1f}/s",
        ratio=value,
        target="≥ 0.5x" if judged else "(reported)",
        met=(value is not None and value >= 0.5) if judged else None,
        note=f"fold window {fold * 1000:.0f} ms; bare: {workers} process{'es' if workers > 1 else ''} × {SLOTS}",
    )


def _cpu_text(result: Throughput) -> str:
    per_turn = result.cpu.per_turn_ms(result.turns)
    parts = [f"{role} {value:.1f}" for role, value in sorted(per_turn.items())]
    busy = "" if result.cpu.machine_busy is None else f", machine {100 * result.cpu.machine_busy:.0f}% busy"
    return ("CPU ms/turn " + ", ".join(parts) if parts else "CPU not read") + busy


def _notes(
    sizes: Sizes,
    fold: float,
    acks: list[float],
    turns: dict[int, tuple[Throughput, Throughput]],
    fold_zero: dict[int, Throughput],
) -> list[str]:
    notes = [
        "Asistente runs as `asistente serve` / `asistente worker` processes with production options (fold window "
        f"{fold * 1000:.0f} ms, {SLOTS} turn slots a process), the bare loop as `python -m bench.proc_bare` "
        "processes (its durable webhook and worker under uvicorn); both on a fresh PostgreSQL database each, "
        "talking over HTTP to the same model and Twilio doubles (a separate process; a turn is one "
        "check_availability call and a text, two model calls).",
        "A customer's wait runs from the webhook POST to the reply reaching the Twilio double; customers one at a "
        "time, after two warm-up turns.",
        f"Burst: {sizes.burst_customers} customers post {len(BURST)} messages each, all at once (each "
        "customer's in order), to the shipped `serve`; timed until every customer had a reply and nothing was "
        "pending. Bare: the same messages stored, then one turn per customer with them together (the ideal fold), "
        f"{SLOTS} at once, in the benchmark's process. The model takes {sizes.burst_model_seconds:g} s a call. "
        f"Webhook answers during the burst (Asistente), p50 / p99: {pair_ms(median(acks), percentile(acks, 99))}.",
        f"turns/s: {sizes.throughput_customers} customers write at once (after a warm-up round); from the first "
        "POST to the last reply. Bare at the same concurrency: as many processes as Asistente has workers, "
        f"{SLOTS} turns each, customers spread over them by number (Asistente's server process has no bare "
        "counterpart: the bare process takes its own webhooks).",
    ]
    for workers, (mine, theirs) in turns.items():
        notes.append(f"{workers} worker(s): Asistente {_cpu_text(mine)}; bare {_cpu_text(theirs)}.")
    for workers, mine in fold_zero.items():
        notes.append(f"{workers} worker(s), fold window 0: Asistente {_cpu_text(mine)}.")
    if len(turns) > 1:
        first, *rest = sorted(turns)
        growth = ", ".join(
            f"{n}: {format_ratio(ratio(turns[n][0].per_second, turns[first][0].per_second))}" for n in rest
        )
        notes.append(f"Asistente turns/s against {first} worker: {growth}.")
    return notes
