"""Checkpoint pruning off the per-turn path (issue 11): a thread's history stays bounded whether its own turns prune
it (every `prune_every` turns) or the worker's maintenance pass does (`prune_checkpoints`)."""

from __future__ import annotations

import dataclasses
import logging

import pytest
from langgraph.checkpoint.sqlite.aio import AsyncSqliteSaver

from agent import assistant as assistant_module
from agent.assistant import Assistant
from agent.checkpointer import PrunesCheckpoints, prune_threads
from tests.agent.conftest import CUSTOMER, OTHER, Harness
from tests.scripted_model import says


async def checkpoints(h: Harness, thread_id: str = CUSTOMER) -> int:
    """How many checkpoints the thread has stored."""
    value = await h.db.fetch_value("SELECT COUNT(*) AS n FROM checkpoints WHERE thread_id = :t", {"t": thread_id})
    return int(value)


def pruning_every(h: Harness, turns: int) -> Harness:
    """The harness with an assistant that prunes a thread on every `turns`-th turn of it."""
    return dataclasses.replace(h, assistant=Assistant(h.graph, h.assistant.services, prune_every=turns))


async def test_a_thread_prunes_itself_every_n_turns_and_never_keeps_more(harness: Harness) -> None:
    h = pruning_every(harness, 3)
    stored = []
    for turn in range(7):
        h.model.extend(says(f"Respuesta {turn}."))
        await h.say(f"Mensaje {turn}")
        stored.append(await checkpoints(h))
    # One checkpoint per turn until the third turn since the last prune leaves only its own.
    assert stored == [1, 2, 1, 2, 3, 1, 2]
    h.model.assert_complete()


async def test_the_maintenance_pass_prunes_every_thread_with_new_turns(harness: Harness) -> None:
    h = pruning_every(harness, 20)
    assert isinstance(h.assistant, PrunesCheckpoints)  # what the worker's maintenance pass takes
    for turn in range(3):
        for wa_id in (CUSTOMER, OTHER):
            h.model.extend(says(f"Respuesta {turn}."))
            await h.say(f"Mensaje {turn}", wa_id=wa_id)
    assert (await checkpoints(h, CUSTOMER), await checkpoints(h, OTHER)) == (3, 3)  # no turn pruned

    assert await h.assistant.prune_checkpoints() == 2
    assert (await checkpoints(h, CUSTOMER), await checkpoints(h, OTHER)) == (1, 1)
    assert await h.assistant.prune_checkpoints() == 0  # nothing new since

    # The thread still holds the whole conversation: the latest checkpoint is the one kept.
    state = await h.state()
    assert [m.content for m in state["messages"]][-2:] == ["Mensaje 2", "Respuesta 2."]
    h.model.extend(says("Respuesta 3."))
    await h.say("Mensaje 3")
    assert await checkpoints(h) == 2
    assert await h.assistant.prune_checkpoints() == 1
    h.model.assert_complete()


async def test_a_failed_prune_does_not_fail_the_turn_and_is_tried_again(
    harness: Harness, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    h = harness  # prunes after every turn (the default)

    async def refuse(*_: object) -> None:
        raise RuntimeError("could not serialize access due to concurrent update")

    monkeypatch.setattr(assistant_module, "prune_threads", refuse)
    h.model.extend(says("Hola."), says("¿Qué tal?"))
    with caplog.at_level(logging.ERROR, logger="agent.assistant"):
        result = await h.say("Hola")
    assert result.replies == ("Hola.",)  # answered all the same
    assert "could not prune" in caplog.text

    monkeypatch.setattr(assistant_module, "prune_threads", prune_threads)
    await h.say("¿Sigues ahí?")
    assert await checkpoints(h) == 1  # the next turn's prune covered both
    assert await h.assistant.prune_checkpoints() == 0


async def test_sqlite_prune_keeps_what_a_run_is_saving_meanwhile(harness: Harness) -> None:
    """Pending writes of a checkpoint newer than the latest stored one belong to a run still saving (LangGraph may
    store them first): pruning from the maintenance pass, outside the conversation's lease, must leave them."""
    saver = harness.graph.checkpointer
    if not isinstance(saver, AsyncSqliteSaver):
        pytest.skip("the PostgreSQL prune is LangGraph's own (AsyncPostgresSaver.aprune)")
    thread = "whatsapp:+34600000042"
    for checkpoint_id in ("1ef0-a", "1ef0-b"):
        await saver.conn.execute(
            "INSERT INTO checkpoints (thread_id, checkpoint_ns, checkpoint_id) VALUES (?, '', ?)",
            (thread, checkpoint_id),
        )
    for checkpoint_id in ("1ef0-a", "1ef0-b", "1ef0-c"):  # "c": a run is saving it right now
        await saver.conn.execute(
            "INSERT INTO writes (thread_id, checkpoint_ns, checkpoint_id, task_id, idx, channel) "
            "VALUES (?, '', ?, 'task', 0, 'messages')",
            (thread, checkpoint_id),
        )
    await saver.conn.commit()

    await prune_threads(saver, [thread])

    kept = await saver.conn.execute_fetchall("SELECT checkpoint_id FROM checkpoints WHERE thread_id = ?", (thread,))
    writes = await saver.conn.execute_fetchall(
        "SELECT checkpoint_id FROM writes WHERE thread_id = ? ORDER BY checkpoint_id", (thread,)
    )
    assert [r[0] for r in kept] == ["1ef0-b"]
    assert [r[0] for r in writes] == ["1ef0-b", "1ef0-c"]
