"""A PostgreSQL cluster of the suite's own (never the shared server on 5432), which a scenario can crash and restart.

The cluster lives in a temporary directory owned by `postgres` (initdb refuses to run as root), listens on a free
loopback port and a private socket directory, and is removed when the session ends.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import psycopg

from tests.reliability.ports import free_port

_SEARCH = ("/usr/lib/postgresql",)


def postgres_bin() -> Path | None:
    """The directory holding initdb and pg_ctl: the newest under /usr/lib/postgresql, else the one on PATH."""
    for root in _SEARCH:
        versions = sorted(Path(root).glob("*/bin/initdb"), key=lambda p: int(p.parent.parent.name), reverse=True)
        if versions:
            return versions[0].parent
    found = shutil.which("initdb")
    return Path(found).resolve().parent if found else None


class PgCluster:
    """initdb, start, stop (fast or immediate, i.e. a crash), start again, create databases, clean up."""

    def __init__(self, bindir: Path) -> None:
        self._bin = bindir
        self.root = Path(tempfile.mkdtemp(prefix="asistente-reliability-pg-"))
        self.data = self.root / "data"
        self.sockets = self.root / "sock"
        self.log = self.root / "postgres.log"
        self.port = free_port()

    def _run(self, *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
        command = [str(self._bin / args[0]), *args[1:]]
        if os.geteuid() == 0:
            command = ["runuser", "-u", "postgres", "--", *command]
        return subprocess.run(command, capture_output=True, text=True, timeout=timeout, check=False)

    def _check(self, done: subprocess.CompletedProcess[str], what: str) -> None:
        if done.returncode != 0:
            tail = "\n".join((done.stderr or done.stdout).strip().splitlines()[-5:])
            raise RuntimeError(f"{what} failed (exit {done.returncode}): {tail}")

    def init(self) -> None:
        """Create the data directory (trust authentication on loopback: nothing here is secret)."""
        self.sockets.mkdir(parents=True)
        if os.geteuid() == 0:
            shutil.chown(self.root, "postgres", "postgres")
            shutil.chown(self.sockets, "postgres", "postgres")
        done = self._run("initdb", "-D", str(self.data), "--auth=trust", "-U", "postgres", "-E", "UTF8", "--no-sync")
        self._check(done, "initdb")

    def start(self) -> None:
        """Start and wait until it accepts connections."""
        options = f"-p {self.port} -k {self.sockets} -c listen_addresses=127.0.0.1 -c fsync=off"
        done = self._run("pg_ctl", "-D", str(self.data), "-l", str(self.log), "-o", options, "-w", "-t", "60", "start")
        self._check(done, "pg_ctl start")

    def stop(self, mode: str = "fast") -> None:
        """Stop: `fast` (clean), or `immediate` (a crash: no checkpoint, clients cut off, recovery on start)."""
        done = self._run("pg_ctl", "-D", str(self.data), "-m", mode, "-w", "-t", "60", "stop")
        self._check(done, f"pg_ctl stop -m {mode}")

    @property
    def running(self) -> bool:
        """Whether the postmaster is up."""
        return self._run("pg_ctl", "-D", str(self.data), "status").returncode == 0

    def url(self, database: str = "postgres") -> str:
        """A connection URL (loopback TCP, user postgres)."""
        return f"postgresql://postgres@127.0.0.1:{self.port}/{database}"

    def create_database(self, name: str) -> str:
        """A new empty database; returns its URL."""
        with psycopg.connect(self.url(), autocommit=True, connect_timeout=10) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        return self.url(name)

    def destroy(self) -> None:
        """Stop whatever runs and remove the directory."""
        with contextlib.suppress(Exception):
            if self.running:
                self.stop("immediate")
        shutil.rmtree(self.root, ignore_errors=True)
