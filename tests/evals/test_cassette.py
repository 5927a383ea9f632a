"""The replay transport and the cassette files: answers played in order and to the end, a changed model, prompt or
tool schema refused as stale, missing or broken files failing their case only, no credentials on disk, vcrpy's
format kept, and authored answers turned into a cassette that replays to the same end state."""

from __future__ import annotations

import functools
import gzip
import json
from pathlib import Path
from typing import Any

import httpx
import pytest
import vcr
import yaml
from typer.testing import CliRunner

import agent.nodes
import evals.agent_model
import evals.authoring
import evals.scenario
from cli.main import app
from core.settings import Settings
from evals.agent_model import open_agent_model
from evals.authoring import AUTHORED_SOURCE, load_authored
from evals.cassette import (
    CHAT_PATH,
    Cassette,
    CassetteError,
    Fingerprint,
    RecordingTransport,
    ReplayTransport,
)
from evals.record import ScenarioRun
from evals.runner import RunOptions, run_case, run_cases, runnable
from evals.scenario import CASSETTES_DIR, Scenario, load_scenario, load_scenarios, scenario_names
from evals.session import ScriptedCustomer, run_scenario
from tests.evals.helpers import failed, replay, scenario
from tools.registry import ALL_TOOLS

CHAT_URL = "https://api.openai.com/v1/chat/completions"
SECRET = "sk-proj-do-not-store-0123456789"


def shipped_cassettes() -> list[Path]:
    """Every cassette in evals/cassettes."""
    return sorted(CASSETTES_DIR.glob("*.yaml"))


# --- playback --------------------------------------------------------------------------------------------------


async def test_a_script_cut_short_leaves_answers_unplayed_and_fails_completed(tmp_path: Path) -> None:
    demo = scenario("demo_booking_es")
    result = await replay(scenario("demo_booking_es", script=(demo.script or [])[:2]), tmp_path)
    assert not result.passed
    assert failed(result)["completed"] == (
        "cassette demo_booking_es: 3 of 4 recorded answers played (the conversation took another path)"
    )


async def test_unplayed_answers_alone_fail_the_case(tmp_path: Path) -> None:
    # Without the customer's last "thanks" the end state is still right: only `completed` can tell.
    moved = scenario("calendly_moved_mid_conversation_es")
    result = await replay(scenario(moved.name, script=(moved.script or [])[:1]), tmp_path)
    assert not result.passed
    assert result.reason == (
        "completed: cassette calendly_moved_mid_conversation_es: 3 of 4 recorded answers played "
        "(the conversation took another path)"
    )
    assert [name for name, _ in failed(result).items()] == ["completed"]


@pytest.fixture
def no_network(monkeypatch: pytest.MonkeyPatch) -> list[httpx.Request]:
    """Any request reaching httpx's real transport is kept here (and refused)."""
    reached: list[httpx.Request] = []

    async def refuse(self: httpx.AsyncHTTPTransport, request: httpx.Request) -> httpx.Response:
        reached.append(request)
        raise httpx.ConnectError("the network was touched", request=request)

    monkeypatch.setattr(httpx.AsyncHTTPTransport, "handle_async_request", refuse)
    return reached


async def test_a_longer_script_exhausts_the_cassette_without_touching_the_network(
    tmp_path: Path, no_network: list[httpx.Request]
) -> None:
    demo = scenario("demo_booking_es")
    script = demo.script or []
    result = await replay(scenario(demo.name, script=[*script, script[0]]), tmp_path)
    assert not result.passed
    assert failed(result) == {
        "completed": "cassette demo_booking_es: all 4 recorded answers played and the agent asked for more"
    }
    assert result.error is not None
    assert "cassette demo_booking_es: all 4 answers played; the agent asked for more" in result.error
    assert no_network == []


@pytest.fixture
def another_model(monkeypatch: pytest.MonkeyPatch) -> None:
    """Replay settings naming another model, as a change of the default model would."""
    settings = Settings.model_construct().model_copy(update={"openai_max_retries": 0, "openai_model": "gpt-4.1-mini"})
    monkeypatch.setattr(evals.agent_model, "replay_settings", lambda: settings)


@pytest.mark.usefixtures("another_model")
async def test_another_model_is_a_stale_cassette_naming_the_change(tmp_path: Path) -> None:
    result = await replay(scenario("demo_booking_es"), tmp_path)
    assert result.reason == "completed: stale cassette: re-record demo_booking_es (model gpt-5-mini -> gpt-4.1-mini)"
    assert result.usage.model_calls == 0  # refused at the first request: nothing was played


@pytest.fixture
def changed_tool_description(monkeypatch: pytest.MonkeyPatch) -> None:
    """The graph binds a tool whose description was edited (what the model reads of it changed)."""
    edited = tuple(
        tool.model_copy(update={"description": tool.description + " Edited."})
        if tool.name == "check_availability"
        else tool
        for tool in ALL_TOOLS
    )
    monkeypatch.setattr(agent.nodes, "ALL_TOOLS", edited)


@pytest.mark.usefixtures("changed_tool_description")
async def test_a_tool_schema_change_is_a_stale_cassette(tmp_path: Path) -> None:
    result = await replay(scenario("booking_en"), tmp_path)
    assert result.reason == "completed: stale cassette: re-record booking_en (the tool schemas changed)"
    assert result.usage.model_calls == 0


def test_fingerprint_differences_name_every_change() -> None:
    recorded = Fingerprint("gpt-5-mini", "sha256:aaaa", "sha256:bbbb")
    assert recorded.differences(recorded) == []
    assert recorded.differences(Fingerprint("gpt-5", "sha256:cccc", "sha256:dddd")) == [
        "model gpt-5-mini -> gpt-5",
        "the system prompt changed",
        "the tool schemas changed",
    ]
    body = {"model": "m", "messages": [{"role": "system", "content": "p"}, {"role": "user", "content": "u"}]}
    other_turn = {**body, "messages": [body["messages"][0], {"role": "user", "content": "another message"}]}
    assert Fingerprint.of_request(body) == Fingerprint.of_request(other_turn)  # only the static prefix counts
    with_tools = {**body, "tools": [{"type": "function", "function": {"name": "t"}}]}
    assert Fingerprint.of_request(body).differences(Fingerprint.of_request(with_tools)) == ["the tool schemas changed"]


async def test_the_replay_transport_counts_what_it_played_and_answers_only_chat_completions() -> None:
    cassette = Cassette.load(CASSETTES_DIR / "cancel_es.yaml")
    transport = ReplayTransport(cassette)
    assert (transport.played, transport.recorded, transport.fully_played) == (0, 3, False)
    async with httpx.AsyncClient(transport=transport) as client:
        embeddings = await client.post("https://api.openai.com/v1/embeddings", json={"model": "gpt-5-mini"})
        unfingerprinted = await client.post(CHAT_URL, json={"model": "gpt-5-mini", "messages": []})
    assert embeddings.status_code == 400
    assert "only /chat/completions is recorded, not /v1/embeddings" in embeddings.json()["error"]["message"]
    assert unfingerprinted.status_code == 400 and transport.stale is not None
    assert transport.stale.startswith("stale cassette: re-record cancel_es (the system prompt changed")
    assert transport.played == 0


# --- missing and broken files ----------------------------------------------------------------------------------


async def test_a_missing_cassette_fails_its_case_not_the_suite(tmp_path: Path) -> None:
    unrecorded = Scenario.model_validate({**scenario("cancel_es").model_dump(), "name": "cancel_es_unrecorded"})
    results = await run_cases([unrecorded, scenario("cancel_es")], RunOptions(mode="replay", workdir=tmp_path))
    assert [(r.scenario, r.passed) for r in results] == [("cancel_es_unrecorded", False), ("cancel_es", True)]
    missing = CASSETTES_DIR / "cancel_es_unrecorded.yaml"
    assert results[0].reason == (
        f"completed: no cassette at {missing}; record it with `asistente eval --live --record cancel_es_unrecorded`"
    )
    assert not missing.exists()


@pytest.fixture
def cassettes_dir(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """Scenarios read (and write) their cassettes in a directory of the test's own."""
    directory = tmp_path / "cassettes"
    directory.mkdir()
    monkeypatch.setattr(evals.scenario, "CASSETTES_DIR", directory)
    return directory


async def test_a_file_that_is_not_a_cassette_fails_its_case(tmp_path: Path, cassettes_dir: Path) -> None:
    (cassettes_dir / "cancel_es.yaml").write_text("answers:\n- Hola\n", encoding="utf-8")
    with pytest.raises(CassetteError, match=r"cancel_es.yaml is not a cassette \(no `interactions` list\)"):
        Cassette.load(cassettes_dir / "cancel_es.yaml")
    result = await replay(scenario("cancel_es"), tmp_path / "run")
    assert not result.passed and result.reason.startswith("completed: ")
    assert result.reason.endswith("cancel_es.yaml is not a cassette (no `interactions` list)")


async def test_a_cassette_that_is_not_yaml_fails_its_case(tmp_path: Path, cassettes_dir: Path) -> None:
    (cassettes_dir / "cancel_es.yaml").write_text("interactions: [\n  {request: \n", encoding="utf-8")
    with pytest.raises(CassetteError, match=r"cancel_es.yaml is not valid YAML \(line 3\); re-record it"):
        Cassette.load(cassettes_dir / "cancel_es.yaml")
    result = await replay(scenario("cancel_es"), tmp_path / "run")
    assert not result.passed and result.reason.endswith("is not valid YAML (line 3); re-record it")


def test_a_cassette_with_a_partial_fingerprint_is_a_cassette_error(tmp_path: Path) -> None:
    partial = tmp_path / "partial.yaml"
    partial.write_text("version: 1\nfingerprint: {model: gpt-5-mini}\ninteractions: []\n", encoding="utf-8")
    with pytest.raises(CassetteError, match="partial.yaml"):
        Cassette.load(partial)


async def test_a_cassette_without_a_fingerprint_is_stale(tmp_path: Path, cassettes_dir: Path) -> None:
    data = yaml.safe_load((CASSETTES_DIR / "cancel_es.yaml").read_text(encoding="utf-8"))
    loaded = Cassette.load(CASSETTES_DIR / "cancel_es.yaml")
    Cassette("cancel_es", None, data["interactions"], loaded.source).save(cassettes_dir / "cancel_es.yaml")
    result = await replay(scenario("cancel_es"), tmp_path / "run")
    assert result.reason == "completed: stale cassette: re-record cancel_es (the cassette has no fingerprint)"


def test_record_mode_needs_the_models_settings(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"record mode needs the model's settings \(OPENAI_API_KEY"):
        open_agent_model("record", tmp_path / "cancel_es.yaml")
    assert list(tmp_path.iterdir()) == []


# --- the shipped files -----------------------------------------------------------------------------------------


def test_every_scripted_scenario_ships_a_cassette_and_every_cassette_a_scenario() -> None:
    scripted, _ = runnable(load_scenarios(), "replay")
    assert {s.name for s in scripted} == {p.stem for p in shipped_cassettes()}
    assert set(scenario_names()) >= {"demo_booking_es", "booking_en", "cancel_es", "reschedule_es"}


@pytest.mark.parametrize("path", shipped_cassettes(), ids=lambda p: p.stem)
def test_a_shipped_cassette_is_clean_fingerprinted_and_says_where_it_came_from(path: Path) -> None:
    text = path.read_text(encoding="utf-8")
    assert f"asistente eval --live --record {path.stem}" in text, "the header says how to re-record"
    assert "Bearer" not in text and "sk-" not in text, "a cassette never carries credentials"
    data = yaml.safe_load(text)
    assert data["version"] == 1
    assert data["source"] == AUTHORED_SOURCE or data["source"].startswith("recorded from ")
    fingerprint = data["fingerprint"]
    assert set(fingerprint) == {"model", "prompt", "tools"} and fingerprint["model"]
    assert fingerprint["prompt"].startswith("sha256:") and fingerprint["tools"].startswith("sha256:")
    assert data["interactions"], "a cassette holds at least one answer"
    for interaction in data["interactions"]:
        request, response = interaction["request"], interaction["response"]
        assert (request["method"], request["uri"]) == ("POST", CHAT_URL)
        assert {h.lower() for h in request["headers"]} == {"content-type"}
        assert {h.lower() for h in response["headers"]} <= {"content-type", "x-request-id", "openai-processing-ms"}
        assert response["status"]["code"] == 200
        body = json.loads(request["body"])
        # The static prompt and the tools are kept as their hashes: the fingerprint is what they were.
        assert body["model"] == fingerprint["model"] and body["messages"][0]["role"] == "system"
        assert body["messages"][0]["content"] == fingerprint["prompt"] and body["tools"] == fingerprint["tools"]
        json.loads(response["body"]["string"])


async def test_a_recording_keeps_no_credentials(tmp_path: Path) -> None:
    def server(request: httpx.Request) -> httpx.Response:
        answer = {"choices": [{"index": 0, "message": {"role": "assistant", "content": "Hola"}}]}
        headers = {"openai-organization": "org-secret", "set-cookie": "session=secret", "x-request-id": "req_1"}
        return httpx.Response(200, json=answer, headers=headers)

    recorder = RecordingTransport(httpx.MockTransport(server), "hello", "recorded from a test server")
    async with httpx.AsyncClient(transport=recorder) as client:
        body = {"model": "gpt-5-mini", "messages": [{"role": "system", "content": "Eres..."}], "tools": []}
        answered = await client.post(
            CHAT_URL, json=body, headers={"Authorization": f"Bearer {SECRET}", "OpenAI-Project": "proj_secret"}
        )
    assert answered.json()["choices"][0]["message"]["content"] == "Hola"
    recorder.cassette().save(tmp_path / "hello.yaml")
    text = (tmp_path / "hello.yaml").read_text(encoding="utf-8")
    for secret in (SECRET, "Bearer", "proj_secret", "org-secret", "session=secret"):
        assert secret not in text
    saved = Cassette.load(tmp_path / "hello.yaml")
    assert saved.fingerprint == Fingerprint.of_request(body) and saved.source == "recorded from a test server"
    assert saved.interactions[0]["response"]["headers"] == {
        "content-type": ["application/json"],
        "x-request-id": ["req_1"],
    }


async def test_a_gzip_answer_is_recorded_and_returned_decoded(tmp_path: Path) -> None:
    # OpenAI compresses its answers: the client and the cassette both get the plain JSON, decoded once.
    answer = {"choices": [{"index": 0, "message": {"role": "assistant", "content": "Hola"}}]}

    def server(request: httpx.Request) -> httpx.Response:
        headers = {"content-encoding": "gzip", "content-type": "application/json"}
        return httpx.Response(200, headers=headers, content=gzip.compress(json.dumps(answer).encode()))

    recorder = RecordingTransport(httpx.MockTransport(server), "zipped", "recorded from a test server")
    async with httpx.AsyncClient(transport=recorder) as client:
        answered = await client.post(CHAT_URL, json={"model": "gpt-5-mini", "messages": []})
    assert answered.json() == answer
    recorder.cassette().save(tmp_path / "zipped.yaml")
    [interaction] = Cassette.load(tmp_path / "zipped.yaml").interactions
    assert json.loads(interaction["response"]["body"]["string"]) == answer


# --- vcrpy reads the format ------------------------------------------------------------------------------------


def test_vcrpy_plays_a_shipped_cassette_to_asistente_chat(
    fresh_cli: CliRunner, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    # A configured model whose answers vcrpy plays from the demo cassette (its first turn), matched on method and
    # path only: the cassette format stays vcrpy's, whatever the fingerprint beside it.
    monkeypatch.setenv("OPENAI_API_KEY", "sk-evals-console-0000")
    monkeypatch.setenv("OPENAI_MAX_RETRIES", "0")
    monkeypatch.setenv("DATABASE_URL", f"sqlite:///{tmp_path / 'chat.db'}")
    recorder = vcr.VCR(record_mode="none", match_on=["method", "path"])
    with recorder.use_cassette(str(CASSETTES_DIR / "demo_booking_es.yaml"), allow_playback_repeats=False) as played:
        result = fresh_cli.invoke(app, ["chat", "--name", "María"], input="Hola, ¿tenéis hueco el jueves para corte?\n")
        plays = len(played.play_counts)
        recorded = len(played)
    assert result.exit_code == 0, result.output
    assert "asistente › ¡Hola, María!" in result.output and "¿A qué hora te viene bien?" in result.output
    assert (plays, recorded) == (2, 4)


# --- authoring -------------------------------------------------------------------------------------------------

SMALL_SCENARIO = """\
description: Cancelación corta, escrita en la prueba.
now: '2026-11-24T20:10:00+01:00'
tags: {intent: cancel, language: es, difficulty: easy}
customer:
  wa_id: whatsapp:+34611000999
  profile_name: Irene
  persona: Irene, clienta; escribe en español.
  goal: Cancelar su tinte del viernes.
seed:
  appointments:
  - {id: apt_0a0b0c0d, service: Tinte, start: 2026-11-27T16:30}
script:
- customer: Hola, ¿me cancelas la cita del viernes?
- customer: Sí
expect:
  appointments:
  - {id: apt_0a0b0c0d, service: Tinte, start: 2026-11-27T16:30, status: cancelled}
  tools: [cancel_appointment]
  system_messages: 0
"""

SMALL_ANSWERS = """\
answers:
- tools:
  - name: cancel_appointment
    args: {appointment_id: apt_0a0b0c0d, reason: La clienta no puede ir}
- text: Hecho, Irene, tu cita de Tinte del viernes 27 de noviembre a las 16:30 está cancelada.
"""


@pytest.fixture
def authoring(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, cassettes_dir: Path) -> Path:
    """Authored answers read from a directory of the test's own (the repository's evals/authoring is untouched)."""
    directory = tmp_path / "authoring"
    directory.mkdir()
    # load_authored's default directory is bound when it is defined: the function author mode calls is replaced.
    monkeypatch.setattr(evals.agent_model, "load_authored", functools.partial(load_authored, directory=directory))
    return directory


def names_in(directory: Path) -> list[str]:
    """The files in `directory`, by name."""
    return sorted(p.name for p in directory.iterdir())


def small_scenario(tmp_path: Path, name: str = "small_cancel_es") -> Scenario:
    """The scenario above, as a file of its own."""
    path = tmp_path / f"{name}.yaml"
    path.write_text(SMALL_SCENARIO, encoding="utf-8")
    return load_scenario(path)


def end_state(run: ScenarioRun) -> list[tuple[Any, ...]]:
    """What the evaluators decide on: every row's id, status, time and reason, and what reached the customer."""
    rows = [(a.id, a.status, a.start_at, a.cancel_reason) for a in run.appointments]
    return [*rows, *((turn.replies, turn.awaiting_confirmation) for turn in run.turns)]


async def test_authored_answers_become_a_cassette_that_replays_to_the_same_end_state(
    tmp_path: Path, authoring: Path, cassettes_dir: Path
) -> None:
    case = small_scenario(tmp_path)
    (authoring / f"{case.name}.yaml").write_text(SMALL_ANSWERS, encoding="utf-8")
    assert case.cassette == cassettes_dir / "small_cancel_es.yaml"

    author = open_agent_model("author", case.cassette)
    try:
        authored = await run_scenario(
            case, tmp_path / "author", author, ScriptedCustomer(case.script or []), mode="author"
        )
    finally:
        await author.aclose()
    assert authored.error is None
    assert [(a.id, a.status) for a in authored.appointments] == [("apt_0a0b0c0d", "cancelled")]
    author.save(case.cassette)

    assert author.recorder is not None and isinstance(author.recorder.inner, evals.authoring.AuthoredTransport)
    sent = author.recorder.inner.requests
    cassette = Cassette.load(case.cassette)
    assert len(sent) == len(cassette.interactions) == 2 and cassette.source == AUTHORED_SOURCE
    assert {Fingerprint.of_request(body) for body in sent} == {cassette.fingerprint}
    # Same business, model and tools as the shipped cassettes: the same fingerprint.
    assert cassette.fingerprint == Cassette.load(CASSETTES_DIR / "cancel_es.yaml").fingerprint
    assert "asistente eval author small_cancel_es" in case.cassette.read_text(encoding="utf-8")

    player = open_agent_model("replay", case.cassette)
    try:
        replayed = await run_scenario(
            case, tmp_path / "replay", player, ScriptedCustomer(case.script or []), mode="replay"
        )
    finally:
        await player.aclose()
    assert player.problem() is None and (replayed.played, replayed.recorded) == (2, 2)
    assert end_state(replayed) == end_state(authored)


async def test_author_mode_writes_the_cassette_only_where_the_scenario_points(
    tmp_path: Path, authoring: Path, cassettes_dir: Path
) -> None:
    case = small_scenario(tmp_path)
    (authoring / f"{case.name}.yaml").write_text(SMALL_ANSWERS, encoding="utf-8")
    result = await run_case(case, 1, RunOptions(mode="author", workdir=tmp_path / "runs"))
    assert result.passed, result.reason
    assert names_in(cassettes_dir) == ["small_cancel_es.yaml"]
    assert not (CASSETTES_DIR / "small_cancel_es.yaml").exists()
    again = await run_case(case, 1, RunOptions(mode="replay", workdir=tmp_path / "again"))
    assert again.passed, again.reason


async def test_too_few_authored_answers_fail_and_write_no_cassette(
    tmp_path: Path, authoring: Path, cassettes_dir: Path
) -> None:
    case = small_scenario(tmp_path)
    first_only = SMALL_ANSWERS.split("- text:")[0]
    (authoring / f"{case.name}.yaml").write_text(first_only, encoding="utf-8")
    result = await run_case(case, 1, RunOptions(mode="author", workdir=tmp_path / "runs"))
    assert not result.passed and result.error is not None
    assert "small_cancel_es: all 1 authored answers used; the agent asked for another" in result.error
    assert names_in(cassettes_dir) == []


async def test_author_mode_without_answers_fails_its_case(tmp_path: Path, authoring: Path) -> None:
    result = await run_case(small_scenario(tmp_path), 1, RunOptions(mode="author", workdir=tmp_path / "runs"))
    assert result.reason == f"completed: no authored answers at {authoring / 'small_cancel_es.yaml'}"


async def test_the_chat_path_is_the_one_recorded() -> None:
    # The recorder forwards anything else untouched and keeps only chat completions.
    def server(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, json={"path": request.url.path})

    recorder = RecordingTransport(httpx.MockTransport(server), "paths", "recorded from a test server")
    async with httpx.AsyncClient(transport=recorder) as client:
        models = await client.get("https://api.openai.com/v1/models")
        chat = await client.post(CHAT_URL, json={"model": "m", "messages": []})
    assert models.json() == {"path": "/v1/models"} and chat.json() == {"path": f"/v1{CHAT_PATH}"}
    assert len(recorder.interactions) == 1
