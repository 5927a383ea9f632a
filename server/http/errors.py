"""Every error answered as JSON with a clear 4xx, a body size limit, and request metrics."""

from __future__ import annotations

import json
import logging

from fastapi import FastAPI, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import ValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from core.sanitize import storable, storable_text
from server.ops.metrics import ServerMetrics

logger = logging.getLogger(__name__)


def error_body(message: str, **extra: object) -> dict[str, object]:
    """The JSON shape of every error answer."""
    return {"error": message, **extra}


def invalid_fields(exc: ValidationError) -> str:
    """The fields a validation error is about, for a short error message ('MessageSid, NumMedia')."""
    fields = sorted({".".join(str(p) for p in error["loc"]) for error in exc.errors()})
    return ", ".join(f for f in fields if f) or "body"


def install_error_handlers(app: FastAPI) -> None:
    """JSON answers for HTTP errors, validation errors (400 for unreadable JSON, 422 otherwise) and the unexpected."""

    async def http_error(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, StarletteHTTPException)
        detail = storable_text(exc.detail) if isinstance(exc.detail, str) else "request refused"
        return JSONResponse(error_body(detail), status_code=exc.status_code, headers=exc.headers)

    async def validation_error(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, RequestValidationError)
        # Without the `input` pydantic echoes: the caller has it, it may be a deeply nested body, and it may hold
        # what UTF-8 cannot encode (an unpaired surrogate, JSON "\ud800"), which would turn this 422 into a 500.
        found = [{k: v for k, v in error.items() if k != "input"} for error in exc.errors()]
        errors = storable(jsonable_encoder(found, custom_encoder={bytes: lambda b: b.decode("utf-8", "replace")}))
        if any(e.get("type") == "json_invalid" for e in errors):
            return JSONResponse(error_body("body is not valid JSON"), status_code=400)
        return JSONResponse(error_body("invalid request", detail=errors), status_code=422)

    async def unexpected(request: Request, exc: Exception) -> JSONResponse:
        logger.exception("unhandled error", extra={"path": request.url.path})
        return JSONResponse(error_body("internal error"), status_code=500)

    app.add_exception_handler(StarletteHTTPException, http_error)
    app.add_exception_handler(RequestValidationError, validation_error)
    app.add_exception_handler(Exception, unexpected)


async def _send_json(send: Send, status: int, body: dict[str, object]) -> None:
    payload = json.dumps(body).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(payload)).encode())],
        }
    )
    await send({"type": "http.response.body", "body": payload})


class BodyLimitMiddleware:
    """Refuse bodies over `max_bytes` with 413 before any handler (so nothing is half-read or half-stored).

    The body is read here, up to the limit, and replayed to the app: a chunked upload without Content-Length is
    caught as well as one that announces its size.
    """

    def __init__(self, app: ASGIApp, *, max_bytes: int) -> None:
        self._app = app
        self._max = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """ASGI entry point."""
        if scope["type"] != "http":
            await self._app(scope, receive, send)
            return
        declared = dict(scope["headers"]).get(b"content-length")
        if declared is not None:
            if not declared.isdigit():
                await _send_json(send, 400, error_body("invalid Content-Length"))
                return
            if int(declared) > self._max:
                await _send_json(send, 413, error_body(f"body larger than {self._max} bytes"))
                return
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self._max:
                await _send_json(send, 413, error_body(f"body larger than {self._max} bytes"))
                return
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        body = b"".join(chunks)
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        await self._app(scope, replay, send)


class RequestMetricsMiddleware:
    """Count requests per route template (not per raw path, which would explode the label set) and status."""

    def __init__(self, app: ASGIApp, *, metrics: ServerMetrics) -> None:
        self._app = app
        self._metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """ASGI entry point."""
        if scope["type"] != "http":
            await self._app(scope, receive, send)
            return
        status = 500

        async def record(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        try:
            await self._app(scope, receive, record)
        finally:
            route = scope.get("route")
            template = getattr(route, "path", None) or "unmatched"
            self._metrics.http_requests.labels(scope.get("method", ""), template, str(status)).inc()
