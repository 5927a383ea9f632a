"""FastAPI dependencies: the app's services, admin authentication, content types and verified webhook bodies."""

from __future__ import annotations

import logging
import secrets
from datetime import timedelta
from typing import Annotated
from urllib.parse import parse_qsl

from fastapi import Depends, HTTPException, Request, status
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from core.urls import public_url
from integrations.twilio.signature import twilio_signature_valid
from server.http.auth import AdminIdentity, InvalidToken, verify_admin_token
from server.wiring import Services

logger = logging.getLogger(__name__)

FORM = "application/x-www-form-urlencoded"
JSON = "application/json"


async def get_services(request: Request) -> Services:
    """The services of the app serving this request (opened by the lifespan). `async` although it awaits nothing:
    FastAPI runs a plain `def` dependency in its thread pool, a thread hop on every request (the webhook's CPU)."""
    services: Services | None = getattr(request.app.state, "services", None)
    if services is None:
        raise HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE, "server is starting or stopping")
    return services


AppServices = Annotated[Services, Depends(get_services)]


def require_content_type(request: Request, expected: str) -> None:
    """Refuse a body of another media type with 415 (parameters such as charset are allowed)."""
    media_type = request.headers.get("content-type", "").split(";", 1)[0].strip().lower()
    if media_type != expected:
        raise HTTPException(status.HTTP_415_UNSUPPORTED_MEDIA_TYPE, f"expected Content-Type {expected}")


def json_body(request: Request) -> None:
    """Dependency: the request must carry JSON."""
    require_content_type(request, JSON)


JsonBody = Depends(json_body)

_bearer = HTTPBearer(auto_error=False)


Bearer = Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]


def unauthorized() -> HTTPException:
    """The one answer to every refused credential: which check failed is for the log, not for the caller."""
    return HTTPException(
        status.HTTP_401_UNAUTHORIZED, "missing or invalid bearer token", headers={"WWW-Authenticate": "Bearer"}
    )


def _route(request: Request) -> str:
    # The template ('/api/conversations/{wa_id}'), not the path: a path may carry a customer's number.
    return str(getattr(request.scope.get("route"), "path", "unmatched"))


def require_admin(request: Request, services: AppServices, credentials: Bearer) -> AdminIdentity:
    """The admin calling, from a valid `Authorization: Bearer <JWT>`; a plain 401 otherwise (the reason is logged)."""
    secret = services.settings.jwt_secret
    if secret is None:
        raise HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE, "admin API disabled: JWT_SECRET is not set")
    if credentials is None:
        logger.warning("admin request refused", extra={"route": _route(request), "reason": "no bearer token"})
        raise unauthorized()
    try:
        return verify_admin_token(
            secret.get_secret_value(),
            credentials.credentials,
            now=services.clock.now(),
            max_lifetime=timedelta(hours=services.settings.admin_token_max_hours),
        )
    except InvalidToken as exc:
        logger.warning("admin request refused", extra={"route": _route(request), "reason": str(exc)})
        raise unauthorized() from None


Admin = Annotated[AdminIdentity, Depends(require_admin)]


def require_metrics_token(request: Request, services: AppServices, credentials: Bearer) -> None:
    """`Authorization: Bearer <METRICS_TOKEN>` (a plain 401 otherwise); without METRICS_TOKEN the app serves no
    metrics (404): they are then scraped from `asistente serve --metrics-port`, off the public address."""
    token = services.settings.metrics_token
    if token is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, "Not Found")
    given = credentials.credentials if credentials is not None else ""
    # Compared in constant time: the answer must not tell how much of a guess was right.
    if not secrets.compare_digest(given.encode(), token.get_secret_value().encode()):
        logger.warning("metrics scrape refused", extra={"reason": "missing or wrong bearer token"})
        raise unauthorized()


async def verified_twilio_form(request: Request, services: AppServices) -> dict[str, str]:
    """The form Twilio posted, after checking `X-Twilio-Signature` against PUBLIC_BASE_URL + path (+ query).

    Without TWILIO_AUTH_TOKEN every webhook is refused (403) unless the app was started with
    `allow_unsigned_webhooks` (development only).
    """
    require_content_type(request, FORM)
    raw = await request.body()
    try:
        text = raw.decode("utf-8")
        pairs = parse_qsl(text, keep_blank_values=True, strict_parsing=True, errors="strict") if text else []
        params = dict(pairs)
    except (UnicodeDecodeError, ValueError):
        raise HTTPException(status.HTTP_400_BAD_REQUEST, "malformed form body") from None
    token = services.settings.twilio_auth_token
    if token is None:
        if not services.options.allow_unsigned_webhooks:
            services.metrics.webhook_rejections.labels("twilio", "not_configured").inc()
            raise HTTPException(status.HTTP_403_FORBIDDEN, "Twilio is not configured: unsigned webhooks refused")
        return params
    url = public_url(str(services.settings.public_base_url), request.url.path, request.url.query)
    if not twilio_signature_valid(
        token.get_secret_value(),
        url,
        params,
        request.headers.get("x-twilio-signature"),
        signature_settings=request.headers.get("x-twilio-webhooks-signature-settings"),
    ):
        services.metrics.webhook_rejections.labels("twilio", "bad_signature").inc()
        logger.warning("twilio webhook refused: bad or missing signature", extra={"path": request.url.path})
        raise HTTPException(status.HTTP_403_FORBIDDEN, "invalid Twilio signature")
    return params


TwilioForm = Annotated[dict[str, str], Depends(verified_twilio_form)]
