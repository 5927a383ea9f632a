"""Asistente and the bare baseline as real processes on PostgreSQL, for the benchmarks of the deployed layouts.

- Asistente: the shipped `asistente serve` (worker in-process), or `asistente serve --no-worker` beside N
  `asistente worker` processes (the scale-out layout), started with the reliability suite's `AppProcess` / `Stack`
  and an environment of their own: every address points at the benchmark doubles, options from
  `ASISTENTE_<FIELD>` variables, nothing of the developer's configuration.
- Bare: N `python -m bench.proc_bare` processes (webhook and worker each), customers spread over them by number as
  a load balancer keyed on the customer would.

A `System` posts signed webhooks over HTTP through `bench.targets.Target` and knows the processes' ids, so a
benchmark can read how much CPU each used.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import os
import secrets
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Mapping
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from bench.bare import WEBHOOK_PATH
from bench.doubles import MODEL_API_KEY, MODEL_NAME, TWILIO_ACCOUNT_SID, Doubles
from bench.proc_bare import TOKEN_ENV
from bench.targets import ASISTENTE, BARE, BARE_MODEL_NAME, BUSINESS_NUMBER, PUBLIC_BASE, Target
from core.settings import Settings
from server.options import ENV_PREFIX, ServerOptions
from store.engines import open_database
from store.migrate import migrate
from tests.reliability.ports import free_port
from tests.reliability.processes import ROOT, AppProcess, Stack

START_WITHIN = 90.0


def asistente_env(
    db_url: str, doubles: Doubles, token: str, workdir: Path, options: Mapping[str, str]
) -> dict[str, str]:
    """The environment of Asistente's processes: the doubles, `db_url`, and the `options` fields this version has
    (as ASISTENTE_<FIELD>); production defaults for everything else."""
    env = {
        k: v for k, v in os.environ.items() if k.lower() not in Settings.model_fields and not k.startswith(ENV_PREFIX)
    }
    env |= {
        "PYTHONPATH": str(ROOT),
        "PYTHONUNBUFFERED": "1",
        "DATABASE_URL": db_url,
        "BUSINESS_CONFIG": str(ROOT / "business.example.yaml"),
        "SPOOL_DIR": str(workdir / "spool"),
        "OPENAI_API_KEY": MODEL_API_KEY,
        "OPENAI_BASE_URL": doubles.model_url,
        "OPENAI_MODEL": MODEL_NAME,
        "OPENAI_MAX_RETRIES": "0",
        "TWILIO_ACCOUNT_SID": TWILIO_ACCOUNT_SID,
        "TWILIO_AUTH_TOKEN": token,
        "TWILIO_WHATSAPP_NUMBER": BUSINESS_NUMBER,
        "TWILIO_API_BASE_URL": doubles.twilio_url,
        "PUBLIC_BASE_URL": PUBLIC_BASE,
        # Customers of a benchmark write more often than a person does; the limit is not what is measured.
        "RATE_LIMIT_PER_MINUTE": "1000000",
        "LANGSMITH_TRACING": "false",
    }
    known = {f.name for f in dataclasses.fields(ServerOptions)}
    env |= {ENV_PREFIX + name.upper(): value for name, value in options.items() if name in known}
    return env


def effective_options(env: Mapping[str, str]) -> ServerOptions:
    """The options the processes started with `env` run with."""
    return ServerOptions.from_env(env)


def fold_window_options(seconds: float) -> dict[str, str]:
    """Every fold (or, in older versions, debounce) field at `seconds`, whatever this version calls them."""
    names = [f.name for f in dataclasses.fields(ServerOptions) if f.name.startswith("fold") or "debounce" in f.name]
    return {name: f"{seconds:g}" for name in names}


def fold_window_seconds(options: ServerOptions) -> float:
    """How long a lone message waits for the customer to go quiet before its turn starts."""
    for name in ("fold_quiet_seconds", "debounce_seconds"):
        if hasattr(options, name):
            return float(getattr(options, name))
    return 0.0


class BareProcess:
    """One `python -m bench.proc_bare` process; up once its port answers HTTP (uvicorn binds after start-up)."""

    def __init__(self, name: str, db_url: str, doubles: Doubles, token: str, workdir: Path, concurrency: int) -> None:
        self.name = name
        self.port = free_port()
        self.log = workdir / f"{name}.log"
        self._args = [
            sys.executable,
            "-m",
            "bench.proc_bare",
            "--port",
            str(self.port),
            "--db-url",
            db_url,
            "--doubles-url",
            doubles.base_url,
            "--concurrency",
            str(concurrency),
            "--public-url",
            PUBLIC_BASE,
            "--business-number",
            BUSINESS_NUMBER,
            "--model",
            BARE_MODEL_NAME,
        ]
        self._env = {**os.environ, "PYTHONPATH": str(ROOT), TOKEN_ENV: token}
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def base_url(self) -> str:
        """Where it listens."""
        return f"http://127.0.0.1:{self.port}"

    @property
    def pid(self) -> int | None:
        """The process's id."""
        return self._proc.pid if self._proc is not None else None

    def start(self) -> None:
        """Start and wait until it answers; fails with its output when it exits or never answers."""
        with self.log.open("ab") as out:
            self._proc = subprocess.Popen(self._args, cwd=ROOT, env=self._env, stdout=out, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + START_WITHIN
        while True:
            if self._proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"{self.name} did not start:\n{self.tail()}")
            with contextlib.suppress(httpx.HTTPError):
                httpx.get(self.base_url + "/", timeout=2)
                return
            time.sleep(0.1)

    def stop(self) -> None:
        """SIGTERM, then SIGKILL after a few seconds."""
        if self._proc is None or self._proc.poll() is not None:
            return
        self._proc.terminate()
        try:
            self._proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self._proc.kill()
            self._proc.wait()

    def tail(self, lines: int = 20) -> str:
        """The end of its output."""
        if not self.log.exists():
            return "(no output)"
        return "\n".join(self.log.read_text(encoding="utf-8", errors="replace").splitlines()[-lines:])


@dataclass
class System:
    """A running system: where its customers post (customer i through `targets[i % len(targets)]`), its database,
    and its processes by role ("server", "worker1", …)."""

    name: str
    db_url: str
    doubles: Doubles
    targets: list[Target]
    pids: dict[str, int] = field(default_factory=dict)
    logs: list[Path] = field(default_factory=list)
    options: ServerOptions | None = None  # Asistente's, as its processes read them

    def target(self, customer: int) -> Target:
        """The entry point customer `customer` writes to."""
        return self.targets[customer % len(self.targets)]

    def address(self, customer: int) -> str:
        """Customer `customer`'s WhatsApp address."""
        return self.target(customer).customer(customer)

    async def post(self, customer: int, text: str) -> float:
        """Customer `customer` writes `text`; seconds until the webhook answered (200 required). A connection that
        fails is tried once more with the same message (its MessageSid deduplicates it, as for Twilio's retries)."""
        target = self.target(customer)
        form, headers = target.signed(customer, text)
        started = time.perf_counter()
        try:
            response = await target.client.post(WEBHOOK_PATH, data=form, headers=headers)
        except httpx.TransportError:
            response = await target.client.post(WEBHOOK_PATH, data=form, headers=headers)
        elapsed = time.perf_counter() - started
        if response.status_code != 200:
            raise RuntimeError(f"{self.name} webhook answered {response.status_code}\n{self.tails()}")
        return elapsed

    async def turn(self, customer: int, text: str, within: float = 30.0) -> float:
        """Customer `customer` writes `text`; seconds until the reply reached Twilio."""
        return await self.target(customer).turn(customer, text, within)

    def tails(self) -> str:
        """The last lines of every process's output, for an error."""
        parts = []
        for log in self.logs:
            text = log.read_text(encoding="utf-8", errors="replace").splitlines() if log.exists() else []
            kept = [line for line in text if '"uvicorn.access"' not in line][-15:]
            parts.append(f"==== {log.name} ====\n" + "\n".join(kept))
        return "\n".join(parts)


async def _migrate(db_url: str) -> None:
    database = open_database(db_url)
    try:
        await migrate(database)
    finally:
        await database.close()


def _client(base_url: str) -> httpx.AsyncClient:
    # Enough connections for a burst of customers posting at once, as Twilio's many senders would; an idle one is
    # dropped well before uvicorn closes it (after 5 s), so a post never races the server's close.
    limits = httpx.Limits(max_connections=64, max_keepalive_connections=64, keepalive_expiry=2.0)
    return httpx.AsyncClient(base_url=base_url, timeout=60, limits=limits)


@asynccontextmanager
async def asistente(
    db_url: str, doubles: Doubles, workdir: Path, *, workers: int, options: Mapping[str, str] | None = None
) -> AsyncIterator[System]:
    """Asistente on a migrated `db_url`: the shipped `serve` (worker in-process) with `workers=0`, else
    `serve --no-worker` and `workers` worker processes."""
    await _migrate(db_url)
    token = secrets.token_hex(16)
    await asyncio.to_thread(workdir.mkdir, parents=True, exist_ok=True)
    env = asistente_env(db_url, doubles, token, workdir, options or {})
    port = free_port()
    stack = Stack(env, workdir, port)
    processes: list[AppProcess] = []
    try:
        if workers:
            await asyncio.to_thread(stack.start, workers)
            assert stack.server is not None
            processes = [stack.server, *stack.workers]
        else:
            args = ["serve", "--no-migrate", "--host", "127.0.0.1", "--port", str(port)]
            server = AppProcess("serve", args, env=env, cwd=workdir, ready_url=stack.base_url + "/health")
            stack.server = server  # stopped with the stack
            await asyncio.to_thread(server.start)
            processes = [server]
        async with _client(stack.base_url) as client:
            target = Target(ASISTENTE, db_url, client, token, doubles, prefix="60")
            yield System(
                name=ASISTENTE,
                db_url=db_url,
                doubles=doubles,
                targets=[target],
                pids={p.name: p.pid for p in processes if p.pid is not None},
                logs=[p.log for p in processes],
                options=effective_options(env),
            )
    finally:
        await asyncio.to_thread(stack.close)


@asynccontextmanager
async def bare(
    db_url: str, doubles: Doubles, workdir: Path, *, processes: int, concurrency: int
) -> AsyncIterator[System]:
    """`processes` bare processes on `db_url`, each its own webhook and `concurrency` turn slots. They start one after
    another: each creates the tables and LangGraph's checkpoint schema if missing, which is not safe side by side."""
    token = secrets.token_hex(16)
    await asyncio.to_thread(workdir.mkdir, parents=True, exist_ok=True)
    started: list[BareProcess] = []
    try:
        for index in range(processes):
            process = BareProcess(f"bare{index + 1}", db_url, doubles, token, workdir, concurrency)
            started.append(process)
            await asyncio.to_thread(process.start)
        async with AsyncExitStack() as stack:
            targets = []
            for index, process in enumerate(started):
                client = await stack.enter_async_context(_client(process.base_url))
                # A prefix per process: distinct customers, and MessageSids that never collide in the shared table.
                targets.append(Target(BARE, db_url, client, token, doubles, prefix=str(71 + index)))
            yield System(
                name=BARE,
                db_url=db_url,
                doubles=doubles,
                targets=targets,
                pids={p.name: p.pid for p in started if p.pid is not None},
                logs=[p.log for p in started],
            )
    finally:
        for process in started:
            await asyncio.to_thread(process.stop)
