"""The model and Twilio doubles every benchmark shares, served by one process of their own (`python -m bench.doubles`).

Both Asistente and the bare loop talk to them over HTTP, exactly as they would to OpenAI and Twilio, so a figure's
difference is the product's own work. The model plays a one-tool-call turn: the customer's message gets a
`check_availability` call, its result gets a short text. A separate process keeps the doubles off the measured
process's event loop and CPU time.

What the doubles saw is read back over HTTP: every model request's size (JSON characters of its messages and tool
schemas) and every message Twilio accepted, stamped with `time.monotonic()` (CLOCK_MONOTONIC: one clock for every
process on the machine, so a benchmark subtracts its own stamps from it).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

ROOT = Path(__file__).resolve().parents[1]
MODEL_API_KEY = "sk-bench-double"
MODEL_NAME = "bench-double"  # a name no client prefers the Responses API for: the double speaks chat completions
TWILIO_ACCOUNT_SID = "AC" + "0" * 30 + "42"
REPLY = "Hay huecos mañana por la mañana y por la tarde. ¿Te reservo alguno?"


@dataclass
class _State:
    model_delay: float = 0.0
    prompts: list[tuple[str, int]] = field(default_factory=list)  # model name, JSON characters
    sent: list[tuple[str, str, float]] = field(default_factory=list)  # to, body, monotonic
    changed: asyncio.Condition = field(default_factory=asyncio.Condition)


def _answer(messages: list[dict[str, Any]], tools: set[str]) -> dict[str, Any]:
    """A tool result is answered with text; a customer's message with one check_availability call."""
    if messages and messages[-1].get("role") == "tool" or "check_availability" not in tools:
        return {"role": "assistant", "content": REPLY}
    tomorrow = (datetime.now(ZoneInfo("Europe/Madrid")) + timedelta(days=1)).date().isoformat()
    arguments = json.dumps({"service": "corte", "date_from": tomorrow, "date_to": tomorrow})
    call = {"id": f"call_{uuid.uuid4().hex[:24]}", "type": "function", "function": {}}
    call["function"] = {"name": "check_availability", "arguments": arguments}
    return {"role": "assistant", "content": None, "tool_calls": [call]}


def build_app() -> Starlette:
    """The doubles' ASGI app: chat completions, Twilio Messages, and the benchmark's own read-back endpoints."""
    state = _State()

    async def completions(request: Request) -> Response:
        body = await request.json()
        messages: list[dict[str, Any]] = body.get("messages", [])
        tools = body.get("tools", [])
        size = len(json.dumps({"messages": messages, "tools": tools}, ensure_ascii=False))
        state.prompts.append((str(body.get("model", "")), size))
        if state.model_delay:
            await asyncio.sleep(state.model_delay)
        message = _answer(messages, {t["function"]["name"] for t in tools if t.get("type") == "function"})
        return JSONResponse(
            {
                "id": f"chatcmpl-{uuid.uuid4().hex[:24]}",
                "object": "chat.completion",
                "created": int(time.time()),
                "model": body.get("model", ""),
                "choices": [
                    {
                        "index": 0,
                        "message": message,
                        "finish_reason": "tool_calls" if message.get("tool_calls") else "stop",
                        "logprobs": None,
                    }
                ],
                "usage": {"prompt_tokens": 0, "completion_tokens": 0, "total_tokens": 0},
            }
        )

    async def messages(request: Request) -> Response:
        if request.method == "GET":  # a delivery lookup: nothing to find (sends never fail here)
            return JSONResponse({"messages": [], "next_page_uri": None, "page": 0, "page_size": 50})
        form = {k: str(v) for k, v in (await request.form()).items()}
        moment = time.monotonic()
        async with state.changed:
            state.sent.append((form.get("To", ""), form.get("Body", ""), moment))
            state.changed.notify_all()
        sid = f"SM{uuid.uuid4().hex}"
        account = request.path_params["account"]
        return JSONResponse(
            {
                "sid": sid,
                "account_sid": account,
                "to": form.get("To"),
                "from": form.get("From"),
                "body": form.get("Body", ""),
                "status": "queued",
                "direction": "outbound-api",
                "num_segments": "1",
                "uri": f"/2010-04-01/Accounts/{account}/Messages/{sid}.json",
            },
            status_code=201,
        )

    async def account(request: Request) -> Response:
        return JSONResponse({"sid": request.path_params["account"], "status": "active"})

    async def wait(request: Request) -> Response:
        # Long poll: answers when more than `after` messages went to `to`, with the stamp of message `after` + 1.
        to, after = request.query_params["to"], int(request.query_params["after"])
        timeout = float(request.query_params.get("timeout", "30"))

        def found() -> list[float]:
            return [at for sent_to, _, at in state.sent if sent_to == to]

        async with state.changed:
            try:
                await asyncio.wait_for(state.changed.wait_for(lambda: len(found()) > after), timeout)
            except TimeoutError:
                return JSONResponse({"count": len(found()), "at": None})
            stamps = found()
        return JSONResponse({"count": len(stamps), "at": stamps[after]})

    async def stats(request: Request) -> Response:
        return JSONResponse({"prompts": state.prompts, "sent": state.sent})

    async def control(request: Request) -> Response:
        body = await request.json()
        if body.get("reset"):
            state.prompts.clear()
            state.sent.clear()
        if "model_delay_seconds" in body:
            state.model_delay = float(body["model_delay_seconds"])
        return JSONResponse({"ok": True})

    prefix = "/2010-04-01/Accounts/{account}"
    return Starlette(
        routes=[
            Route("/v1/chat/completions", completions, methods=["POST"]),
            Route(prefix + "/Messages.json", messages, methods=["GET", "POST"]),
            Route(prefix + ".json", account, methods=["GET"]),
            Route("/bench/wait", wait, methods=["GET"]),
            Route("/bench/stats", stats, methods=["GET"]),
            Route("/bench/control", control, methods=["POST"]),
        ]
    )


@dataclass
class Doubles:
    """A client of the doubles' process: where they listen, and what they saw."""

    base_url: str

    @property
    def model_url(self) -> str:
        """What OPENAI_BASE_URL (or ChatOpenAI's base_url) points at."""
        return self.base_url + "/v1"

    @property
    def twilio_url(self) -> str:
        """What TWILIO_API_BASE_URL points at."""
        return self.base_url

    async def wait_sent(self, to: str, after: int, wait_seconds: float = 30.0) -> tuple[int, float]:
        """Wait until more than `after` messages went to `to`; (how many now, the monotonic stamp of the one
        numbered `after` + 1). Raises TimeoutError when none came within `wait_seconds` (the double's long poll)."""
        async with httpx.AsyncClient(timeout=wait_seconds + 5) as client:
            answer = await client.get(
                self.base_url + "/bench/wait", params={"to": to, "after": after, "timeout": wait_seconds}
            )
        data = answer.raise_for_status().json()
        if data["at"] is None:
            raise TimeoutError(f"no message to the customer within {wait_seconds:g} s")
        return int(data["count"]), float(data["at"])

    async def stats(self) -> tuple[list[tuple[str, int]], list[tuple[str, str, float]]]:
        """(each model request as (model name, size in JSON characters), every message sent as (to, body,
        monotonic stamp)), oldest first."""
        async with httpx.AsyncClient(timeout=60) as client:
            data = (await client.get(self.base_url + "/bench/stats")).raise_for_status().json()
        prompts = [(str(model), int(size)) for model, size in data["prompts"]]
        return prompts, [(str(t), str(b), float(at)) for t, b, at in data["sent"]]

    async def control(self, *, reset: bool = False, model_delay_seconds: float | None = None) -> None:
        """Forget what was seen (`reset`) and/or make every model answer take this long."""
        body: dict[str, Any] = {"reset": reset}
        if model_delay_seconds is not None:
            body["model_delay_seconds"] = model_delay_seconds
        async with httpx.AsyncClient(timeout=10) as client:
            (await client.post(self.base_url + "/bench/control", json=body)).raise_for_status()


@contextmanager
def running_doubles(port: int = 0) -> Iterator[Doubles]:
    """Start the doubles' process (on a free port unless `port`), wait until it answers, stop it on exit."""
    if not port:
        import socket

        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port = int(sock.getsockname()[1])
    process = subprocess.Popen(  # noqa: S603 - our own module, with this interpreter
        [sys.executable, "-m", "bench.doubles", "--port", str(port)], cwd=ROOT
    )
    doubles = Doubles(f"http://127.0.0.1:{port}")
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                httpx.get(doubles.base_url + "/bench/stats", timeout=1).raise_for_status()
                break
            except httpx.HTTPError:
                if process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError("the benchmark doubles did not start") from None
                time.sleep(0.05)
        yield doubles
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def main() -> None:
    """Serve the doubles until terminated."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    uvicorn.run(build_app(), host="127.0.0.1", port=args.port, log_level="warning", access_log=False, lifespan="off")


if __name__ == "__main__":
    main()
