"""The measures of the deployed layouts, each driven the same way against either system (`proc_systems.System`):

- `customer_waits`: customers one at a time, each time from the webhook POST to its reply reaching the Twilio double.
- `burst`: every customer posts its messages at once (each customer's in order); time from the first POST until
  every customer has an answer and nothing is left pending. `bare_loop_burst` is the bare loop's counterpart in this
  process: each customer's messages stored, then one turn per customer under a semaphore of the same size as
  Asistente's turn slots.
- `throughput`: a warm-up round (one message per customer, all answered), then the measured round: every customer
  posts once at the same moment; turns per second from the first POST to the last reply, and the CPU each process
  used meanwhile.

Replies are read from the doubles' own log: every accepted message with its CLOCK_MONOTONIC stamp, one clock for
every process on the machine.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Collection
from dataclasses import dataclass

import httpx

from bench.bare import BareLoop, open_bare_store
from bench.doubles import MODEL_API_KEY, TWILIO_ACCOUNT_SID, Doubles
from bench.proc_cpu import CpuMeter, CpuUse
from bench.proc_systems import System
from bench.targets import BARE_MODEL_NAME, BUSINESS_NUMBER
from tests.reliability.figures import pending_work

QUESTION = "Hola, ¿tenéis hueco mañana para un corte?"
BURST = ("Hola", "Quería pedir cita para un corte", "Mañana si puede ser")
POLL_SECONDS = 0.2


async def _replies(doubles: Doubles, addresses: Collection[str]) -> list[tuple[str, float]]:
    """(to, monotonic stamp) of every message the Twilio double accepted for `addresses`."""
    _, sent = await doubles.stats()
    wanted = set(addresses)
    return [(to, at) for to, _, at in sent if to in wanted]


async def _until(done: Callable[[], Awaitable[bool]], within: float, what: str, system: System | None) -> None:
    deadline = time.monotonic() + within
    while not await done():
        if time.monotonic() > deadline:
            logs = f"\n{system.tails()}" if system is not None else ""
            raise TimeoutError(f"{what}: not done within {within:g} s{logs}")
        await asyncio.sleep(POLL_SECONDS)


async def customer_waits(system: System, customers: int, *, first: int = 0, warmup: int = 2) -> list[float]:
    """Seconds from each customer's POST to its reply at Twilio, customers `first`… one after another (the first
    `warmup` of them are not counted: the process's first turns warm its connections and caches)."""
    waits = []
    for index in range(first, first + warmup + customers):
        try:
            waits.append(await system.turn(index, QUESTION))
        except TimeoutError as exc:
            raise TimeoutError(f"{system.name}: {exc}\n{system.tails()}") from None
    return waits[warmup:]


@dataclass(frozen=True)
class Burst:
    """Seconds until every bursting customer was answered, and how long the webhook took to answer each POST."""

    seconds: float
    acks: list[float]


async def burst(system: System, customers: int, within: float, *, first: int = 0) -> Burst:
    """Customers `first`… each post `BURST` in order, all customers at once; seconds from the first POST until every
    one of them has a reply and no message or reply is pending (Asistente's database says so)."""
    indexes = range(first, first + customers)
    addresses = {system.address(i) for i in indexes}
    acks: list[float] = []

    async def customer(index: int) -> None:
        for text in BURST:
            acks.append(await system.post(index, text))

    started = time.monotonic()
    await asyncio.gather(*(customer(i) for i in indexes))

    async def answered() -> bool:
        if {to for to, _ in await _replies(system.doubles, addresses)} != addresses:
            return False
        return await asyncio.to_thread(pending_work, system.db_url) == 0

    await _until(answered, within, f"{system.name}: {customers} bursting customers answered", system)
    last = max(at for _, at in await _replies(system.doubles, addresses))
    return Burst(last - started, acks)


async def bare_loop_burst(db_url: str, doubles: Doubles, customers: int, concurrency: int) -> float:
    """The bare loop in this process: each customer's `BURST` stored (one INSERT each), then one turn per customer
    with the messages together, `concurrency` turns at once, the reply posted to Twilio and the rows marked
    answered; seconds from the start until the last reply reached Twilio."""
    addresses = [f"whatsapp:+3481{i:07d}" for i in range(customers)]
    url = f"{doubles.twilio_url}/2010-04-01/Accounts/{TWILIO_ACCOUNT_SID}/Messages.json"
    async with (
        open_bare_store(db_url) as store,
        BareLoop.open(store, doubles.model_url, MODEL_API_KEY, BARE_MODEL_NAME) as loop,
        httpx.AsyncClient(timeout=60) as http,
    ):
        slots = asyncio.Semaphore(concurrency)

        async def customer(number: int, wa_id: str) -> None:
            rows = [await store.insert_inbound(f"SMbare{number:08d}{k}", wa_id, text) for k, text in enumerate(BURST)]
            async with slots:
                reply = await loop.turn(wa_id, "\n".join(BURST))
                response = await http.post(
                    url,
                    data={"To": wa_id, "From": f"whatsapp:{BUSINESS_NUMBER}", "Body": reply},
                    auth=(TWILIO_ACCOUNT_SID, "bench"),
                )
                response.raise_for_status()
                for row in rows:
                    if row is not None:
                        await store.mark_answered(row)

        started = time.monotonic()
        await asyncio.gather(*(customer(n, wa_id) for n, wa_id in enumerate(addresses)))
    last = max(at for _, at in await _replies(doubles, addresses))
    return last - started


@dataclass(frozen=True)
class Throughput:
    """Turns of the measured round, how long it took, and the CPU used meanwhile."""

    turns: int
    seconds: float
    cpu: CpuUse

    @property
    def per_second(self) -> float:
        """Turns per second."""
        return self.turns / self.seconds if self.seconds > 0 else 0.0


async def _round(system: System, indexes: range, expected: int, within: float, text: str) -> float:
    """Every customer in `indexes` posts `text` at once; the stamp of the last reply once `expected` replies in all
    reached them."""
    addresses = [system.address(i) for i in indexes]
    await asyncio.gather(*(system.post(i, text) for i in indexes))

    async def arrived() -> bool:
        return len(await _replies(system.doubles, addresses)) >= expected

    await _until(arrived, within, f"{system.name}: {expected} replies", system)
    return max(at for _, at in await _replies(system.doubles, addresses))


async def throughput(system: System, customers: int, within: float, *, first: int = 0) -> Throughput:
    """Turns per second for `customers` customers writing at once (after a warm-up round of the same)."""
    indexes = range(first, first + customers)
    await _round(system, indexes, customers, within, QUESTION)
    meter = CpuMeter(system.pids)
    started = time.monotonic()
    last = await _round(system, indexes, 2 * customers, within, "¿Y pasado mañana?")
    return Throughput(customers, last - started, meter.read())
