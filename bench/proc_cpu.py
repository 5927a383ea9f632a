"""Where the CPU went during a measured stretch: each process's user + system time and the machine's busy share,
read from /proc (Linux). Elsewhere nothing is read and the figures are left out of the report."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

_PROC = Path("/proc")


def _ticks_per_second() -> int:
    return os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def process_cpu_seconds(pid: int) -> float | None:
    """User + system CPU seconds process `pid` has used so far; None when it cannot be read."""
    try:
        stat = (_PROC / str(pid) / "stat").read_text()
    except OSError:
        return None
    # Fields after the command name (which may hold spaces, inside parentheses): utime and stime are 14th and 15th.
    rest = stat.rsplit(")", 1)[1].split()
    return (int(rest[11]) + int(rest[12])) / _ticks_per_second()


def machine_ticks() -> tuple[int, int] | None:
    """(busy, total) CPU ticks of the whole machine so far; None when they cannot be read."""
    try:
        first = (_PROC / "stat").read_text().splitlines()[0].split()
    except (OSError, IndexError):
        return None
    values = [int(v) for v in first[1:9]]  # user nice system idle iowait irq softirq steal
    idle = values[3] + values[4]
    return sum(values) - idle, sum(values)


@dataclass(frozen=True)
class CpuUse:
    """CPU seconds per role over a stretch, and the machine's busy share (0-1 of all its cores)."""

    seconds: dict[str, float]
    machine_busy: float | None

    def per_turn_ms(self, turns: int) -> dict[str, float]:
        """Each role's CPU milliseconds per turn."""
        return {role: 1000 * used / turns for role, used in self.seconds.items()} if turns else {}


class CpuMeter:
    """Started before a stretch, read after it."""

    def __init__(self, pids: Mapping[str, int]) -> None:
        self._pids = dict(pids)
        self._start = {role: process_cpu_seconds(pid) for role, pid in self._pids.items()}
        self._machine = machine_ticks()

    def read(self) -> CpuUse:
        """What was used since the meter started; roles sharing a name prefix are summed ("worker1", "worker2" →
        "worker")."""
        seconds: dict[str, float] = {}
        for role, pid in self._pids.items():
            before, after = self._start.get(role), process_cpu_seconds(pid)
            if before is None or after is None:
                continue
            kind = role.rstrip("0123456789")
            seconds[kind] = seconds.get(kind, 0.0) + after - before
        busy = None
        now = machine_ticks()
        if self._machine is not None and now is not None and now[1] > self._machine[1]:
            busy = (now[0] - self._machine[0]) / (now[1] - self._machine[1])
        return CpuUse(seconds, busy)
