"""`asistente serve --no-worker` and `asistente worker` as real processes: started with the suite's environment,
waited for until they answer, killed with SIGKILL (a crash) or stopped with SIGTERM, their output kept in files.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx

from tests.reliability.ports import free_port

ROOT = Path(__file__).resolve().parents[2]
START_WITHIN = 90.0


class AppProcess:
    """One `asistente` process; `ready_url` answers 200 once it is up."""

    def __init__(self, name: str, args: list[str], *, env: dict[str, str], cwd: Path, ready_url: str) -> None:
        self.name = name
        self._args = args
        self._env = env
        self._cwd = cwd
        self.ready_url = ready_url
        self.log = cwd / f"{name}.log"
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def pid(self) -> int | None:
        """The running process's id."""
        return self._proc.pid if self._proc is not None else None

    @property
    def alive(self) -> bool:
        """Whether the process runs."""
        return self._proc is not None and self._proc.poll() is None

    def start(self) -> None:
        """Start and wait until `ready_url` answers; a process that exits or never answers fails with its log."""
        self.launch()
        self.wait_ready()

    def launch(self) -> None:
        """Start the process without waiting for it."""
        with self.log.open("ab") as out:
            out.write(f"---- start {time.strftime('%H:%M:%S')} ----\n".encode())
            out.flush()
            # Its own session: a kill reaches this process only, never the test runner.
            self._proc = subprocess.Popen(  # noqa: S603 - our own interpreter and module
                [sys.executable, "-m", "cli.main", *self._args],
                cwd=self._cwd,
                env=self._env,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    def wait_ready(self) -> None:
        """Wait until `ready_url` answers 200; a process that exits or never answers fails with its log."""
        deadline = time.monotonic() + START_WITHIN
        while True:
            if not self.alive:
                raise RuntimeError(f"{self.name} exited during start-up:\n{self.tail()}")
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(self.ready_url, timeout=2).status_code == 200:
                    return
            if time.monotonic() > deadline:
                raise RuntimeError(
                    f"{self.name} did not answer {self.ready_url} within {START_WITHIN:g} s:\n{self.tail()}"
                )
            time.sleep(0.1)

    def kill(self) -> None:
        """SIGKILL: no handler runs, nothing is flushed or released (a crash, an OOM kill, a pulled plug)."""
        if self._proc is not None and self._proc.poll() is None:
            os.kill(self._proc.pid, signal.SIGKILL)
            self._proc.wait(timeout=10)

    def stop(self, grace: float = 15.0) -> None:
        """SIGTERM, then SIGKILL after `grace` seconds."""
        if self._proc is None or self._proc.poll() is not None:
            return
        self._proc.send_signal(signal.SIGTERM)
        try:
            self._proc.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            self.kill()

    def tail(self, lines: int = 30) -> str:
        """The end of the process's output, without the access log (the suite's own polling fills it)."""
        if not self.log.exists():
            return "(no output)"
        text = self.log.read_text(encoding="utf-8", errors="replace").splitlines()
        return "\n".join([line for line in text if '"uvicorn.access"' not in line][-lines:])


class Stack:
    """The processes of one scenario: one server (no worker inside) and any number of workers."""

    def __init__(self, env: dict[str, str], workdir: Path, server_port: int) -> None:
        self._env = env
        self._workdir = workdir
        self.server_port = server_port
        self.server: AppProcess | None = None
        self.workers: list[AppProcess] = []

    @property
    def base_url(self) -> str:
        """Where the server listens (also its PUBLIC_BASE_URL, so signatures are computed on it)."""
        return f"http://127.0.0.1:{self.server_port}"

    def start(self, workers: int = 1) -> list[AppProcess]:
        """The server and `workers` workers, started side by side (the schema is in place: see `World`); returns
        the workers once everything answers."""
        args = ["serve", "--no-worker", "--host", "127.0.0.1", "--port", str(self.server_port)]
        self.server = AppProcess("server", args, env=self._env, cwd=self._workdir, ready_url=self.base_url + "/health")
        self.server.launch()
        started = [self.launch_worker() for _ in range(workers)]
        for process in [self.server, *started]:
            process.wait_ready()
        return started

    def start_worker(self) -> AppProcess:
        """One more worker, waited for."""
        worker = self.launch_worker()
        worker.wait_ready()
        return worker

    def launch_worker(self) -> AppProcess:
        """Another `asistente worker`, not waited for: it is up once its metrics endpoint answers (`wait_ready`)."""
        port = free_port()
        name = f"worker{len(self.workers) + 1}"
        args = ["worker", "--metrics-port", str(port)]
        worker = AppProcess(name, args, env=self._env, cwd=self._workdir, ready_url=f"http://127.0.0.1:{port}/metrics")
        self.workers.append(worker)
        worker.launch()
        return worker

    def close(self) -> None:
        """Stop every process still running (workers first)."""
        for process in [*self.workers, self.server]:
            if process is not None:
                process.stop(grace=5)

    def logs(self) -> str:
        """The last lines of every process, for a failing test's report."""
        processes = [p for p in [self.server, *self.workers] if p is not None]
        return "\n".join(f"==== {p.name} ({p.log}) ====\n{p.tail()}" for p in processes)
