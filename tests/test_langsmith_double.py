"""The LangSmith double against the real `langsmith.Client`: traces, compression, feedback, datasets, faults."""

from __future__ import annotations

import gzip
import json
import uuid
import zlib
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
import requests
from langsmith import Client, evaluate, traceable
from langsmith import utils as ls_utils
from langsmith.run_helpers import tracing_context

from tests.langsmith_double import FAKE_API_KEY, LangSmithDouble, clear_langsmith_env_cache, langsmith_double_fixture

PHONE = "+5215512345678"


@pytest.fixture
def double() -> Iterator[LangSmithDouble]:
    yield from langsmith_double_fixture()


@pytest.fixture
def no_env_cache() -> Iterator[None]:
    # langsmith caches every LANGSMITH_* lookup (utils.get_env_var is an lru_cache): a monkeypatched variable is
    # only seen after clearing it, and must not leak into later tests.
    clear_langsmith_env_cache()
    yield
    clear_langsmith_env_cache()


@traceable(name="book_turn", metadata={"turn": "inbound"})
def book_turn(text: str) -> dict[str, str]:
    return {"reply": check_slot(text.upper())}


@traceable
def check_slot(text: str) -> str:
    return f"ok:{text}"


def trace_one_turn(client: Client, text: str, project: str = "p") -> None:
    with tracing_context(enabled=True, client=client, project_name=project):
        book_turn(text)
    client.flush()


@pytest.mark.parametrize("zstd", [True, False], ids=["zstd", "plain"])
def test_a_traced_call_arrives_as_a_root_with_its_child(zstd: bool) -> None:
    with LangSmithDouble(zstd_compression=zstd) as double:
        client = double.settle(Client(api_url=double.url, api_key="lsv2_pt_" + "0" * 32))
        trace_one_turn(client, "hola")

        [root] = double.wait_for(double.roots, what="a root run")
        assert root["name"] == "book_turn"
        assert root["inputs"] == {"text": "hola"}
        assert root["outputs"] == {"reply": "ok:HOLA"}
        assert root["extra"]["metadata"]["turn"] == "inbound"
        assert root["session_name"] == "p"
        assert root["trace_id"] == root["id"]
        assert root["end_time"] is not None
        [child] = double.children(root["id"])
        assert (child["name"], child["inputs"], child["outputs"]) == (
            "check_slot",
            {"text": "HOLA"},
            {"output": "ok:HOLA"},
        )
        assert child["trace_id"] == root["id"]
        # The project exists as LangSmith would show it, created by the first run traced to it.
        assert client.read_project(project_name="p").name == "p"
        encodings = {r.headers.get("content-encoding") for r in double.requests_to("/runs/multipart")}
        assert encodings == ({"zstd"} if zstd else {None})
        client.close()


def test_zstd_bodies_are_decoded_and_searched_in_all_bytes(double: LangSmithDouble) -> None:
    trace_one_turn(double.client(), f"mi numero es {PHONE}")

    [sent] = double.requests_to("/runs/multipart")
    assert sent.headers["content-encoding"] == "zstd"
    assert PHONE.encode() not in sent.body  # compressed on the wire: a raw search would miss it...
    assert PHONE.encode() in sent.decoded  # ...decoded it is there,
    assert PHONE.encode() in double.all_bytes()  # so a "never sent" check over all_bytes() can fail.
    assert double.roots()[0]["inputs"] == {"text": f"mi numero es {PHONE}"}


def test_disabling_compression_by_env_sends_plain_multipart(
    monkeypatch: pytest.MonkeyPatch, no_env_cache: None, double: LangSmithDouble
) -> None:
    monkeypatch.setenv("LANGSMITH_DISABLE_RUN_COMPRESSION", "true")
    clear_langsmith_env_cache()
    trace_one_turn(double.client(), PHONE)

    [sent] = double.requests_to("/runs/multipart")
    assert "content-encoding" not in sent.headers
    assert PHONE.encode() in sent.body
    assert {run["name"] for run in double.runs.values()} == {"book_turn", "check_slot"}


@pytest.mark.parametrize("encoding", ["gzip", "deflate"])
def test_gzip_and_deflate_bodies_are_decoded(double: LangSmithDouble, encoding: str) -> None:
    run_id = str(uuid.uuid4())
    body = json.dumps({"post": [{"id": run_id, "trace_id": run_id, "name": "manual", "inputs": {"q": PHONE}}]})
    packed = gzip.compress(body.encode()) if encoding == "gzip" else zlib.compress(body.encode())
    headers = {"Content-Type": "application/json", "Content-Encoding": encoding}

    answer = requests.post(f"{double.url}/runs/batch", data=packed, headers=headers, timeout=5)

    assert answer.status_code == 202
    assert double.runs[run_id]["inputs"] == {"q": PHONE}
    assert PHONE.encode() not in double.requests[-1].body
    assert PHONE.encode() in double.all_bytes()


def test_a_chunked_body_is_read(double: LangSmithDouble) -> None:
    run_id = str(uuid.uuid4())
    body = json.dumps({"id": run_id, "trace_id": run_id, "name": "chunked"}).encode()

    # A generator body makes requests send Transfer-Encoding: chunked instead of a Content-Length.
    answer = requests.post(f"{double.url}/runs", data=iter([body[:7], body[7:]]), timeout=5)

    assert answer.status_code == 202
    assert double.requests[-1].headers["transfer-encoding"] == "chunked"
    assert double.runs[run_id]["name"] == "chunked"


def test_an_undecodable_body_is_refused_and_reported(double: LangSmithDouble) -> None:
    headers = {"Content-Type": "application/json", "Content-Encoding": "zstd"}
    answer = requests.post(f"{double.url}/runs/batch", data=b"not zstd", headers=headers, timeout=5)

    assert answer.status_code == 400
    assert double.errors == ["POST /runs/batch: undecodable body (ZstdError)"]
    assert double.runs == {}


def test_patches_merge_into_posts_across_requests(double: LangSmithDouble) -> None:
    client = double.client()
    run_id, start = uuid.uuid4(), datetime.now(UTC)
    dotted = f"{start.strftime('%Y%m%dT%H%M%S%fZ')}{run_id}"
    client.create_run(
        "turn", {"text": "hola"}, "chain", id=run_id, trace_id=run_id, dotted_order=dotted, start_time=start,
        project_name="p", extra={"metadata": {"thread_id": "t-1"}}, tags=["turn:inbound"],
    )  # fmt: skip
    client.flush()
    client.update_run(
        run_id, trace_id=run_id, dotted_order=dotted, outputs={"reply": "listo"}, extra={"metadata": {"turn": "in"}}
    )
    client.flush()

    assert len(double.requests_to("/runs/multipart")) == 2  # one post, then one patch: merged here, not by the client
    run = double.runs[str(run_id)]
    assert (run["name"], run["outputs"], run["tags"]) == ("turn", {"reply": "listo"}, ["turn:inbound"])
    assert run["extra"]["metadata"]["thread_id"] == "t-1"
    assert run["extra"]["metadata"]["turn"] == "in"
    assert run["session_name"] == "p"  # the patch's null session_name does not erase it


def test_without_auto_batching_runs_go_to_post_runs_and_patch(double: LangSmithDouble) -> None:
    client = double.client(auto_batch_tracing=False)
    run_id = uuid.uuid4()
    client.create_run("turn", {"text": "hola"}, "chain", id=run_id, project_name="p")
    client.update_run(run_id, outputs={"reply": "listo"}, error="boom")

    assert [(r.method, r.path) for r in double.requests if r.path.startswith("/runs")] == [
        ("POST", "/runs"),
        ("PATCH", f"/runs/{run_id}"),
    ]
    run = double.runs[str(run_id)]
    assert (run["name"], run["outputs"], run["error"]) == ("turn", {"reply": "listo"}, "boom")


def test_multipart_ingest_with_attachment(double: LangSmithDouble) -> None:
    client = double.client()
    run_id = uuid.uuid4()
    dotted = f"{datetime.now(UTC).strftime('%Y%m%dT%H%M%S%fZ')}{run_id}"
    run = {"id": run_id, "trace_id": run_id, "dotted_order": dotted, "name": "upload", "run_type": "tool"}
    client.multipart_ingest(create=[{**run, "inputs": {"a": 1}, "attachments": {"note": ("text/plain", b"hi")}}])

    stored = double.runs[str(run_id)]
    assert stored["attachments"] == {"note": {"content_type": "text/plain", "data": b"hi"}}
    assert stored["inputs"] == {"a": 1}


def test_feedback_without_a_trace_id_is_posted(double: LangSmithDouble) -> None:
    client = double.client()
    trace_one_turn(client, "hola")
    root = double.roots()[0]
    project = client.read_project(project_name="p")

    client.create_feedback(root["id"], key="staff_rating", score=1, comment="ok", session_id=project.id)

    assert len(double.requests_to("/feedback", "POST")) == 1
    [feedback] = double.feedback.values()
    assert (feedback["run_id"], feedback["key"], feedback["score"], feedback["comment"]) == (
        root["id"], "staff_rating", 1, "ok",
    )  # fmt: skip
    assert feedback["session_id"] == str(project.id)
    assert feedback["feedback_source"]["type"] == "api"
    listed = list(client.list_feedback(run_ids=[root["id"]]))
    assert [(f.key, f.score) for f in listed] == [("staff_rating", 1)]


def test_feedback_with_a_trace_id_rides_the_tracing_queue(double: LangSmithDouble) -> None:
    client = double.client()
    trace_one_turn(client, "hola")
    root = double.roots()[0]

    made = client.create_feedback(root["id"], trace_id=root["id"], key="staff_rating", score=0, session_id=uuid.uuid4())
    client.flush()

    assert double.requests_to("/feedback") == []  # queued, then sent inside /runs/multipart
    feedback = double.wait_for(lambda: double.feedback.get(str(made.id)), what="the queued feedback")
    assert (feedback["key"], feedback["score"], feedback["trace_id"]) == ("staff_rating", 0, root["id"])


@pytest.mark.parametrize("multipart", [True, False], ids=["multipart", "bulk"])
def test_datasets_and_examples_round_trip(multipart: bool) -> None:
    with LangSmithDouble(examples_multipart=multipart) as double:
        client = double.client()
        dataset = client.create_dataset("conversations", description="golden turns")
        created = client.create_examples(
            dataset_id=dataset.id,
            examples=[
                {
                    "inputs": {"text": "hola"},
                    "reference_outputs": {"reply": "buenas"},
                    "metadata": {"kind": "greeting"},
                },
                {"inputs": {"text": "cita"}, "reference_outputs": {"reply": "cuando?"}, "split": "hard"},
            ],
        )

        assert created["count"] == 2
        expected_path = f"/v1/platform/datasets/{dataset.id}/examples" if multipart else "/examples/bulk"
        assert len(double.requests_to(expected_path, "POST")) == 1
        examples = list(client.list_examples(dataset_id=dataset.id))
        assert sorted(str(e.id) for e in examples) == sorted(created["example_ids"])
        by_text = {e.inputs["text"]: e for e in examples if e.inputs}
        assert by_text["hola"].outputs == {"reply": "buenas"}
        assert by_text["hola"].metadata == {"kind": "greeting", "dataset_split": ["base"]}
        assert [e.inputs for e in client.list_examples(dataset_id=dataset.id, splits=["hard"])] == [{"text": "cita"}]
        assert client.read_dataset(dataset_name="conversations").example_count == 2
        assert client.has_dataset(dataset_name="missing") is False
        assert double.unhandled == []


def test_experiments_are_sessions(double: LangSmithDouble) -> None:
    client = double.client()
    dataset = client.create_dataset("conversations")
    project = client.create_project("exp-1", reference_dataset_id=dataset.id, metadata={"model": "scripted"})
    ended = client.update_project(project.id, end_time=datetime.now(UTC))

    assert ended.end_time is not None
    assert client.read_project(project_id=project.id).metadata == {"model": "scripted"}
    assert [s.name for s in client.list_projects(reference_dataset_id=dataset.id)] == ["exp-1"]
    with pytest.raises(ls_utils.LangSmithConflictError):
        client.create_project("exp-1")


def test_wait_for_times_out_with_a_clear_error(double: LangSmithDouble) -> None:
    with pytest.raises(AssertionError, match=r"timed out after 0.1s waiting for a run named ghost; 0 runs"):
        double.wait_for(lambda: any(r["name"] == "ghost" for r in double.runs.values()), 0.1, "a run named ghost")


def test_fail_next_makes_the_client_retry(double: LangSmithDouble) -> None:
    client = double.client()
    client.info  # noqa: B018 - fetched now, so the fault hits the dataset request
    double.fail_next(1, 503)

    client.create_dataset("after-a-503")

    assert [r.status for r in double.requests_to("/datasets", "POST")] == [503, 200]
    assert [d["name"] for d in double.datasets.values()] == ["after-a-503"]


def test_a_failed_trace_upload_is_retried(double: LangSmithDouble) -> None:
    client = double.client()
    client.info  # noqa: B018 - fetch /info before arming the fault, so the fault hits the upload
    double.fail_next(1, 500)

    trace_one_turn(client, "hola")

    assert [r.status for r in double.requests_to("/runs/multipart")] == [500, 202]
    assert [r["name"] for r in double.roots()] == ["book_turn"]


def test_unknown_endpoints_answer_404_and_are_listed(double: LangSmithDouble) -> None:
    answer = requests.get(f"{double.url}/runs/stats", headers={"x-api-key": FAKE_API_KEY}, timeout=5)

    assert (answer.status_code, answer.json()) == (404, {"detail": "not found"})
    assert double.unhandled == ["GET /runs/stats"]


def test_evaluate_runs_an_experiment_against_the_double(double: LangSmithDouble) -> None:
    client = double.client()
    dataset = client.create_dataset("conversations")
    client.create_examples(
        dataset_id=dataset.id,
        examples=[{"inputs": {"text": t}, "reference_outputs": {"reply": t.upper()}} for t in ("hola", "cita")],
    )

    def exact(outputs: dict[str, str], reference_outputs: dict[str, str]) -> dict[str, Any]:
        return {"key": "exact", "score": outputs["reply"] == reference_outputs["reply"]}

    evaluate(lambda inputs: {"reply": inputs["text"].upper()}, data="conversations", evaluators=[exact], client=client)
    client.flush()

    [experiment] = [s for s in double.sessions.values() if s["reference_dataset_id"] == str(dataset.id)]
    targets = [r for r in double.roots() if r["session_name"] == experiment["name"]]
    assert sorted(r["reference_example_id"] for r in targets) == sorted(double.examples)
    assert sorted((f["key"], f["score"]) for f in double.feedback.values()) == [("exact", True), ("exact", True)]
    assert double.unhandled == []
