"""An OpenAI-compatible chat completions server (non-streaming and streaming) that plays the assistant with
`model_policy`, reading the tool names from the request's `tools`.

Fault switches: `fault_status` (every request answered with it, e.g. 500), `hang` (requests wait while set); `gate`
holds requests that already arrived (to kill the worker mid-turn). Every request is counted; tool results seen are
kept, so a test can tell what a tool reported to the model.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from tests.reliability import model_policy
from tests.reliability.background import BackgroundServer, Gate


@dataclass
class ModelDouble:
    """The double's state; `server` serves it."""

    api_key: str
    fault_status: int | None = None
    hang: bool = False
    gate: Gate = field(default_factory=Gate)
    requests: int = 0
    answered: int = 0
    tool_results: list[tuple[str, str]] = field(default_factory=list)  # tool_call_id, content
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def __post_init__(self) -> None:
        app = Starlette(
            routes=[
                Route("/v1/chat/completions", self._completions, methods=["POST"]),
                Route("/chat/completions", self._completions, methods=["POST"]),
            ]
        )
        self.server = BackgroundServer(app, name="model")

    @property
    def base_url(self) -> str:
        """What OPENAI_BASE_URL points at."""
        return self.server.base_url + "/v1"

    def tool_result_codes(self) -> list[str]:
        """The `error` code of every failed tool result the model was shown ("" for successes)."""
        codes = []
        with self._lock:
            results = list(self.tool_results)
        for _, content in results:
            try:
                data = json.loads(content)
            except ValueError:
                continue
            codes.append("" if data.get("ok") else str(data.get("error", "")))
        return codes

    async def _completions(self, request: Request) -> Response:
        if request.headers.get("authorization") != f"Bearer {self.api_key}":
            return _error(401, "Incorrect API key provided.", "invalid_api_key")
        body = await request.json()
        with self._lock:
            self.requests += 1
        while self.hang:  # noqa: ASYNC110 - switched from the test's thread
            await asyncio.sleep(0.05)
        await self.gate.passage()
        if self.fault_status is not None:
            return _error(self.fault_status, "The server had an error while processing your request.", None)
        messages: list[dict[str, Any]] = body.get("messages", [])
        self._note_tool_results(messages)
        tools = {t["function"]["name"] for t in body.get("tools", []) if t.get("type") == "function"}
        message = model_policy.answer(messages, tools)
        with self._lock:
            self.answered += 1
        completion_id = f"chatcmpl-{uuid.uuid4().hex[:24]}"
        if body.get("stream"):
            return StreamingResponse(
                _chunks(completion_id, body.get("model", ""), message), media_type="text/event-stream"
            )
        finish = "tool_calls" if message.get("tool_calls") else "stop"
        return JSONResponse(
            {
                "id": completion_id,
                "object": "chat.completion",
                "created": int(time.time()),
                "model": body.get("model", ""),
                "choices": [{"index": 0, "message": message, "finish_reason": finish, "logprobs": None}],
                "usage": {"prompt_tokens": 100, "completion_tokens": 10, "total_tokens": 110},
            }
        )

    def _note_tool_results(self, messages: list[dict[str, Any]]) -> None:
        with self._lock:
            seen = {call_id for call_id, _ in self.tool_results}
            for m in messages:
                if m.get("role") == "tool" and m.get("tool_call_id") not in seen:
                    self.tool_results.append((str(m.get("tool_call_id")), model_policy.text_of(m)))


async def _chunks(completion_id: str, model: str, message: dict[str, Any]) -> AsyncIterator[str]:
    """The same answer as server-sent events: the content or the tool calls in one delta, then the finish."""

    def event(delta: dict[str, Any], finish: str | None) -> str:
        chunk = {
            "id": completion_id,
            "object": "chat.completion.chunk",
            "created": int(time.time()),
            "model": model,
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
        }
        return f"data: {json.dumps(chunk, ensure_ascii=False)}\n\n"

    if message.get("tool_calls"):
        calls = [{"index": i, **call} for i, call in enumerate(message["tool_calls"])]
        yield event({"role": "assistant", "content": None, "tool_calls": calls}, None)
        yield event({}, "tool_calls")
    else:
        yield event({"role": "assistant", "content": message["content"]}, None)
        yield event({}, "stop")
    yield "data: [DONE]\n\n"


def _error(status: int, message: str, code: str | None) -> Response:
    body = {
        "error": {
            "message": message,
            "type": "server_error" if status >= 500 else "invalid_request_error",
            "code": code,
        }
    }
    return JSONResponse(body, status_code=status)
