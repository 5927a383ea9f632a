"""The webhook alone (workers off, so nothing but the request path runs): CPU per acknowledged message, and ack
latency when many customers write at once.

CPU: sequential requests through each app over ASGI in this process (httpx's `ASGITransport`), `time.process_time()`
less what the client and transport cost against an app that answers at once. The burst: each system's webhook in a
process of its own under uvicorn (`bench.serve_target`), every request posted at once over a connection of its own.
"""

from __future__ import annotations

import asyncio
import secrets
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlencode

import httpx
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from bench.bare import WEBHOOK_PATH
from bench.doubles import Doubles
from bench.report import Row, pair_ms, percentile, ratio
from bench.serve_target import cpu_seconds, served
from bench.sizes import Sizes
from bench.targets import ASISTENTE, BARE, PUBLIC_BASE, Target, open_asistente, open_bare
from bench.turns import Engine

ACK_CPU_TARGET = 2.0
ACK_P99_TARGET_SECONDS = 0.2
TEXT = "Hola, ¿hay hueco el jueves? ({n})"
ACK_CUSTOMERS = 100  # the sequential requests come from this many customers in turn
BURST_FIRST_CUSTOMER = 20_000  # customers of their own: the burst is their first contact

Poster = Callable[[int, int], Awaitable[None]]  # (customer index, message number): post one signed message


@dataclass
class AckFigures:
    """CPU seconds per request (the client's share subtracted) and each burst request's latency, per system."""

    cpu: dict[str, float] = field(default_factory=dict)
    client_cpu: float = 0.0
    burst: dict[str, list[float]] = field(default_factory=dict)
    burst_cpu: dict[str, float] = field(default_factory=dict)  # the server process's CPU seconds per burst request


def _null_app() -> Starlette:
    # What the client and the ASGI transport cost by themselves: an app that answers without reading the request.
    async def ok(request: Request) -> Response:
        return Response(status_code=200)

    return Starlette(routes=[Route(WEBHOOK_PATH, ok, methods=["POST"])])


async def _cpu_per_request(post: Poster, requests: int, start: int) -> float:
    before = time.process_time()
    for n in range(start, start + requests):
        await post(n % ACK_CUSTOMERS, n)
    return time.process_time() - before


async def measure_acks(engine: Engine, doubles: Doubles, sizes: Sizes, spool: Path) -> AckFigures:
    """Sequential signed webhooks for CPU, then the burst, each system on its own."""
    figures = AckFigures()
    async with (
        open_asistente(engine.urls[ASISTENTE], doubles, spool, worker=False) as asistente,
        open_bare(engine.urls[BARE], doubles, worker=False) as bare,
        httpx.AsyncClient(transport=httpx.ASGITransport(app=_null_app()), base_url=PUBLIC_BASE) as null,
    ):
        targets = (asistente, bare)

        def poster(target: Target) -> Poster:
            async def post(customer: int, n: int) -> None:
                await target.post(customer, TEXT.format(n=n))

            return post

        async def null_post(customer: int, n: int) -> None:
            form, headers = asistente.signed(customer, TEXT.format(n=n))
            (await null.post(WEBHOOK_PATH, data=form, headers=headers)).raise_for_status()

        posters: dict[str, Poster] = {t.name: poster(t) for t in targets} | {"client": null_post}
        for post in posters.values():  # warm: imports, connections, first customers
            await _cpu_per_request(post, 10, 0)
        spent = dict.fromkeys(posters, 0.0)
        half = max(sizes.ack_requests // 2, 1)
        for round_start in (10, 10 + half):  # two rounds, alternating, so both see the same machine
            for name, post in posters.items():
                spent[name] += await _cpu_per_request(post, half, round_start)
        figures.client_cpu = spent.pop("client") / (2 * half)
        figures.cpu = {name: max(total / (2 * half) - figures.client_cpu, 0.0) for name, total in spent.items()}
    for name in (ASISTENTE, BARE):
        async with served(name, engine.urls[name], doubles, spool, secrets.token_hex(16)) as (target, pid):
            await _burst(target, 1, 10)  # imports, connections, caches
            before = cpu_seconds(pid)
            figures.burst[name] = await _burst(target, sizes.burst_customers, sizes.burst_messages)
            figures.burst_cpu[name] = (cpu_seconds(pid) - before) / len(figures.burst[name])
    return figures


async def _burst(target: Target, customers: int, messages: int) -> list[float]:
    """Every customer's messages posted at the same moment (signed and encoded beforehand), each on a connection of
    its own; each one's time from that moment to its answer. A bare HTTP/1.1 exchange per request: a client with a
    connection pool would spend more CPU on 600 connections than the servers it measures."""
    host, port = target.client.base_url.host, target.client.base_url.port or 80
    requests = []
    for message in range(messages):
        for customer in range(customers):
            form, headers = target.signed(BURST_FIRST_CUSTOMER + customer, TEXT.format(n=message))
            body = urlencode(form).encode()
            head = [f"POST {WEBHOOK_PATH} HTTP/1.1", f"Host: {host}:{port}", "Connection: close"]
            head += ["Content-Type: application/x-www-form-urlencoded", f"Content-Length: {len(body)}"]
            head += [f"{name}: {value}" for name, value in headers.items()]
            requests.append(("\r\n".join(head) + "\r\n\r\n").encode() + body)
    started = time.perf_counter()

    async def post(request: bytes) -> float:
        reader, writer = await asyncio.open_connection(host, port)
        try:
            writer.write(request)
            answer = await reader.read()  # the server closes the connection after its answer
        finally:
            writer.close()
        if not answer.startswith(b"HTTP/1.1 200"):
            raise RuntimeError(f"{target.name} webhook answered {answer[:40]!r}")
        return time.perf_counter() - started

    return list(await asyncio.gather(*(post(request) for request in requests)))


def ack_rows(figures: AckFigures, sizes: Sizes) -> list[Row]:
    """The CPU and burst rows of one engine."""
    mine, bare = figures.cpu[ASISTENTE], figures.cpu[BARE]
    r = ratio(mine, bare)
    rows = [
        Row(
            "webhook ack CPU per message (signature + store)",
            f"{mine * 1000:.2f} ms",
            f"{bare * 1000:.2f} ms",
            r,
            f"≤ {ACK_CPU_TARGET:g}x",
            None if r is None else r <= ACK_CPU_TARGET,
            f"client's {figures.client_cpu * 1000:.2f} ms subtracted",
        )
    ]
    a, b = figures.burst[ASISTENTE], figures.burst[BARE]
    a50, a99, b50, b99 = percentile(a, 50), percentile(a, 99), percentile(b, 50), percentile(b, 99)
    rows.append(
        Row(
            f"ack p50 / p99, {sizes.burst_customers} customers x {sizes.burst_messages} messages at once",
            pair_ms(a50, a99),
            pair_ms(b50, b99),
            ratio(a99, b99),
            f"p99 ≤ {ACK_P99_TARGET_SECONDS * 1000:.0f} ms",
            a99 <= ACK_P99_TARGET_SECONDS,
            f"ratio of p99; server CPU {figures.burst_cpu[ASISTENTE] * 1000:.1f} / "
            f"{figures.burst_cpu[BARE] * 1000:.1f} ms per request",
        )
    )
    return rows
