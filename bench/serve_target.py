"""One system's webhook alone (no worker) served by uvicorn in a process of its own, so that a burst is measured over
real sockets with the client on the other core: `python -m bench.serve_target asistente|bare --port ...`.

The Twilio auth token comes in BENCH_TWILIO_TOKEN (not on the command line, where `ps` shows it). Both systems run
under the same uvicorn settings (access log off).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import socket
import sys
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import uvicorn

from bench.bare import bare_webhook_app
from bench.doubles import ROOT, Doubles
from bench.targets import (
    ASISTENTE,
    BARE,
    Target,
    asistente_settings,
    bare_config,
    bench_options,
    new_prefix,
)
from core.business import example_business
from server.app import create_app
from server.wiring import Overrides

TOKEN_ENV = "BENCH_TWILIO_TOKEN"
START_WITHIN_SECONDS = 60.0


def _app(system: str, db_url: str, doubles: Doubles, token: str, spool: Path) -> Any:
    if system == ASISTENTE:
        overrides = Overrides(business=example_business(), options=bench_options())
        settings = asistente_settings(db_url, doubles, token, spool)
        return create_app(settings, overrides, with_agent=False, run_worker=False)
    config = bare_config(db_url, doubles, token, worker=False)
    return bare_webhook_app(config)


@asynccontextmanager
async def served(
    system: str, db_url: str, doubles: Doubles, spool: Path, token: str
) -> AsyncIterator[tuple[Target, int]]:
    """The system's webhook in a process of its own (its database already migrated): a `Target` posting to it over
    HTTP, and the process's id."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = int(sock.getsockname()[1])
    args = [sys.executable, "-m", "bench.serve_target", system, "--port", str(port), "--db-url", db_url]
    args += ["--doubles-url", doubles.base_url, "--spool", str(spool)]
    process = await asyncio.create_subprocess_exec(*args, cwd=ROOT, env={**os.environ, TOKEN_ENV: token})
    limits = httpx.Limits(max_connections=None, max_keepalive_connections=None)
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", limits=limits, timeout=60) as client:
            deadline = time.monotonic() + START_WITHIN_SECONDS
            while True:
                try:
                    await client.get("/")
                    break
                except httpx.TransportError:
                    if process.returncode is not None or time.monotonic() > deadline:
                        raise RuntimeError(f"{system} webhook process did not start") from None
                    await asyncio.sleep(0.1)
            yield Target(system, db_url, client, token, doubles, prefix=new_prefix()), process.pid
    finally:
        if process.returncode is None:
            process.terminate()
            try:
                await asyncio.wait_for(process.wait(), 15)
            except TimeoutError:
                process.kill()
                await process.wait()


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds process `pid` has used (Linux /proc; 0.0 where it cannot be read)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return 0.0
    fields = stat.rsplit(")", 1)[1].split()  # after the command name, which may hold spaces
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def main() -> None:
    """Serve one system's webhook until terminated."""
    parser = argparse.ArgumentParser(description="One system's webhook alone, under uvicorn.")
    parser.add_argument("system", choices=[ASISTENTE, BARE])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--db-url", required=True)
    parser.add_argument("--doubles-url", required=True)
    parser.add_argument("--spool", type=Path, required=True)
    args = parser.parse_args()
    app = _app(args.system, args.db_url, Doubles(args.doubles_url), os.environ[TOKEN_ENV], args.spool)
    uvicorn.run(app, host="127.0.0.1", port=args.port, log_level="warning", access_log=False)


if __name__ == "__main__":
    main()
