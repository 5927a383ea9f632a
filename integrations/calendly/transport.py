"""Talking HTTP to the Calendly API v2: authenticated requests, rate limits, retries, errors and pagination.

The access token is sent on every request and appears nowhere else (not in logs, reprs or exception messages).

Rate limits: a 429 is waited out only when its reset is short (`max_rate_limit_wait`, 5 s by default) and the
waits of one request stay within `rate_limit_budget` (8 s); beyond that `CalendlyRateLimited` is raised at once,
with the reset, so a customer's turn or an admin request answers "try again shortly" instead of hanging for a
minute. A caller making many requests (the admin sync) shares one budget among them with `rate_limit_budget()`.
"""

from __future__ import annotations

import asyncio
import logging
import math
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any, TypeVar
from urllib.parse import parse_qsl, urlsplit

import httpx
from pydantic import BaseModel

from integrations.calendly.models import CalendlyApiError, CalendlyRateLimited, CalendlyUnavailable, ErrorDetail

logger = logging.getLogger(__name__)

Sleep = Callable[[float], Awaitable[None]]
Query = list[tuple[str, str]]
ModelT = TypeVar("ModelT", bound=BaseModel)

# The largest page Calendly serves; list endpoints ask for it so long lists take few requests.
PAGE_SIZE = "100"
_MAX_PAGES = 100
_DEFAULT_RESET_SECONDS = 60.0
_MAX_RESET_SECONDS = 86_400.0
# Waits a customer's turn or an admin request can afford: one reset of at most 5 s, at most 8 s in all.
DEFAULT_MAX_RATE_LIMIT_WAIT = 5.0
DEFAULT_RATE_LIMIT_BUDGET = 8.0
# Failures where the request certainly never reached Calendly, so even a booking may be sent again.
_NOT_SENT = (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout)


class CalendlyTransport:
    """Sends requests to Calendly with the token, waits out rate limits and retries what is safe to repeat."""

    def __init__(
        self,
        base_url: str,
        token: str,
        *,
        http: httpx.AsyncClient | None = None,
        sleep: Sleep = asyncio.sleep,
        max_rate_limit_wait: float = DEFAULT_MAX_RATE_LIMIT_WAIT,
        rate_limit_budget: float = DEFAULT_RATE_LIMIT_BUDGET,
        max_rate_limit_retries: int = 2,
        max_retries: int = 2,
        backoff_seconds: float = 0.5,
    ) -> None:
        """`max_rate_limit_wait`: the longest 429 reset waited out; `rate_limit_budget`: the most one request
        spends waiting out 429s; `max_rate_limit_retries`: how many 429s one request waits out."""
        self.base_url = base_url.rstrip("/")
        self._headers = {"Authorization": f"Bearer {token}", "Accept": "application/json"}
        self._owns_http = http is None
        self._http = http if http is not None else httpx.AsyncClient(timeout=httpx.Timeout(15.0))
        self._sleep = sleep
        self._max_rate_limit_wait = max_rate_limit_wait
        self._rate_limit_budget = rate_limit_budget
        self._max_rate_limit_retries = max_rate_limit_retries
        self._max_retries = max_retries
        self._backoff_seconds = backoff_seconds

    def __repr__(self) -> str:
        return f"CalendlyTransport(base_url={self.base_url!r})"

    async def aclose(self) -> None:
        """Close the HTTP client if this object created it."""
        if self._owns_http:
            await self._http.aclose()

    async def paginate(self, path: str, params: Query, model: type[ModelT]) -> list[ModelT]:
        """Every item of a list endpoint, validated as `model`, following Calendly's next pages to the end."""
        items: list[ModelT] = []
        query = params
        for _ in range(_MAX_PAGES):
            data = await self.request("GET", path, params=query)
            items.extend(model.model_validate(item) for item in data.get("collection", []))
            next_page = (data.get("pagination") or {}).get("next_page")
            if not next_page:
                return items
            # Re-issue Calendly's next-page query against our base URL, so a configured proxy stays in the path.
            query = parse_qsl(urlsplit(next_page).query)
        raise CalendlyUnavailable(f"GET {path}: more than {_MAX_PAGES} pages")

    async def request(
        self,
        method: str,
        path: str,
        *,
        params: Query | None = None,
        json: dict[str, Any] | None = None,
        replayable: bool = True,
    ) -> dict[str, Any]:
        """One API call's JSON object; raises a `CalendlyError` once retries and rate-limit waits are spent.

        `replayable=False` (bookings, cancellations) repeats the request only when it certainly never left.
        """
        failures = 0
        rate_limited = 0
        budget = WaitBudget(self._rate_limit_budget, parent=_shared_budget.get())
        while True:
            try:
                response = await self._http.request(
                    method, self.base_url + path, params=tuple(params or ()), json=json, headers=self._headers
                )
            except httpx.TransportError as exc:
                failures += 1
                if failures > self._max_retries or not (replayable or isinstance(exc, _NOT_SENT)):
                    raise CalendlyUnavailable(f"{method} {path}: {type(exc).__name__}") from exc
                await self._sleep(self._backoff_seconds * 2 ** (failures - 1))
                continue
            status = response.status_code
            if status == 429:
                reset = _reset_seconds(response)
                # A 429 was not acted on (nothing booked or cancelled), so even a booking may be sent again.
                waits = rate_limited < self._max_rate_limit_retries and reset <= self._max_rate_limit_wait
                if not (waits and budget.allows(reset)):
                    logger.warning("calendly rate limited; not waiting", extra={"path": path, "reset_seconds": reset})
                    raise CalendlyRateLimited(reset)
                rate_limited += 1
                budget.spend(reset)
                logger.info("calendly rate limited; waiting", extra={"path": path, "reset_seconds": reset})
                await self._sleep(reset)
                continue
            if status >= 500:
                failures += 1
                # A 5xx after a POST may still have booked or cancelled: only reads are repeated.
                if failures > self._max_retries or not replayable:
                    raise CalendlyUnavailable(f"{method} {path}: Calendly answered {status}")
                logger.warning("calendly server error", extra={"path": path, "status": status})
                await self._sleep(self._backoff_seconds * 2 ** (failures - 1))
                continue
            if status >= 400:
                raise _api_error(response)
            return _json_object(response)


class WaitBudget:
    """Seconds that may still be spent waiting out 429s; spending also spends the enclosing budget, if any."""

    def __init__(self, seconds: float, *, parent: WaitBudget | None = None) -> None:
        self.remaining = max(0.0, seconds)
        self._parent = parent

    def allows(self, seconds: float) -> bool:
        """Whether waiting `seconds` fits in this budget and every enclosing one."""
        return seconds <= self.remaining and (self._parent is None or self._parent.allows(seconds))

    def spend(self, seconds: float) -> None:
        """Record a wait of `seconds` here and in every enclosing budget."""
        self.remaining = max(0.0, self.remaining - seconds)
        if self._parent is not None:
            self._parent.spend(seconds)


_shared_budget: ContextVar[WaitBudget | None] = ContextVar("calendly_rate_limit_budget", default=None)


@contextmanager
def rate_limit_budget(seconds: float) -> Iterator[WaitBudget]:
    """Share `seconds` of 429 waiting among every Calendly request made inside the block (in this task and the
    tasks it starts), on top of each request's own budget: many requests' short waits then cannot add up."""
    budget = WaitBudget(seconds, parent=_shared_budget.get())
    token = _shared_budget.set(budget)
    try:
        yield budget
    finally:
        _shared_budget.reset(token)


def _reset_seconds(response: httpx.Response) -> float:
    for header in ("X-RateLimit-Reset", "Retry-After"):
        value = response.headers.get(header)
        if value is not None:
            try:
                seconds = float(value)
            except ValueError:
                continue
            if math.isfinite(seconds):
                # A day at most: Calendly's longest window; a wilder value would only overflow callers' arithmetic.
                return min(max(0.0, seconds), _MAX_RESET_SECONDS)
    return _DEFAULT_RESET_SECONDS


def _json_object(response: httpx.Response) -> dict[str, Any]:
    if not response.content:
        return {}
    try:
        data = response.json()
    except ValueError as exc:
        raise CalendlyUnavailable(f"Calendly answered {response.status_code} with a body that is not JSON") from exc
    if not isinstance(data, dict):
        raise CalendlyUnavailable(f"Calendly answered {response.status_code} with an unexpected JSON body")
    return data


def _api_error(response: httpx.Response) -> CalendlyApiError:
    try:
        data = response.json()
    except ValueError:
        data = None
    if not isinstance(data, dict):
        return CalendlyApiError(response.status_code, response.reason_phrase, response.text[:200])
    details = [ErrorDetail.model_validate(d) for d in data.get("details") or [] if isinstance(d, dict)]
    return CalendlyApiError(
        response.status_code,
        str(data.get("title") or response.reason_phrase),
        str(data.get("message") or ""),
        details,
    )
