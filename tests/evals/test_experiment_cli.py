"""`asistente eval` with a LangSmith key: the scenarios arrive as a dataset and the replay run as an experiment
(runs per scenario and trial, feedback per check), at the local LangSmith double standing in for the endpoint."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from cli.main import app
from core.settings import get_settings
from tests.langsmith_double import LangSmithDouble, langsmith_environment

NAMES = ["cancel_es", "booking_en"]


@pytest.fixture
def keyed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[LangSmithDouble]:
    """A LangSmith key and endpoint in the environment (tracing of turns off: only the experiment is sent)."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("ASISTENTE_EVAL_EXPERIMENT", raising=False)
    with langsmith_environment(monkeypatch) as double:
        yield double


def test_a_replay_run_is_recorded_as_an_experiment_on_the_scenarios_dataset(
    keyed: LangSmithDouble, tmp_path: Path
) -> None:
    result = CliRunner().invoke(app, ["eval", *NAMES, "--trials", "2", "--report-dir", str(tmp_path / "r")])
    assert result.exit_code == 0, result.output
    [dataset] = [d for d in keyed.datasets.values() if d["name"] == "salon-scenarios"]
    examples = [e for e in keyed.examples.values() if e["dataset_id"] == dataset["id"]]
    assert sorted(e["inputs"]["scenario"] for e in examples) == sorted(NAMES)
    [experiment] = [s for s in keyed.sessions.values() if s.get("reference_dataset_id") == dataset["id"]]
    meta = experiment["extra"]["metadata"]
    assert meta["mode"] == "replay" and meta["prompt_version"].startswith("p_") and meta["trials"] == 2
    assert experiment["name"].startswith(f"replay-{meta['prompt_version']}")
    runs = [r for r in keyed.roots() if r.get("session_name") == experiment["name"]]
    assert len(runs) == 4  # 2 scenarios x 2 trials
    scores = [f for f in keyed.feedback.values() if f["key"] == "passed"]
    assert len(scores) == 4 and {f["score"] for f in scores} == {1}
    assert {f["key"] for f in keyed.feedback.values()} >= {"final_state", "confirmed_first", "grounded"}


def test_without_a_key_or_when_switched_off_no_experiment_is_sent(
    keyed: LangSmithDouble, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ASISTENTE_EVAL_EXPERIMENT", "0")
    result = CliRunner().invoke(app, ["eval", "cancel_es", "--report-dir", str(tmp_path / "r")])
    assert result.exit_code == 0, result.output
    assert keyed.datasets == {} and keyed.sessions == {}


@pytest.mark.parametrize("masked", [True, False])
def test_experiment_runs_are_masked_like_traces(
    keyed: LangSmithDouble, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, masked: bool
) -> None:
    # The reply gives the salon's phone number: in the experiment's runs it is masked, as in production traces
    # (and only LANGSMITH_MASK_PII=false lets it through).
    monkeypatch.setenv("LANGSMITH_MASK_PII", str(masked).lower())
    get_settings.cache_clear()
    result = CliRunner().invoke(app, ["eval", "cancel_inside_window_es", "--report-dir", str(tmp_path / "r")])
    assert result.exit_code == 0, result.output
    [run] = [r for r in keyed.roots() if r.get("name") == "AsyncTarget"]
    replies = " ".join(run["outputs"]["replies"])
    assert ("+34910000000" in replies) is not masked and ("+***000" in replies) is masked


def test_a_placeholder_key_runs_locally(
    keyed: LangSmithDouble, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LANGSMITH_API_KEY", "changeme")  # as copied from .env.example
    get_settings.cache_clear()
    result = CliRunner().invoke(app, ["eval", "cancel_es", "--report-dir", str(tmp_path / "r")])
    assert result.exit_code == 0, result.output
    assert keyed.datasets == {} and keyed.requests == []


def test_an_unreachable_langsmith_fails_in_one_line(
    keyed: LangSmithDouble, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]  # nothing listens there once the socket is closed
    monkeypatch.setenv("LANGSMITH_ENDPOINT", f"http://127.0.0.1:{port}")
    get_settings.cache_clear()
    result = CliRunner().invoke(app, ["eval", "cancel_es", "--report-dir", str(tmp_path / "r")])
    assert result.exit_code == 1
    assert "the LangSmith experiment failed" in result.output and "ASISTENTE_EVAL_EXPERIMENT=0" in result.output
    assert "Traceback" not in result.output and not (tmp_path / "r").exists()
