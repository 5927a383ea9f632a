"""Run every benchmark and print its figures against the targets; exit 1 when a target is missed."""

from __future__ import annotations

import asyncio
import sys

from bench import agent_turns


def main() -> int:
    """Run the benchmarks."""
    result = asyncio.run(agent_turns.run())
    for line in result.lines():
        print(line)
    missed = any("MISSED" in line or "GROWS" in line for line in result.lines())
    return 1 if missed else 0


if __name__ == "__main__":
    sys.exit(main())
