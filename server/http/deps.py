"""FastAPI dependencies: the app's services, admin authentication, content types and verified webhook bodies."""

from __future__ import annotations

import logging
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


def get_services(request: Request) -> Services:
    """The services of the app serving this request (opened by the lifespan)."""
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


def require_admin(
    services: AppServices, credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]
) -> AdminIdentity:
    """The admin calling, from a valid `Authorization: Bearer <JWT>`; 401 otherwise."""
    secret = services.settings.jwt_secret
    if secret is None:
        raise HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE, "admin API disabled: JWT_SECRET is not set")
    challenge = {"WWW-Authenticate": "Bearer"}
    if credentials is None:
        raise HTTPException(status.HTTP_401_UNAUTHORIZED, "missing bearer token", headers=challenge)
    try:
        return verify_admin_token(secret.get_secret_value(), credentials.credentials, now=services.clock.now())
    except InvalidToken as exc:
        raise HTTPException(status.HTTP_401_UNAUTHORIZED, f"invalid token: {exc}", headers=challenge) from None


Admin = Annotated[AdminIdentity, Depends(require_admin)]


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
