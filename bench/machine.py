"""The machine a benchmark ran on, as BENCHMARKS.md shows it (figures mean little without it)."""

from __future__ import annotations

import os
import platform
import sqlite3
import subprocess
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path

from bench import pg

ROOT = Path(__file__).resolve().parents[1]


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "?"


def _memory() -> str:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return f"{int(line.split()[1]) / 2**20:.1f} GiB"
    except OSError:
        pass
    return "?"


def _git(*args: str) -> str:
    found = subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True, check=True)  # noqa: S607
    return found.stdout.strip()


def _commit() -> str:
    try:
        head = _git("rev-parse", "--short", "HEAD")
        dirty = _git("status", "--porcelain", "--untracked-files=no")
    except (OSError, subprocess.CalledProcessError):
        return "?"
    return head + (" + uncommitted changes" if dirty else "")


def _postgres() -> str:
    try:
        return pg.server_version(pg.admin_url())
    except Exception as exc:  # reported, not raised: the PostgreSQL sections say why they did not run
        return f"not reachable ({type(exc).__name__})"


def machine_facts(*, quick: bool) -> dict[str, str]:
    """Cores, CPU, memory, load, interpreter and database versions, code version, when, and the run's size."""
    load = ", ".join(f"{value:.2f}" for value in os.getloadavg()) if hasattr(os, "getloadavg") else "?"
    return {
        "run": f"{datetime.now(UTC):%Y-%m-%d %H:%M} UTC, {'quick (--quick)' if quick else 'full'}",
        "code": _commit(),
        "CPU": f"{os.cpu_count()} cores, {_cpu_model()}",
        "memory": _memory(),
        "load average at start (1, 5, 15 min)": load,
        "OS": f"{platform.system()} {platform.release()}",
        "Python": platform.python_version(),
        "SQLite": sqlite3.sqlite_version,
        "PostgreSQL": _postgres(),
        "LangGraph": metadata.version("langgraph"),
    }
