"""Admin API authentication: Bearer JWTs (HS256) signed with JWT_SECRET, with an expiry and a bounded lifetime."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import jwt

ALGORITHM = "HS256"
ISSUER = "asistente"
# A token may say it was issued this far in the future (clocks of two machines disagree a little), no further.
CLOCK_SKEW = timedelta(minutes=1)


class InvalidToken(Exception):
    """A token that is malformed, wrongly signed, expired or valid for too long. The message is for the log
    (it never holds the token); callers answer a plain 401 whatever it says."""


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


def _timestamp(claims: dict[str, Any], name: str) -> float:
    value = claims.get(name)
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise InvalidToken(f"claim {name} is not a number")
    return float(value)


def verify_admin_token(secret: str, token: str, *, now: datetime, max_lifetime: timedelta) -> AdminIdentity:
    """The identity in a valid token; raises `InvalidToken` otherwise.

    Expiry is checked against the injected clock (PyJWT would use the system clock), so tests and the server agree
    on what "now" is. A token valid for longer than `max_lifetime`, counted from its `iat` or from now, is refused:
    a leaked token must not work for years.
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
        raise InvalidToken(f"{type(exc).__name__}: {exc}") from exc
    issued, expires = _timestamp(claims, "iat"), _timestamp(claims, "exp")
    moment = now.timestamp()
    if expires <= moment:
        raise InvalidToken("token expired")
    if issued > moment + CLOCK_SKEW.total_seconds():
        raise InvalidToken("token issued in the future")
    limit = max_lifetime.total_seconds()
    if expires - issued > limit or expires - moment > limit:
        raise InvalidToken(f"token valid for longer than the {limit / 3600:g}-hour limit")
    if claims.get("scope") != "admin":
        raise InvalidToken("not an admin token")
    return AdminIdentity(subject=str(claims["sub"]))
