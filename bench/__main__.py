"""Run every benchmark and print its figures against the targets; exit 1 when a target is missed."""

from __future__ import annotations

import asyncio
import sys

from bench import agent_turns, webhook_ingest


def main() -> int:
    """Run the benchmarks."""
    lines = [*asyncio.run(agent_turns.run()).lines(), *asyncio.run(webhook_ingest.run()).lines()]
    for line in lines:
        print(line)
    return 1 if any("MISSED" in line or "GROWS" in line for line in lines) else 0


if __name__ == "__main__":
    sys.exit(main())
