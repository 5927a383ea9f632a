"""Model answers on file: replayed per model client, recorded from any OpenAI-compatible server, and fingerprinted.

A cassette keeps, beside the interactions, the fingerprint of what the agent sent: the model, a hash of the static
system prompt (the first message) and a hash of the tool schemas. Replay compares every request with it; the first
request that differs is answered with an HTTP 400 naming the scenario and what changed ("stale cassette:
re-record"), so a prompt or tool edit can never pass on answers recorded for another prompt.

The file is vcrpy's cassette format (version 1, request/response interactions) so vcrpy and pytest-recording read
it, but playback is an httpx transport given to the one model client: vcrpy patches HTTP libraries process-wide,
and concurrent cases in one event loop must each replay their own cassette. Requests are played in order; the
static prompt and the tool schemas are stored as their hashes (they are the fingerprint) so that cassettes stay
readable and diffs show the conversation.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import yaml

CHAT_PATH = "/chat/completions"
_KEPT_RESPONSE_HEADERS = ("content-type", "x-request-id", "openai-processing-ms")
STALE = "stale cassette: re-record"


class CassetteError(ValueError):
    """A cassette file that cannot be used (missing, not a cassette)."""


def _digest(value: object) -> str:
    encoded = json.dumps(value, sort_keys=True, ensure_ascii=False).encode()
    return "sha256:" + hashlib.sha256(encoded).hexdigest()[:16]


@dataclass(frozen=True)
class Fingerprint:
    """What decides whether recorded answers still apply: the model and the exact prompt and tools it was shown."""

    model: str
    prompt: str
    tools: str

    @classmethod
    def of_request(cls, body: dict[str, Any]) -> Fingerprint:
        """The fingerprint of one chat-completions request body."""
        messages = body.get("messages") or [{}]
        first = messages[0] if messages[0].get("role") in ("system", "developer") else {}
        return cls(str(body.get("model", "")), _digest(first.get("content")), _digest(body.get("tools", [])))

    def differences(self, other: Fingerprint) -> list[str]:
        """What changed from `self` (recorded) to `other` (sent now), in words."""
        changed = []
        if self.model != other.model:
            changed.append(f"model {self.model} -> {other.model}")
        if self.prompt != other.prompt:
            changed.append("the system prompt changed")
        if self.tools != other.tools:
            changed.append("the tool schemas changed")
        return changed

    def as_dict(self) -> dict[str, str]:
        """For the cassette file."""
        return {"model": self.model, "prompt": self.prompt, "tools": self.tools}


def _stored_body(body: dict[str, Any]) -> dict[str, Any]:
    # The fingerprint carries the static prompt and the tools; the rest (context, history) is what a reviewer reads.
    stored = dict(body)
    messages = list(stored.get("messages") or [])
    if messages and messages[0].get("role") in ("system", "developer"):
        messages[0] = {**messages[0], "content": _digest(messages[0].get("content"))}
    stored["messages"] = messages
    if "tools" in stored:
        stored["tools"] = _digest(stored["tools"])
    return stored


def _interaction(request: httpx.Request, body: dict[str, Any], response: httpx.Response) -> dict[str, Any]:
    headers = {k: [v] for k, v in response.headers.items() if k.lower() in _KEPT_RESPONSE_HEADERS}
    return {
        "request": {
            "method": request.method,
            "uri": f"https://api.openai.com/v1{CHAT_PATH}",
            "body": json.dumps(_stored_body(body), ensure_ascii=False, indent=1),
            "headers": {"content-type": ["application/json"]},
        },
        "response": {
            "status": {"code": response.status_code, "message": response.reason_phrase},
            "headers": headers,
            "body": {"string": _pretty(response.text)},
        },
    }


def _pretty(text: str) -> str:
    # Indented JSON reads (and diffs) better than one long line; the client parses it the same.
    try:
        return json.dumps(json.loads(text), ensure_ascii=False, indent=1)
    except ValueError:
        return text


def _error(status: int, message: str) -> httpx.Response:
    # 400: the OpenAI client does not retry it, so the turn fails at once with this message.
    return httpx.Response(status, json={"error": {"message": message, "type": "cassette", "code": "cassette"}})


def _fingerprint(path: Path, found: object) -> Fingerprint:
    keys = ("model", "prompt", "tools")
    if not isinstance(found, dict) or set(found) != set(keys) or not all(isinstance(found[k], str) for k in keys):
        raise CassetteError(f"{path}: the fingerprint needs exactly model, prompt and tools (strings); re-record it")
    return Fingerprint(found["model"], found["prompt"], found["tools"])


@dataclass
class Cassette:
    """A cassette file's content: the fingerprint, where it came from, and the interactions in order."""

    name: str
    fingerprint: Fingerprint | None
    interactions: list[dict[str, Any]]
    source: str = ""

    @classmethod
    def load(cls, path: Path) -> Cassette:
        """Read `path`; raise CassetteError when it is missing or not a cassette."""
        if not path.is_file():
            raise CassetteError(f"no cassette at {path}; record it with `asistente eval --live --record {path.stem}`")
        try:
            data = yaml.safe_load(path.read_text(encoding="utf-8"))
        except yaml.YAMLError as exc:
            mark = getattr(exc, "problem_mark", None)
            line = f" (line {mark.line + 1})" if mark is not None else ""
            raise CassetteError(f"{path} is not valid YAML{line}; re-record it") from None
        if not isinstance(data, dict) or not isinstance(data.get("interactions"), list):
            raise CassetteError(f"{path} is not a cassette (no `interactions` list)")
        found = data.get("fingerprint")
        fingerprint = _fingerprint(path, found) if found is not None else None
        return cls(path.stem, fingerprint, data["interactions"], str(data.get("source", "")))

    def save(self, path: Path, header: str = "") -> None:
        """Write the cassette (vcrpy format version 1, plus `fingerprint` and `source`)."""
        data = {
            "version": 1,
            "source": self.source,
            "fingerprint": self.fingerprint.as_dict() if self.fingerprint else None,
            "interactions": self.interactions,
        }
        text = yaml.dump(data, Dumper=_ReadableDumper, allow_unicode=True, sort_keys=False, width=120)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(header + text, encoding="utf-8")


class _ReadableDumper(yaml.SafeDumper):
    """Multi-line strings (the JSON bodies) as literal blocks, so a cassette diff reads line by line."""


def _literal(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    style = "|" if "\n" in value else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_ReadableDumper.add_representer(str, _literal)


def _body(request: httpx.Request) -> dict[str, Any]:
    try:
        parsed = json.loads(request.content or b"{}")
    except ValueError:
        return {}
    return parsed if isinstance(parsed, dict) else {}


@dataclass
class ReplayTransport(httpx.AsyncBaseTransport):
    """Answers one model client's requests from a cassette, in order, while the agent sends what was recorded."""

    cassette: Cassette
    played: int = 0
    stale: str | None = None
    exhausted: bool = False

    @property
    def recorded(self) -> int:
        """Interactions in the cassette."""
        return len(self.cassette.interactions)

    @property
    def fully_played(self) -> bool:
        """Every recorded answer was used."""
        return self.played == self.recorded

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        """The next recorded answer, or a 400 when the request no longer matches the recording."""
        if not request.url.path.endswith(CHAT_PATH):
            return _error(400, f"cassette {self.cassette.name}: only {CHAT_PATH} is recorded, not {request.url.path}")
        sent = Fingerprint.of_request(_body(request))
        recorded = self.cassette.fingerprint
        if recorded is None or recorded != sent:
            changes = recorded.differences(sent) if recorded else ["the cassette has no fingerprint"]
            self.stale = f"{STALE} {self.cassette.name} ({'; '.join(changes)})"
            return _error(400, self.stale)
        if self.played >= self.recorded:
            self.exhausted = True
            return _error(
                400,
                f"cassette {self.cassette.name}: all {self.recorded} answers played; the agent asked "
                "for more (the conversation took another path)",
            )
        response = self.cassette.interactions[self.played]["response"]
        self.played += 1
        body = response["body"]["string"]
        headers = {k: v[0] if isinstance(v, list) else v for k, v in response.get("headers", {}).items()}
        return httpx.Response(response["status"]["code"], headers=headers, content=body.encode())


@dataclass
class RecordingTransport(httpx.AsyncBaseTransport):
    """Forwards to a real transport (a model server) and keeps every chat-completions exchange for the cassette."""

    inner: httpx.AsyncBaseTransport
    name: str
    source: str
    interactions: list[dict[str, Any]] = field(default_factory=list)
    fingerprints: set[Fingerprint] = field(default_factory=set)

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        """Send, read the whole answer, and record it."""
        response = await self.inner.handle_async_request(request)
        if not request.url.path.endswith(CHAT_PATH):
            return response
        # Read (and decoded) once: the client and the cassette both get the plain body, without the encoding headers
        # that would make httpx decode it a second time (OpenAI answers gzip).
        answered = httpx.Response(
            response.status_code, headers=_plain(response.headers), content=await response.aread()
        )
        body = _body(request)
        self.fingerprints.add(Fingerprint.of_request(body))
        self.interactions.append(_interaction(request, body, answered))
        return answered

    def cassette(self) -> Cassette:
        """What was recorded; one fingerprint for the whole conversation (the agent's prompt does not change)."""
        if len(self.fingerprints) > 1:
            raise CassetteError(f"{self.name}: the agent sent {len(self.fingerprints)} different prompts in one run")
        fingerprint = next(iter(self.fingerprints), None)
        return Cassette(self.name, fingerprint, self.interactions, self.source)

    async def aclose(self) -> None:
        """Close the transport underneath."""
        await self.inner.aclose()


def _plain(headers: httpx.Headers) -> dict[str, str]:
    skip = {"content-encoding", "content-length", "transfer-encoding"}
    return {k: v for k, v in headers.items() if k.lower() not in skip}
