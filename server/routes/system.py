"""Service-level endpoints: overall health and Prometheus metrics."""

from __future__ import annotations

from fastapi import APIRouter, Response
from fastapi.responses import JSONResponse

from server.deps import State
from server.health import DEPENDENCIES
from server.metrics import CONTENT_TYPE

router = APIRouter(tags=["system"])


@router.get("/health")
async def health(state: State) -> JSONResponse:
    """Every dependency (database, OpenAI, Twilio, Calendly), cached briefly; 503 only when the database fails."""
    code, body = (await state.health.report()).view(DEPENDENCIES)
    return JSONResponse(body, status_code=code)


@router.get("/metrics")
async def metrics(state: State) -> Response:
    """Prometheus text exposition of this app's registry."""
    return Response(content=state.metrics.render(), media_type=CONTENT_TYPE)
