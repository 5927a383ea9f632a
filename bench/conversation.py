"""One customer writing turn after turn: what each model call carries, and what the thread keeps.

Asistente sends the model its system prompt, every tool's schema and a bounded window of the conversation, and its
checkpointer keeps the latest checkpoint of a compacted thread; the bare loop sends the whole history and keeps every
checkpoint, so both its input and its thread grow with the conversation. Its turns slow down with the history too, so
it stops at `Sizes.bare_conversation_turns` and its thread at the end of Asistente's run is projected from the
growth it showed (quadratic: every turn stores another checkpoint of the whole history).
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass, field

import psycopg

from bench.doubles import MODEL_NAME, Doubles
from bench.report import Row, ratio
from bench.sizes import Sizes
from bench.targets import ASISTENTE, BARE, BARE_MODEL_NAME, Target

TEXT = "¿Tenéis hueco para un corte mañana? ({n})"
CUSTOMER = 9_000  # a customer of its own
# Tokens are estimated from what the model double receives (no tokenizer data offline): JSON characters / 4.
CHARS_PER_TOKEN = 4


@dataclass
class ConversationFigures:
    """Per system: mean JSON characters per model call and calls per turn over the first turns, and the thread's
    stored bytes after so many turns."""

    chars_per_call: dict[str, float] = field(default_factory=dict)
    calls_per_turn: dict[str, float] = field(default_factory=dict)
    thread_bytes: dict[str, dict[int, int]] = field(default_factory=dict)


async def run_conversation(
    targets: tuple[Target, ...], doubles: Doubles, sizes: Sizes, figures: ConversationFigures
) -> None:
    """Turns for one customer, the systems alternating; sizes read along the way."""
    await doubles.control(reset=True)
    last = {ASISTENTE: sizes.conversation_turns, BARE: min(sizes.bare_conversation_turns, sizes.conversation_turns)}
    read_at = {sizes.token_turns, sizes.conversation_turns, last[BARE], max(last[BARE] // 2, 1)}
    figures.thread_bytes = {t.name: {} for t in targets}
    models = {ASISTENTE: MODEL_NAME, BARE: BARE_MODEL_NAME}
    for turn in range(1, sizes.conversation_turns + 1):
        active = [t for t in (targets if turn % 2 else targets[::-1]) if turn <= last[t.name]]
        for target in active:
            await target.turn(CUSTOMER, TEXT.format(n=turn))
        if turn == sizes.token_turns:
            prompts, _ = await doubles.stats()
            for target in targets:
                seen = [size for model, size in prompts if model == models[target.name]]
                figures.chars_per_call[target.name] = sum(seen) / max(len(seen), 1)
                figures.calls_per_turn[target.name] = len(seen) / turn
        if turn in read_at:
            for target in active:
                number = target.customer(CUSTOMER).removeprefix("whatsapp:")
                figures.thread_bytes[target.name][turn] = thread_bytes(target.db_url, number)


def thread_bytes(db_url: str, number: str) -> int:
    """Bytes LangGraph's checkpointer stores for the thread of the customer with this number (every checkpoint,
    its blobs and pending writes)."""
    pattern = f"%{number}"
    if db_url.startswith("sqlite:///"):
        with sqlite3.connect(db_url.removeprefix("sqlite:///")) as conn:
            row = conn.execute(
                "SELECT (SELECT COALESCE(SUM(LENGTH(checkpoint) + LENGTH(metadata)), 0) FROM checkpoints "
                "WHERE thread_id LIKE ?) + (SELECT COALESCE(SUM(LENGTH(value)), 0) FROM writes WHERE thread_id LIKE ?)",
                (pattern, pattern),
            ).fetchone()
        return int(row[0]) if row else 0
    with psycopg.connect(db_url, autocommit=True) as pg_conn:
        found = pg_conn.execute(
            "SELECT (SELECT COALESCE(SUM(pg_column_size(checkpoint) + pg_column_size(metadata)), 0) FROM checkpoints "
            "WHERE thread_id LIKE %(p)s) + (SELECT COALESCE(SUM(LENGTH(blob)), 0) FROM checkpoint_blobs "
            "WHERE thread_id LIKE %(p)s) + (SELECT COALESCE(SUM(LENGTH(blob)), 0) FROM checkpoint_writes "
            "WHERE thread_id LIKE %(p)s)",
            {"p": pattern},
        ).fetchone()
    return int(found[0]) if found else 0


def projected(measured: dict[int, int], turns: int) -> float:
    """Bytes after `turns`, from the last two measurements, on a curve a·n² + b·n (through the origin)."""
    (n1, b1), (n2, b2) = sorted(measured.items())[-2:]
    a = (b2 / n2 - b1 / n1) / (n2 - n1)
    return a * turns**2 + (b1 / n1 - a * n1) * turns


def conversation_rows(figures: ConversationFigures, sizes: Sizes) -> list[Row]:
    """Input size per model call, and the thread's bytes at the points both systems reached, then at the end."""
    if not figures.thread_bytes:
        return []
    mine, bare = (figures.chars_per_call[n] / CHARS_PER_TOKEN for n in (ASISTENTE, BARE))
    calls = f"{figures.calls_per_turn[ASISTENTE]:.1f} / {figures.calls_per_turn[BARE]:.1f} calls per turn"
    rows = [
        Row(
            f"input tokens per model call, first {sizes.token_turns} turns of one conversation",
            f"{mine:,.0f}",
            f"{bare:,.0f}",
            ratio(mine, bare),
            "—",
            None,
            f"≈ JSON chars / {CHARS_PER_TOKEN}; {calls}",
        )
    ]
    mine_bytes, bare_bytes = figures.thread_bytes[ASISTENTE], figures.thread_bytes[BARE]
    for turns in sorted(mine_bytes):
        a = mine_bytes[turns]
        if turns in bare_bytes:
            b, shown, note = float(bare_bytes[turns]), f"{bare_bytes[turns]:,}", ""
        elif len(bare_bytes) >= 2 and turns == sizes.conversation_turns:
            b = projected(bare_bytes, turns)
            shown, note = f"≈ {b:,.0f}", f"bare projected from {', '.join(map(str, sorted(bare_bytes)))} turns"
        else:
            continue
        measure = f"checkpoint bytes per thread after {turns} turns"
        rows.append(Row(measure, f"{a:,}", shown, ratio(a, b), "—", None, note))
    return rows
