"""Service-level endpoints: overall health and Prometheus metrics."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Response
from fastapi.responses import JSONResponse

from server.http.deps import AppServices, require_metrics_token
from server.ops.health import DEPENDENCIES
from server.ops.metrics import CONTENT_TYPE

router = APIRouter(tags=["system"])


@router.get("/health")
async def health(services: AppServices) -> JSONResponse:
    """Every dependency (database, OpenAI, Twilio, Calendly), cached briefly; 503 only when the database fails."""
    code, body = (await services.health.report()).view(DEPENDENCIES)
    return JSONResponse(body, status_code=code)


@router.get("/metrics", dependencies=[Depends(require_metrics_token)])
async def metrics(services: AppServices) -> Response:
    """Prometheus text exposition of this app's registry, for `Authorization: Bearer <METRICS_TOKEN>` only."""
    return Response(content=services.metrics.render(), media_type=CONTENT_TYPE)
