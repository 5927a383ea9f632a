"""Hand-written model answers, turned into cassettes by running them through the real agent.

Without access to a real model, a scenario's cassette is authored: `evals/authoring/<name>.yaml` lists the model's
answers in order (tool calls or text), and `asistente eval author NAME` plays them through the real graph, tools and
store exactly as a recording would, so the cassette holds the requests the agent really sent (and so its
fingerprint). The cassette says it was authored; `asistente eval --live --record NAME` replaces it with a real
model's answers.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import yaml
from pydantic import BaseModel, ConfigDict, Field

from evals.scenario import AUTHORING_DIR

AUTHORED_SOURCE = "authored"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ToolCall(_Strict):
    """One tool call the model makes."""

    name: str
    args: dict[str, Any] = {}


class Answer(_Strict):
    """One model answer: tool calls (run in parallel by the graph) or a text."""

    tools: list[ToolCall] = []
    text: str | None = None
    note: str = Field(default="", description="For the reader: which call this answers.")


class Authored(_Strict):
    """The answers of one scenario's model, in the order the agent asks for them."""

    answers: list[Answer] = Field(min_length=1)


def load_authored(name: str, directory: Path | None = None) -> Authored:
    """Read `evals/authoring/<name>.yaml` (or `<directory>/<name>.yaml`)."""
    path = (directory or AUTHORING_DIR) / f"{name}.yaml"
    if not path.is_file():
        raise FileNotFoundError(f"no authored answers at {path}")
    return Authored.model_validate(yaml.safe_load(path.read_text(encoding="utf-8")))


def _tokens(text: str) -> int:
    # A rough count (4 characters a token) so reports show plausible usage for authored cassettes.
    return max(1, len(text) // 4)


def completion(answer: Answer, index: int, request: dict[str, Any]) -> dict[str, Any]:
    """A `chat.completion` object as OpenAI sends it, for one authored answer."""
    message: dict[str, Any] = {"role": "assistant", "content": answer.text, "refusal": None}
    if answer.tools:
        message["tool_calls"] = [
            {
                "id": f"call_{index:02d}{n:02d}authored",
                "type": "function",
                "function": {"name": call.name, "arguments": json.dumps(call.args, ensure_ascii=False)},
            }
            for n, call in enumerate(answer.tools)
        ]
    prompt = _tokens(json.dumps(request.get("messages", []), ensure_ascii=False))
    output = _tokens(json.dumps(message, ensure_ascii=False))
    return {
        "id": f"chatcmpl-authored-{index:03d}",
        "object": "chat.completion",
        "created": 1795514702,
        "model": str(request.get("model", "")),
        "choices": [{"index": 0, "message": message, "finish_reason": "tool_calls" if answer.tools else "stop"}],
        "usage": {"prompt_tokens": prompt, "completion_tokens": output, "total_tokens": prompt + output},
    }


@dataclass
class AuthoredTransport(httpx.AsyncBaseTransport):
    """An OpenAI-compatible server in a transport: answers chat completions from the authored list, in order."""

    authored: Authored
    name: str
    served: int = 0
    requests: list[dict[str, Any]] = field(default_factory=list)

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        """The next authored answer; a 400 once they run out (the agent asked for more than was written)."""
        body = json.loads(request.content or b"{}")
        self.requests.append(body)
        if self.served >= len(self.authored.answers):
            message = f"{self.name}: all {self.served} authored answers used; the agent asked for another"
            return httpx.Response(400, json={"error": {"message": message, "type": "authoring"}})
        answer = self.authored.answers[self.served]
        self.served += 1
        return httpx.Response(200, json=completion(answer, self.served, body))
