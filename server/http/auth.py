"""Admin API authentication: Bearer JWTs (HS256) signed with JWT_SECRET, with an expiry."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import jwt

ALGORITHM = "HS256"
ISSUER = "asistente"


class InvalidToken(Exception):
    """A token that is missing, malformed, wrongly signed or expired."""


@dataclass(frozen=True)
class AdminIdentity:
    """Who is calling the admin API (the token's subject)."""

    subject: str


def mint_admin_token(secret: str, *, subject: str, now: datetime, ttl: timedelta) -> str:
    """A signed admin token for `subject`, valid for `ttl` from `now`."""
    claims: dict[str, Any] = {
        "sub": subject,
        "iss": ISSUER,
        "iat": int(now.timestamp()),
        "exp": int((now + ttl).timestamp()),
        "scope": "admin",
    }
    return jwt.encode(claims, secret, algorithm=ALGORITHM)


def verify_admin_token(secret: str, token: str, *, now: datetime) -> AdminIdentity:
    """The identity in a valid token; raises `InvalidToken` otherwise.

    Expiry is checked against the injected clock (PyJWT would use the system clock), so tests and the server agree
    on what "now" is.
    """
    try:
        claims = jwt.decode(
            token,
            secret,
            algorithms=[ALGORITHM],
            issuer=ISSUER,
            options={"require": ["exp", "iat", "sub", "iss"], "verify_exp": False, "verify_iat": False},
        )
    except jwt.PyJWTError as exc:
        raise InvalidToken(str(exc)) from exc
    expires = claims.get("exp")
    if not isinstance(expires, int | float) or expires <= now.timestamp():
        raise InvalidToken("token expired")
    if claims.get("scope") != "admin":
        raise InvalidToken("not an admin token")
    return AdminIdentity(subject=str(claims["sub"]))
