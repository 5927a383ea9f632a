"""How much each benchmark does: the full run (`make bench`, a few minutes on 2 cores) or `--quick` (seconds)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Sizes:
    """Counts of the in-process benchmarks."""

    warmup_turns: int = 2  # untimed turns per customer first: imports, caches, connections, first contact
    customers: int = 10  # turn latency: these customers take turns one after another...
    turns_per_customer: int = 10  # ...this many rounds
    idle_seconds: float = 10.0  # how long the idle transaction rate is measured...
    pools_settle_seconds: float = 2.0  # ...after the connection pools have opened what they open at start
    ack_requests: int = 400  # webhook ack CPU: sequential requests per system
    burst_customers: int = 200  # ack latency under a burst: every customer's messages posted at once
    burst_messages: int = 3
    token_turns: int = 100  # input size per model call over the first turns of one long conversation
    conversation_turns: int = 500  # checkpoint bytes of that conversation's thread
    bare_conversation_turns: int = 100  # the bare loop's turns slow down as its history grows: it stops here
    quick: bool = False


FULL = Sizes()
QUICK = Sizes(
    warmup_turns=1,
    customers=2,
    turns_per_customer=2,
    idle_seconds=0.5,
    pools_settle_seconds=0.5,
    ack_requests=30,
    burst_customers=20,
    burst_messages=3,
    token_turns=4,
    conversation_turns=8,
    bare_conversation_turns=4,
    quick=True,
)
