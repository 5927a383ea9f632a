"""Scenarios synced to a LangSmith dataset and an evaluation run recorded as an experiment, checked on what a real
`langsmith.Client` sent to the local LangSmith double: the dataset and its examples, the experiment referencing
it, one run per example and repetition, and one feedback score per check."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import langsmith
import pytest
import yaml

from evals.experiment_dataset import DATASET_DESCRIPTION, scenario_example, sync_dataset
from evals.experiments import case_feedback, case_outputs, run_experiment
from evals.results import CaseResult, Check, Line, Usage
from evals.scenario import Scenario, load_scenarios
from tests.langsmith_double import Json, LangSmithDouble, langsmith_double_fixture

DATASET = "salon-scenarios"
WRITES = ("POST", "PATCH", "DELETE", "PUT")


def scenario_yaml(goal: str, *, script: list[Any] | None = None, intent: str = "book") -> dict[str, Any]:
    data: dict[str, Any] = {
        "description": f"the customer wants: {goal}",
        "now": "2025-03-10T09:00:00+01:00",
        "tags": {"intent": intent, "language": "es", "difficulty": "easy", "extra": ["smoke"]},
        "customer": {"wa_id": "whatsapp:+34600111222", "persona": "a regular, writes briefly", "goal": goal},
        "expect": {"handoff": intent == "handoff"},
    }
    if script is not None:
        data["script"] = script
    return data


def write_scenarios(directory: Path, scenarios: dict[str, dict[str, Any]]) -> list[Scenario]:
    directory.mkdir(exist_ok=True)
    for name, data in scenarios.items():
        (directory / f"{name}.yaml").write_text(yaml.safe_dump(data), encoding="utf-8")
    return load_scenarios(list(scenarios), directory)


@pytest.fixture
def double() -> Iterator[LangSmithDouble]:
    yield from langsmith_double_fixture()


@pytest.fixture
def client(double: LangSmithDouble) -> Iterator[langsmith.Client]:
    made = double.settle(langsmith.Client(api_url=double.url, api_key="test"))
    yield made
    made.close(timeout=5)


@pytest.fixture
def scenarios(tmp_path: Path) -> list[Scenario]:
    return write_scenarios(
        tmp_path / "scenarios",
        {
            "book_haircut": scenario_yaml(
                "a haircut on Friday", script=[{"customer": "hola"}, {"customer": ["corte", "el viernes"]}]
            ),
            "talk_to_owner": scenario_yaml("to speak with the owner", intent="handoff"),
        },
    )


def writes(double: LangSmithDouble, since: int = 0) -> list[str]:
    """'METHOD /path' of every write request after the first `since` requests (reads and /info excluded)."""
    return [f"{r.method} {r.path}" for r in double.requests[since:] if r.method in WRITES]


def test_scenario_example_carries_inputs_reference_and_tags(scenarios: list[Scenario]) -> None:
    booking, handoff = scenarios

    example = scenario_example(booking)

    assert example["inputs"] == {
        "scenario": "book_haircut",
        "persona": "a regular, writes briefly",
        "goal": "a haircut on Friday",
        "script": ["hola", "corte\nel viernes"],
        "now": "2025-03-10T09:00:00+01:00",
    }
    assert example["outputs"] == {"expect": booking.expect.model_dump(mode="json")}
    assert example["metadata"] == {
        "tags": ["intent:book", "language:es", "difficulty:easy", "smoke"],
        "scenario": "book_haircut",
    }
    assert scenario_example(handoff)["inputs"]["script"] is None  # a simulated customer
    assert scenario_example(handoff)["outputs"]["expect"]["handoff"] is True


def test_a_second_sync_of_the_same_scenarios_writes_nothing(
    double: LangSmithDouble, client: langsmith.Client, scenarios: list[Scenario]
) -> None:
    dataset_id = sync_dataset(client, scenarios, DATASET)
    after_first = len(double.requests)
    again = sync_dataset(client, scenarios, DATASET)

    assert again == dataset_id
    assert writes(double, after_first) == []
    [dataset] = double.datasets.values()
    assert (dataset["id"], dataset["name"], dataset["description"]) == (dataset_id, DATASET, DATASET_DESCRIPTION)
    examples = sorted(double.examples.values(), key=lambda e: e["inputs"]["scenario"])
    assert [e["dataset_id"] for e in examples] == [dataset_id, dataset_id]
    assert [(e["metadata"]["scenario"], e["metadata"]["tags"]) for e in examples] == [
        ("book_haircut", ["intent:book", "language:es", "difficulty:easy", "smoke"]),
        ("talk_to_owner", ["intent:handoff", "language:es", "difficulty:easy", "smoke"]),
    ]
    assert [e["outputs"] for e in examples] == [{"expect": s.expect.model_dump(mode="json")} for s in scenarios]
    assert double.unhandled == [] and double.errors == []


@pytest.mark.parametrize("multipart", [True, False], ids=["multipart", "bulk"])
def test_sync_updates_a_changed_scenario_and_prunes_only_when_asked(
    multipart: bool, scenarios: list[Scenario], tmp_path: Path
) -> None:
    with LangSmithDouble(examples_multipart=multipart) as double:
        client = double.client()
        dataset_id = sync_dataset(client, scenarios, DATASET)
        ids = {e["inputs"]["scenario"]: e["id"] for e in double.examples.values()}
        [changed] = write_scenarios(tmp_path / "edited", {"book_haircut": scenario_yaml("a haircut on Saturday")})

        before = len(double.requests)
        sync_dataset(client, [changed], DATASET)  # a subset, without prune: the other scenario stays

        update = f"PATCH /v1/platform/datasets/{dataset_id}/examples" if multipart else "PATCH /examples/bulk"
        assert writes(double, before) == [update]
        examples = double.examples
        assert sorted(examples) == sorted(ids.values())  # updated in place, nothing created or deleted
        assert examples[ids["book_haircut"]]["inputs"]["goal"] == "a haircut on Saturday"
        assert examples[ids["book_haircut"]]["inputs"]["script"] is None
        assert examples[ids["book_haircut"]]["metadata"]["dataset_split"] == ["base"]
        assert examples[ids["talk_to_owner"]]["inputs"]["goal"] == "to speak with the owner"

        sync_dataset(client, [changed], DATASET, prune=True)

        assert list(double.examples) == [ids["book_haircut"]]
        assert writes(double)[-1] == "DELETE /examples"
        assert double.unhandled == [] and double.errors == []


def case(scenario: Scenario, trial: int, *, passed: bool) -> CaseResult:
    checks = [
        Check(name="appointments", passed=passed, reason="booked" if passed else "no appointment", decisive=True),
        Check(name="language", passed=True, reason="replies in es"),
    ]
    return CaseResult(
        scenario=scenario.name,
        trial=trial,
        tags=scenario.tags.labels(),
        passed=passed,
        reason="all decisive checks passed" if passed else "appointments: no appointment",
        checks=checks,
        usage=Usage(model_calls=2, input_tokens=100 * trial, output_tokens=20),
        latency_ms=12.5,
        turns=1,
        transcript=[Line(who="customer", text="hola"), Line(who="assistant", text=f"buenas ({trial})")],
    )


def feedback_by_run(double: LangSmithDouble) -> dict[str, dict[str, Any]]:
    found: dict[str, dict[str, Any]] = {}
    for item in double.feedback.values():
        found.setdefault(item["run_id"], {})[item["key"]] = (item["score"], item["comment"])
    return found


async def test_an_evaluation_run_is_recorded_as_an_experiment(
    double: LangSmithDouble, client: langsmith.Client, scenarios: list[Scenario]
) -> None:
    calls: list[tuple[str, int]] = []

    async def run_case(scenario: Scenario, trial: int) -> CaseResult:
        calls.append((scenario.name, trial))
        return case(scenario, trial, passed=scenario.name == "book_haircut")

    metadata = {"prompt_version": "pv-1234", "agent_model": "scripted", "mode": "replay", "trials": 2}
    results = await run_experiment(
        client,
        scenarios,
        run_case,
        dataset_name=DATASET,
        repetitions=2,
        max_concurrency=2,
        experiment_prefix="replay-pv-1234",
        metadata=metadata,
    )

    # Every trial ran once and comes back in scenario order, then trial order.
    assert sorted(calls) == [("book_haircut", 1), ("book_haircut", 2), ("talk_to_owner", 1), ("talk_to_owner", 2)]
    assert [(r.scenario, r.trial, r.passed) for r in results] == [
        ("book_haircut", 1, True), ("book_haircut", 2, True), ("talk_to_owner", 1, False), ("talk_to_owner", 2, False),
    ]  # fmt: skip
    assert metadata == {"prompt_version": "pv-1234", "agent_model": "scripted", "mode": "replay", "trials": 2}

    # Checked right after the call returns, without waiting: run_experiment flushed everything it sent.
    [dataset] = double.datasets.values()
    example_of = {e["inputs"]["scenario"]: e["id"] for e in double.examples.values()}
    assert sorted(example_of) == ["book_haircut", "talk_to_owner"]
    [experiment] = [s for s in double.sessions.values() if s["reference_dataset_id"] == dataset["id"]]
    assert experiment["name"].startswith("replay-pv-1234")
    assert experiment["extra"]["metadata"]["prompt_version"] == "pv-1234"
    assert experiment["extra"]["metadata"]["mode"] == "replay"
    assert experiment["extra"]["metadata"]["num_repetitions"] == 2

    runs: list[Json] = [r for r in double.roots() if r.get("session_name") == experiment["name"]]
    assert len(runs) == 4 and all(r["end_time"] for r in runs)
    assert sorted(r["reference_example_id"] for r in runs) == sorted([*example_of.values()] * 2)
    by_example = {name: [r for r in runs if r["reference_example_id"] == eid] for name, eid in example_of.items()}
    assert sorted(r["outputs"]["trial"] for r in by_example["book_haircut"]) == [1, 2]
    booked = next(r for r in by_example["book_haircut"] if r["outputs"]["trial"] == 2)
    assert booked["inputs"]["scenario"] == "book_haircut"
    assert booked["outputs"] == case_outputs(case(scenarios[0], 2, passed=True))
    assert booked["outputs"]["replies"] == ["buenas (2)"]
    assert booked["outputs"]["usage"] == {"model_calls": 2, "input_tokens": 200, "output_tokens": 20}

    scores = feedback_by_run(double)
    assert sorted(scores) == sorted(r["id"] for r in runs)
    for run in by_example["book_haircut"]:
        assert scores[run["id"]] == {
            "passed": (1, "all decisive checks passed"),
            "appointments": (1, "booked"),
            "language": (1, "replies in es"),
        }
    for run in by_example["talk_to_owner"]:
        assert scores[run["id"]] == {
            "passed": (0, "appointments: no appointment"),
            "appointments": (0, "no appointment"),
            "language": (1, "replies in es"),
        }
    assert {f["session_id"] for f in double.feedback.values()} == {experiment["id"]}
    assert double.unhandled == [] and double.errors == []


def test_the_passed_score_follows_the_case_and_can_fail(scenarios: list[Scenario]) -> None:
    failing = case_feedback(case_outputs(case(scenarios[1], 1, passed=False)))
    passing = case_feedback(case_outputs(case(scenarios[0], 1, passed=True)))

    assert [(f["key"], f["score"]) for f in failing] == [("passed", 0), ("appointments", 0), ("language", 1)]
    assert [(f["key"], f["score"]) for f in passing] == [("passed", 1), ("appointments", 1), ("language", 1)]
    assert failing != passing  # the assertions above tell a failing case from a passing one
    assert case_feedback(None) == [{"key": "passed", "score": 0, "comment": "the case produced no outputs"}]


async def test_a_case_that_raises_is_recorded_as_failed(
    double: LangSmithDouble, client: langsmith.Client, scenarios: list[Scenario]
) -> None:
    async def run_case(scenario: Scenario, trial: int) -> CaseResult:
        if scenario.name == "talk_to_owner":
            raise RuntimeError("model unavailable")
        return case(scenario, trial, passed=True)

    results = await run_experiment(
        client,
        scenarios,
        run_case,
        dataset_name=DATASET,
        repetitions=1,
        max_concurrency=0,
        experiment_prefix="replay",
        metadata={"prompt_version": "pv-1"},
    )

    assert [(r.scenario, r.passed, r.error) for r in results] == [
        ("book_haircut", True, None),
        ("talk_to_owner", False, "RuntimeError: model unavailable"),
    ]
    failed = next(r for r in double.roots() if (r.get("outputs") or {}).get("error"))
    assert feedback_by_run(double)[failed["id"]] == {
        "passed": (0, "completed: RuntimeError: model unavailable"),
        "completed": (0, "RuntimeError: model unavailable"),
    }
