"""LangSmith's API as a real local HTTP server, for a real `langsmith.Client(api_url=double.url)` (langsmith 0.15.1).

What that client sends, read from its source (client.py, _internal/_operations.py, _background_thread.py):
- `GET /info` once, when the client starts its tracing thread. `batch_ingest_config` must carry `size_limit`,
  `scale_up_qsize_trigger`, `scale_up_nthreads_limit` and `scale_down_nempty_trigger` (read with `[...]`);
  `instance_flags.zstd_compression_enabled` turns zstd on (unless LANGSMITH_DISABLE_RUN_COMPRESSION=true), and
  `dataset_examples_multipart_enabled` picks the multipart example upload over `POST /examples/bulk`.
- Runs: `POST /runs/multipart` (parts `post.<id>`, `post.<id>.inputs|outputs|events|extra|error|serialized`, the same
  for `patch.`, `attachment.<id>.<name>`, and `feedback.<id>` for queued feedback), zstd-compressed as one frame with
  `Content-Encoding: zstd` when compression is on. A 404 there makes the client fall back for good to
  `POST /runs/batch` (`{"post": [...], "patch": [...]}`); without auto-batching it uses `POST /runs` and
  `PATCH /runs/<id>`. All four land in `runs`, a post merged with its patches as LangSmith shows the run.
  The tracing thread reads `/info` just after the Client is built, so runs traced before that go out uncompressed:
  `settle(client)` waits for it.
- Feedback: `create_feedback` with a `trace_id` rides the tracing queue (a `feedback.<id>` part); without one it is
  `POST /feedback`. Both land in `feedback`. The client builds its return value locally and ignores our answer.

- Datasets, examples, projects: enough for `create_dataset`, `create_examples` and `update_examples` (multipart or
  bulk), `delete_examples` / `delete_example` (soft: gone from listings), `list_examples`, `create_project` /
  `read_project` / `update_project` / `list_projects`, and `langsmith.evaluate` / `aevaluate` end to end.

Every request is recorded (`requests`), its body decoded per `Content-Encoding` (gzip, deflate, zstd); anything the
double does not serve is answered 404 and listed in `unhandled`. `fail_next` makes the next requests fail.
"""

from __future__ import annotations

import copy
import gzip
import io
import json
import re
import threading
import time
import uuid
import zlib
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Self, TypeVar
from urllib.parse import parse_qs, urlsplit

import langsmith
import pytest
import zstandard
from langsmith import utils as ls_utils

T = TypeVar("T")
Json = dict[str, Any]
FAKE_API_KEY = "lsv2_pt_" + "0" * 32
TENANT_ID = "00000000-0000-4000-8000-000000000001"


def _now() -> str:
    return datetime.now(UTC).isoformat()


@dataclass
class RecordedRequest:
    """One request as received: `body` as sent, `decoded` after Content-Encoding; `status` is what we answered."""

    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]  # names lower-cased
    body: bytes
    decoded: bytes = b""
    status: int = 0

    def json(self) -> Any:
        """The decoded body parsed as JSON."""
        return json.loads(self.decoded)

    def param(self, name: str) -> str | None:
        """The first value of query parameter `name`."""
        values = self.query.get(name)
        return values[0] if values else None


def clear_langsmith_env_cache() -> None:
    """Forget langsmith's cached LANGSMITH_* lookups (`utils.get_env_var` is an lru_cache), after changing the env."""
    ls_utils.get_env_var.cache_clear()  # type: ignore[attr-defined]


@contextmanager
def langsmith_environment(
    monkeypatch: pytest.MonkeyPatch, project: str = "salon", **env: str
) -> Iterator[LangSmithDouble]:
    """A LangSmith double, and the environment a user would set to reach it (key, endpoint, project, `env`), with
    the settings and langsmith's env caches cleared on the way in and out."""
    from core.settings import get_settings

    with LangSmithDouble() as double:
        monkeypatch.setenv("LANGSMITH_API_KEY", FAKE_API_KEY)
        monkeypatch.setenv("LANGSMITH_ENDPOINT", double.url)
        monkeypatch.setenv("LANGSMITH_PROJECT", project)
        for key, value in env.items():
            monkeypatch.setenv(key, value)
        clear_langsmith_env_cache()
        get_settings.cache_clear()
        try:
            yield double
        finally:
            get_settings.cache_clear()
            clear_langsmith_env_cache()


def decode_body(raw: bytes, content_encoding: str) -> bytes:
    """Undo `Content-Encoding` (gzip, deflate, zstd; listed in the order applied). Raises ValueError on others."""
    data = raw
    for coding in reversed([c.strip().lower() for c in content_encoding.split(",") if c.strip()]):
        if coding == "gzip":
            data = gzip.decompress(data)
        elif coding == "deflate":
            try:
                data = zlib.decompress(data)
            except zlib.error:  # some senders omit the zlib wrapper
                data = zlib.decompress(data, -zlib.MAX_WBITS)
        elif coding == "zstd":
            # LangSmith streams one frame without a content size, so read it as a stream.
            data = zstandard.ZstdDecompressor().stream_reader(io.BytesIO(data), read_across_frames=True).read()
        elif coding != "identity":
            raise ValueError(f"unsupported Content-Encoding {coding!r}")
    return data


def parse_multipart(body: bytes, content_type: str) -> list[tuple[str, str, bytes]]:
    """(name, content type, data) of each part of a multipart/form-data body."""
    found = re.search(r'boundary="?([^";]+)"?', content_type)
    if found is None:
        raise ValueError("multipart body without a boundary")
    delimiter = b"\r\n--" + found.group(1).encode()
    parts = []
    for chunk in (b"\r\n" + body).split(delimiter)[1:]:
        if chunk.startswith(b"--"):  # the closing delimiter
            break
        head, _, data = chunk.removeprefix(b"\r\n").partition(b"\r\n\r\n")
        headers = dict(
            (k.strip().lower(), v.strip()) for k, _, v in (line.partition(":") for line in head.decode().split("\r\n"))
        )
        name = re.search(r'name="([^"]*)"', headers.get("content-disposition", ""))
        parts.append((name.group(1) if name else "", headers.get("content-type", ""), data))
    return parts


def _merge_into(run: Json, fields: Json, *, patch: bool) -> None:
    for key, value in fields.items():
        if value is None and patch:
            continue
        old = run.get(key)
        if key in ("extra", "attachments") and isinstance(old, dict) and isinstance(value, dict):
            merged = {**old, **value}
            if isinstance(old.get("metadata"), dict) and isinstance(value.get("metadata"), dict):
                merged["metadata"] = {**old["metadata"], **value["metadata"]}
            run[key] = merged
        else:
            run[key] = value


class LangSmithDouble:
    """A local LangSmith. Start it (or `with LangSmithDouble() as double:`), then point a Client at `url`.

    `zstd_compression` and `examples_multipart` are the instance flags `/info` advertises (both on, as LangSmith's
    cloud has them); turn one off to exercise the client's other path.
    """

    def __init__(self, *, zstd_compression: bool = True, examples_multipart: bool = True) -> None:
        self.zstd_compression = zstd_compression
        self.examples_multipart = examples_multipart
        self._lock = threading.Lock()
        self._requests: list[RecordedRequest] = []
        self._run_ops: dict[str, list[tuple[str, Json]]] = {}
        self._feedback: dict[str, Json] = {}
        self._datasets: dict[str, Json] = {}
        self._examples: dict[str, Json] = {}
        self._sessions: dict[str, Json] = {}
        self._unhandled: list[str] = []
        self._errors: list[str] = []
        self._failures: tuple[int, int] = (0, 503)
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self._clients: list[langsmith.Client] = []

    # Lifecycle

    def start(self) -> Self:
        """Listen on 127.0.0.1 (a free port) in a background thread."""
        server = ThreadingHTTPServer(("127.0.0.1", 0), _handler_for(self))
        server.daemon_threads = True
        self._server = server
        self._thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """Close the clients `client()` made (sending what they hold), then stop listening. Idempotent."""
        while self._clients:
            self._clients.pop().close(timeout=5)
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def url(self) -> str:
        """The base URL to use as `api_url` / LANGSMITH_ENDPOINT."""
        if self._server is None:
            raise RuntimeError("LangSmithDouble is not started")
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    def client(self, **kwargs: Any) -> langsmith.Client:
        """A real `langsmith.Client` for this double (keyword arguments go to the Client), settled; `stop` closes it."""
        client = langsmith.Client(api_url=self.url, api_key=FAKE_API_KEY, **kwargs)
        self._clients.append(client)
        return self.settle(client)

    def settle(self, client: langsmith.Client, timeout: float = 5.0) -> langsmith.Client:
        """Wait until `client`'s tracing thread has read `/info` and switched compression on (when it will).

        The thread does that after the Client is built; runs traced before then go out uncompressed, so a test
        that checks the wire format waits here first.
        """
        compress = (
            self.zstd_compression
            and client.tracing_queue is not None
            and not ls_utils.is_env_var_truish("DISABLE_RUN_COMPRESSION")
        )
        if compress:
            self.wait_for(lambda: client.compressed_traces is not None, timeout, "the client to turn compression on")
        return client

    # What was received (snapshots, safe to read while the client is still sending)

    @property
    def requests(self) -> list[RecordedRequest]:
        """Every request, in arrival order."""
        with self._lock:
            return list(self._requests)

    def requests_to(self, path: str, method: str | None = None) -> list[RecordedRequest]:
        """Requests for exactly `path` (and `method`, if given)."""
        return [r for r in self.requests if r.path == path and (method is None or r.method == method)]

    @property
    def runs(self) -> dict[str, Json]:
        """Runs by id: each post with its patches applied after it (non-null fields win, extra.metadata merged)."""
        with self._lock:
            ops = {run_id: list(run_ops) for run_id, run_ops in self._run_ops.items()}
        runs = {}
        for run_id, run_ops in ops.items():
            run: Json = {}
            for kind in ("post", "patch"):
                for op, fields in run_ops:
                    if op == kind:
                        _merge_into(run, copy.deepcopy(fields), patch=kind == "patch")
            runs[run_id] = run
        return runs

    def roots(self) -> list[Json]:
        """Runs without a parent (one per trace)."""
        return [run for run in self.runs.values() if run.get("parent_run_id") is None]

    def children(self, run_id: str | uuid.UUID) -> list[Json]:
        """Direct children of a run."""
        return [run for run in self.runs.values() if run.get("parent_run_id") == str(run_id)]

    @property
    def feedback(self) -> dict[str, Json]:
        """Feedback by id (from `POST /feedback` and from `feedback.<id>` multipart parts)."""
        with self._lock:
            return copy.deepcopy(self._feedback)

    @property
    def datasets(self) -> dict[str, Json]:
        """Datasets by id."""
        with self._lock:
            return copy.deepcopy(self._datasets)

    @property
    def examples(self) -> dict[str, Json]:
        """Examples by id."""
        with self._lock:
            return copy.deepcopy(self._examples)

    @property
    def sessions(self) -> dict[str, Json]:
        """Projects / experiments ("sessions") by id, including those created implicitly by traced runs."""
        with self._lock:
            return copy.deepcopy(self._sessions)

    @property
    def unhandled(self) -> list[str]:
        """'METHOD /path' of every request the double does not serve (answered 404)."""
        with self._lock:
            return list(self._unhandled)

    @property
    def errors(self) -> list[str]:
        """Requests the double could not make sense of (answered 4xx): 'METHOD /path: reason'."""
        with self._lock:
            return list(self._errors)

    def all_bytes(self) -> bytes:
        """Everything received: request lines, header values, raw and decoded bodies, for 'never sent' checks."""
        chunks = []
        for r in self.requests:
            query = "&".join(f"{k}={v}" for k, values in r.query.items() for v in values)
            chunks += [f"{r.method} {r.path}?{query}".encode(), *(v.encode() for v in r.headers.values())]
            chunks += [r.body, r.decoded]
        return b"\n".join(chunks)

    def wait_for(self, predicate: Callable[[], T | None], timeout: float = 5.0, what: str = "condition") -> T:
        """Poll until `predicate()` is truthy and return its value; raise AssertionError after `timeout` seconds."""
        deadline = time.monotonic() + timeout
        while True:
            value = predicate()
            if value:
                return value
            if time.monotonic() >= deadline:
                raise AssertionError(
                    f"LangSmithDouble: timed out after {timeout}s waiting for {what}; {self.summary()}"
                )
            time.sleep(0.02)

    def summary(self) -> str:
        """A short account of what arrived (names and counts, never bodies), for failure messages."""
        runs = self.runs
        seen = [f"{r.method} {r.path} -> {r.status}" for r in self.requests[-10:]]
        return (
            f"{len(runs)} runs {sorted({str(r.get('name')) for r in runs.values()})}, {len(self.feedback)} feedback, "
            f"last requests {seen}, unhandled {self.unhandled}, errors {self.errors}"
        )

    # Faults

    def fail_next(self, n: int = 1, status: int = 503) -> None:
        """Answer the next `n` requests (of any kind) with `status` before looking at them."""
        with self._lock:
            self._failures = (n, status)

    # Serving

    def _take_failure(self) -> int | None:
        with self._lock:
            remaining, status = self._failures
            if remaining <= 0:
                return None
            self._failures = (remaining - 1, status)
            return status

    def handle(self, request: RecordedRequest) -> tuple[int, Any]:
        """Record `request` and answer it: (status, JSON body)."""
        with self._lock:
            self._requests.append(request)
        failure = self._take_failure()
        if failure is not None:
            return failure, {"detail": "failure injected by LangSmithDouble.fail_next"}
        try:
            request.decoded = decode_body(request.body, request.headers.get("content-encoding", ""))
        except (ValueError, OSError, zlib.error, zstandard.ZstdError) as exc:
            return self._error(request, 400, f"undecodable body ({type(exc).__name__})")
        for method, pattern, route in _ROUTES:
            found = re.fullmatch(pattern, request.path.rstrip("/") or "/")
            if found and method == request.method:
                try:
                    return route(self, request, *found.groups())
                except (ValueError, KeyError, TypeError) as exc:  # JSONDecodeError is a ValueError
                    return self._error(request, 422, f"{type(exc).__name__}: {exc}")
        with self._lock:
            self._unhandled.append(f"{request.method} {request.path}")
        return 404, {"detail": "not found"}

    def _error(self, request: RecordedRequest, status: int, reason: str) -> tuple[int, Any]:
        with self._lock:
            self._errors.append(f"{request.method} {request.path}: {reason}")
        return status, {"detail": reason}

    # Runs and feedback

    def _ingest_run_ops(self, ops: list[tuple[str, Json]]) -> None:
        with self._lock:
            for op, fields in ops:
                self._run_ops.setdefault(str(fields["id"]), []).append((op, fields))
                name = fields.get("session_name")
                if isinstance(name, str) and not any(s["name"] == name for s in self._sessions.values()):
                    # LangSmith creates a run's project on first use; read_project(project_name=...) then finds it.
                    session_id = str(fields.get("session_id") or uuid.uuid4())
                    self._sessions[session_id] = _session(session_id, {"name": name})

    def _ingest_feedback(self, fields: Json) -> Json:
        stamp = _now()
        defaults = dict.fromkeys(("run_id", "trace_id", "score", "value", "comment", "correction", "session_id"))
        stored = {**defaults, "created_at": stamp, "modified_at": stamp, **fields}
        stored["id"] = str(fields.get("id") or uuid.uuid4())
        with self._lock:
            self._feedback[stored["id"]] = stored
        return stored

    def _runs_multipart(self, request: RecordedRequest) -> tuple[int, Any]:
        grouped: dict[tuple[str, str], Json] = {}
        for name, content_type, data in parse_multipart(request.decoded, request.headers.get("content-type", "")):
            kind, _, rest = name.partition(".")
            if kind == "feedback":
                self._ingest_feedback(json.loads(data))
            elif kind == "attachment":
                run_id, _, attachment = rest.partition(".")
                fields = grouped.setdefault(("patch", run_id), {"id": run_id})
                fields.setdefault("attachments", {})[attachment] = {"content_type": content_type, "data": data}
            elif kind in ("post", "patch"):
                run_id, _, field_name = rest.partition(".")
                fields = grouped.setdefault((kind, run_id), {"id": run_id})
                if field_name:
                    fields[field_name] = json.loads(data)
                else:
                    fields.update(json.loads(data))
            else:
                raise ValueError(f"unknown part {name!r}")
        self._ingest_run_ops([(kind, fields) for (kind, _), fields in grouped.items()])
        return 202, {}

    def _runs_batch(self, request: RecordedRequest) -> tuple[int, Any]:
        body = request.json()
        self._ingest_run_ops([(kind, run) for kind in ("post", "patch") for run in body.get(kind) or []])
        return 202, {}

    def _runs_post(self, request: RecordedRequest) -> tuple[int, Any]:
        self._ingest_run_ops([("post", request.json())])
        return 202, {}

    def _runs_patch(self, request: RecordedRequest, run_id: str) -> tuple[int, Any]:
        self._ingest_run_ops([("patch", {**request.json(), "id": run_id})])
        return 202, {}

    def _feedback_post(self, request: RecordedRequest) -> tuple[int, Any]:
        return 200, self._ingest_feedback(request.json())

    def _feedback_list(self, request: RecordedRequest) -> tuple[int, Any]:
        runs, keys = request.query.get("run"), request.query.get("key")
        found = [
            f
            for f in self.feedback.values()
            if (not runs or f.get("run_id") in runs) and (not keys or f["key"] in keys)
        ]
        return 200, _page(found, request)

    def _info(self, request: RecordedRequest) -> tuple[int, Any]:
        return 200, {
            "version": "0.12.33",
            "license_expiration_time": None,
            "batch_ingest_config": {
                "use_multipart_endpoint": True,
                "scale_up_qsize_trigger": 1000,
                "scale_up_nthreads_limit": 16,
                "scale_down_nempty_trigger": 4,
                "size_limit": 100,
                "size_limit_bytes": 20_971_520,
            },
            "instance_flags": {
                "zstd_compression_enabled": self.zstd_compression,
                "dataset_examples_multipart_enabled": self.examples_multipart,
                "examples_multipart_enabled": self.examples_multipart,
                "ch_query_enabled": True,
            },
        }

    # Datasets, examples and projects ("sessions")

    def _dataset_view(self, dataset: Json) -> Json:
        with self._lock:
            count = sum(1 for e in self._examples.values() if e["dataset_id"] == dataset["id"])
        return {**copy.deepcopy(dataset), "example_count": count}

    def _datasets_post(self, request: RecordedRequest) -> tuple[int, Any]:
        body, stamp = request.json(), _now()
        dataset = {
            "id": str(uuid.uuid4()),
            "name": body["name"],
            "description": body.get("description"),
            "data_type": body.get("data_type", "kv"),
            "created_at": stamp,
            "modified_at": stamp,
            "inputs_schema_definition": body.get("inputs_schema_definition"),
            "outputs_schema_definition": body.get("outputs_schema_definition"),
            "transformations": body.get("transformations"),
            "metadata": (body.get("extra") or {}).get("metadata"),
            "session_count": 0,
        }
        with self._lock:
            if any(d["name"] == dataset["name"] for d in self._datasets.values()):
                return 409, {"detail": "Dataset with this name already exists."}
            self._datasets[dataset["id"]] = dataset
        return 200, self._dataset_view(dataset)

    def _datasets_list(self, request: RecordedRequest) -> tuple[int, Any]:
        name, contains, ids = request.param("name"), request.param("name_contains"), request.query.get("id")
        found = [
            self._dataset_view(d)
            for d in self.datasets.values()
            if (name is None or d["name"] == name)
            and (contains is None or contains in d["name"])
            and (not ids or d["id"] in ids)
        ]
        return 200, _page(found, request)

    def _dataset_get(self, request: RecordedRequest, dataset_id: str) -> tuple[int, Any]:
        dataset = self.datasets.get(dataset_id)
        return (200, self._dataset_view(dataset)) if dataset else (404, {"detail": "Dataset not found"})

    def _store_examples(self, dataset_id: str, items: list[Json]) -> list[Json] | None:
        stored = []
        with self._lock:
            if dataset_id not in self._datasets:
                return None
            for item in items:
                split = item.get("split") or ["base"]
                stamp = _now()
                example_id = str(item.get("id") or uuid.uuid4())
                example = {
                    "id": example_id,
                    "dataset_id": dataset_id,
                    "inputs": item.get("inputs"),
                    "outputs": item.get("outputs"),
                    # LangSmith keeps an example's splits in its metadata.
                    "metadata": {
                        **(item.get("metadata") or {}),
                        "dataset_split": [split] if isinstance(split, str) else split,
                    },
                    "created_at": item.get("created_at") or stamp,
                    "modified_at": stamp,
                    "source_run_id": item.get("source_run_id"),
                    "attachments": item.get("attachments"),
                }
                self._examples[example_id] = example
                stored.append(copy.deepcopy(example))
        return stored

    def _examples_bulk(self, request: RecordedRequest) -> tuple[int, Any]:
        items = request.json()
        stored = [self._store_examples(str(item["dataset_id"]), [item]) for item in items]
        if any(s is None for s in stored):
            return 404, {"detail": "Dataset not found"}
        return 200, [s[0] for s in stored if s]

    def _examples_multipart(self, request: RecordedRequest, dataset_id: str) -> tuple[int, Any]:
        grouped: dict[str, Json] = {}
        for name, content_type, data in parse_multipart(request.decoded, request.headers.get("content-type", "")):
            example_id, _, rest = name.partition(".")
            fields = grouped.setdefault(example_id, {"id": example_id})
            if rest.startswith("attachment."):
                attachments = fields.setdefault("attachments", {})
                attachments[rest.removeprefix("attachment.")] = {"content_type": content_type, "data": data}
            elif rest:
                fields[rest] = json.loads(data)
            else:
                fields.update(json.loads(data))
        stored = self._store_examples(dataset_id, list(grouped.values()))
        if stored is None:
            return 404, {"detail": "Dataset not found"}
        return 201, {"count": len(stored), "example_ids": [e["id"] for e in stored], "as_of": _now()}

    def _apply_example_updates(self, dataset_id: str | None, items: list[Json]) -> list[str] | None:
        # An update overwrites the fields it names and keeps the rest (LangSmith's ExampleUpdate); the splits live
        # in the metadata, so new metadata keeps the old splits unless the update names a split.
        with self._lock:
            examples = [self._examples.get(str(item["id"])) for item in items]
            if any(e is None or (dataset_id is not None and e["dataset_id"] != dataset_id) for e in examples):
                return None
            for example, item in zip(examples, items, strict=True):
                assert example is not None
                split = item.get("split") or example["metadata"].get("dataset_split") or ["base"]
                for field in ("inputs", "outputs", "metadata"):
                    if item.get(field) is not None:
                        example[field] = item[field]
                example["metadata"] = {
                    **(example["metadata"] or {}),
                    "dataset_split": [split] if isinstance(split, str) else split,
                }
                example["modified_at"] = _now()
            return [str(item["id"]) for item in items]

    def _examples_multipart_patch(self, request: RecordedRequest, dataset_id: str) -> tuple[int, Any]:
        grouped: dict[str, Json] = {}
        for name, _, data in parse_multipart(request.decoded, request.headers.get("content-type", "")):
            example_id, _, rest = name.partition(".")
            fields = grouped.setdefault(example_id, {"id": example_id})
            if rest.startswith("attachment"):
                raise ValueError(f"attachment updates are not served by the double ({name!r})")
            if rest:
                fields[rest] = json.loads(data)
            else:
                fields.update(json.loads(data))
        updated = self._apply_example_updates(dataset_id, list(grouped.values()))
        if updated is None:
            return 404, {"detail": "Example not found in this dataset"}
        return 200, {"count": len(updated), "example_ids": updated, "as_of": _now()}

    def _examples_bulk_patch(self, request: RecordedRequest) -> tuple[int, Any]:
        updated = self._apply_example_updates(None, request.json())
        if updated is None:
            return 404, {"detail": "Example not found"}
        return 200, {"message": f"{len(updated)} examples updated", "count": len(updated), "example_ids": updated}

    def _examples_delete(self, request: RecordedRequest) -> tuple[int, Any]:
        ids = request.query.get("example_ids") or []
        with self._lock:
            if not ids or any(i not in self._examples for i in ids):
                return 404, {"detail": "Example not found"}
            for example_id in ids:  # soft-deleted examples are no longer listed; the double just drops them
                del self._examples[example_id]
        return 200, {}

    def _example_delete(self, request: RecordedRequest, example_id: str) -> tuple[int, Any]:
        with self._lock:
            if self._examples.pop(example_id, None) is None:
                return 404, {"detail": "Example not found"}
        return 200, {}

    def _examples_list(self, request: RecordedRequest) -> tuple[int, Any]:
        dataset, ids, splits = request.param("dataset"), request.query.get("id"), request.query.get("splits")
        wanted = json.loads(request.param("metadata") or "{}")
        found = [
            {k: v for k, v in e.items() if k != "attachments"}
            for e in self.examples.values()
            if (dataset is None or e["dataset_id"] == dataset)
            and (not ids or e["id"] in ids)
            and (not splits or set(splits) & set(e["metadata"]["dataset_split"]))
            and all(e["metadata"].get(k) == v for k, v in wanted.items())
        ]
        return 200, _page(found, request)

    def _example_get(self, request: RecordedRequest, example_id: str) -> tuple[int, Any]:
        example = self.examples.get(example_id)
        if example is None:
            return 404, {"detail": "Example not found"}
        return 200, {k: v for k, v in example.items() if k != "attachments"}

    def _session_view(self, session: Json) -> Json:
        runs = [
            r
            for r in self.runs.values()
            if r.get("session_name") == session["name"] or r.get("session_id") == session["id"]
        ]
        return {**session, "run_count": len(runs)}

    def _sessions_post(self, request: RecordedRequest) -> tuple[int, Any]:
        body = request.json()
        with self._lock:
            existing = next((s for s in self._sessions.values() if s["name"] == body["name"]), None)
            if existing is not None and request.param("upsert") not in ("true", "True"):
                return 409, {"detail": "Session already exists."}
            if existing is not None:
                existing.update({k: v for k, v in body.items() if v is not None and k in existing and k != "id"})
                session = existing
            else:
                session = _session(str(body.get("id") or uuid.uuid4()), body)
                self._sessions[session["id"]] = session
            session = copy.deepcopy(session)
        return 200, self._session_view(session)

    def _sessions_list(self, request: RecordedRequest) -> tuple[int, Any]:
        name, datasets, ids = request.param("name"), request.query.get("reference_dataset"), request.query.get("id")
        found = [
            self._session_view(s)
            for s in self.sessions.values()
            if (name is None or s["name"] == name)
            and (not datasets or s["reference_dataset_id"] in datasets)
            and (not ids or s["id"] in ids)
        ]
        return 200, _page(found, request)

    def _session_get(self, request: RecordedRequest, session_id: str) -> tuple[int, Any]:
        session = self.sessions.get(session_id)
        return (200, self._session_view(session)) if session else (404, {"detail": "Session not found"})

    def _session_patch(self, request: RecordedRequest, session_id: str) -> tuple[int, Any]:
        body = request.json()
        with self._lock:
            session = self._sessions.get(session_id)
            if session is None:
                return 404, {"detail": "Session not found"}
            session.update({k: v for k, v in body.items() if v is not None and k in session and k != "id"})
            session = copy.deepcopy(session)
        return 200, self._session_view(session)


def _page(items: list[Json], request: RecordedRequest) -> list[Json]:
    offset = int(request.param("offset") or 0)
    return items[offset : offset + int(request.param("limit") or 100)]


def _session(session_id: str, body: Json) -> Json:
    return {
        "id": session_id,
        "name": body.get("name"),
        "description": body.get("description"),
        "extra": body.get("extra"),
        "start_time": body.get("start_time") or _now(),
        "end_time": body.get("end_time"),
        "reference_dataset_id": body.get("reference_dataset_id"),
        "tenant_id": TENANT_ID,
    }


_Route = Callable[..., tuple[int, Any]]
_ID = r"([^/]+)"
_ROUTES: list[tuple[str, str, _Route]] = [
    ("GET", "/info", LangSmithDouble._info),
    ("POST", "/runs/multipart", LangSmithDouble._runs_multipart),
    ("POST", "/runs/batch", LangSmithDouble._runs_batch),
    ("POST", "/runs", LangSmithDouble._runs_post),
    ("PATCH", f"/runs/{_ID}", LangSmithDouble._runs_patch),
    ("POST", "/feedback", LangSmithDouble._feedback_post),
    ("GET", "/feedback", LangSmithDouble._feedback_list),
    ("POST", "/datasets", LangSmithDouble._datasets_post),
    ("GET", "/datasets", LangSmithDouble._datasets_list),
    ("GET", f"/datasets/{_ID}", LangSmithDouble._dataset_get),
    ("POST", "/examples/bulk", LangSmithDouble._examples_bulk),
    ("POST", f"/v1/platform/datasets/{_ID}/examples", LangSmithDouble._examples_multipart),
    ("GET", "/examples", LangSmithDouble._examples_list),
    ("GET", f"/examples/{_ID}", LangSmithDouble._example_get),
    ("PATCH", f"/v1/platform/datasets/{_ID}/examples", LangSmithDouble._examples_multipart_patch),
    ("PATCH", "/examples/bulk", LangSmithDouble._examples_bulk_patch),
    ("DELETE", "/examples", LangSmithDouble._examples_delete),
    ("DELETE", f"/examples/{_ID}", LangSmithDouble._example_delete),
    ("POST", "/sessions", LangSmithDouble._sessions_post),
    ("GET", "/sessions", LangSmithDouble._sessions_list),
    ("GET", f"/sessions/{_ID}", LangSmithDouble._session_get),
    ("PATCH", f"/sessions/{_ID}", LangSmithDouble._session_patch),
]


def _handler_for(double: LangSmithDouble) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def _serve(self) -> None:
            if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
                body = self._read_chunks()
            else:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            split = urlsplit(self.path)
            request = RecordedRequest(
                method=self.command,
                path=split.path,
                query=parse_qs(split.query, keep_blank_values=True),
                headers={k.lower(): v for k, v in self.headers.items()},
                body=body,
            )
            status, answer = double.handle(request)
            request.status = status
            payload = json.dumps(answer).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        def _read_chunks(self) -> bytes:
            chunks = []
            while size := int(self.rfile.readline().split(b";")[0], 16):
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
            while self.rfile.readline() not in (b"\r\n", b"\n", b""):  # trailers
                pass
            return b"".join(chunks)

        do_GET = do_POST = do_PATCH = do_PUT = do_DELETE = _serve

        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - quiet test output
            return

    return Handler


def langsmith_double_fixture(**options: Any) -> Iterator[LangSmithDouble]:
    """For a pytest fixture: `yield from langsmith_double_fixture()` serves a double for the test, then stops it."""
    with LangSmithDouble(**options) as double:
        yield double
