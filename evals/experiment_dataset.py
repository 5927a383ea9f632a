"""Scenarios as a LangSmith dataset: one example per scenario, kept in step with the YAML files, so experiments on
different prompt versions run over the same examples and LangSmith can compare them side by side.

An example is matched to its scenario by name (`metadata.scenario`, else `inputs.scenario`), never by id, so a
dataset edited by hand in LangSmith still syncs.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import langsmith
from langsmith import schemas as ls_schemas
from langsmith import utils as ls_utils

from evals.scenario import Scenario, ScriptTurn

DATASET_DESCRIPTION = (
    "Salon assistant evaluation scenarios (evals/scenarios/*.yaml), one example per scenario: the customer's persona, "
    "goal and script as inputs, the expected end state as reference outputs. Synced by `asistente eval`; edit the "
    "YAML, not these examples."
)
# LangSmith keeps an example's splits in its metadata; they are not ours to compare.
_SERVER_METADATA = ("dataset_split",)


def _turn_text(turn: ScriptTurn) -> str:
    return "\n".join(m.text if m.text else f"[button] {m.button}" for m in turn.messages)


def scenario_example(scenario: Scenario) -> dict[str, Any]:
    """The dataset example for `scenario`: `inputs`, reference `outputs` and `metadata`, all plain JSON.

    inputs: `scenario` (its name), `persona`, `goal`, `script` (one text per customer turn, or None for a simulated
    customer) and `now` (ISO 8601); outputs: `expect`, the scenario's expectations; metadata: `tags` (the labels
    reports group by) and `scenario`.
    """
    return {
        "inputs": {
            "scenario": scenario.name,
            "persona": scenario.customer.persona,
            "goal": scenario.customer.goal,
            "script": None if scenario.script is None else [_turn_text(t) for t in scenario.script],
            "now": scenario.now.isoformat(),
        },
        "outputs": {"expect": scenario.expect.model_dump(mode="json")},
        "metadata": {"tags": scenario.tags.labels(), "scenario": scenario.name},
    }


def example_scenario(example: ls_schemas.Example) -> str | None:
    """The name of the scenario an example stands for (None for an example that is not one of ours)."""
    name = (example.metadata or {}).get("scenario") or (example.inputs or {}).get("scenario")
    return name if isinstance(name, str) else None


def _ensure_dataset(client: langsmith.Client, name: str) -> ls_schemas.Dataset:
    dataset: ls_schemas.Dataset
    try:
        dataset = client.read_dataset(dataset_name=name)
    except ls_utils.LangSmithNotFoundError:
        try:
            dataset = client.create_dataset(name, description=DATASET_DESCRIPTION)
        except ls_utils.LangSmithConflictError:  # another run created it meanwhile
            dataset = client.read_dataset(dataset_name=name)
    return dataset


def _differs(example: ls_schemas.Example, wanted: dict[str, Any]) -> bool:
    metadata = {k: v for k, v in (example.metadata or {}).items() if k not in _SERVER_METADATA}
    return (example.inputs, example.outputs, metadata) != (wanted["inputs"], wanted["outputs"], wanted["metadata"])


def sync_examples(
    client: langsmith.Client, scenarios: Sequence[Scenario], name: str, *, prune: bool = False
) -> tuple[str, dict[str, ls_schemas.Example]]:
    """`sync_dataset`, also returning each scenario's example (as LangSmith holds it after the sync) by name."""
    dataset = _ensure_dataset(client, name)
    held: dict[str, ls_schemas.Example] = {}
    extra: list[ls_schemas.Example] = []
    for example in client.list_examples(dataset_id=dataset.id):
        scenario = example_scenario(example)
        if scenario is None or scenario in held:
            extra.append(example)  # a duplicate or a stranger; only pruning removes it
        else:
            held[scenario] = example
    wanted = {s.name: scenario_example(s) for s in scenarios}
    new = [w for n, w in wanted.items() if n not in held]
    changed = [{"id": held[n].id, **w} for n, w in wanted.items() if n in held and _differs(held[n], w)]
    if new:
        # ExampleCreate calls the reference outputs `reference_outputs` (`outputs` is deprecated there).
        creates = [{"inputs": w["inputs"], "reference_outputs": w["outputs"], "metadata": w["metadata"]} for w in new]
        client.create_examples(dataset_id=dataset.id, examples=creates)
    if changed:
        client.update_examples(dataset_id=dataset.id, updates=changed)
    if prune:
        gone = [e.id for n, e in held.items() if n not in wanted] + [e.id for e in extra]
        if gone:
            client.delete_examples(gone)
    if new or changed:  # read back what LangSmith now holds (new ids, new versions) for what was written
        updated = {str(c["id"]) for c in changed}
        created = {n for n in wanted if n not in held}
        refreshed: dict[str, ls_schemas.Example] = {}
        for example in client.list_examples(dataset_id=dataset.id):
            scenario = example_scenario(example)
            if scenario is not None and (
                str(example.id) in updated or (scenario in created and scenario not in refreshed)
            ):
                refreshed[scenario] = example
        held.update(refreshed)
    return str(dataset.id), {n: held[n] for n in wanted}


def sync_dataset(client: langsmith.Client, scenarios: Sequence[Scenario], name: str, *, prune: bool = False) -> str:
    """Make dataset `name` hold one up-to-date example per scenario; return the dataset's id.

    Creates the dataset when missing (described as these scenarios), creates examples for new scenarios and
    updates those whose inputs, reference outputs or metadata changed: a second sync of the same scenarios writes
    nothing. With `prune` (when syncing the full set of scenarios) examples of scenarios not in `scenarios`, and
    duplicates, are deleted; without it they stay, so syncing a subset never loses the rest.
    """
    return sync_examples(client, scenarios, name, prune=prune)[0]
