"""Reachability probes for each backend, shared by `asistente check` and the health endpoints.

Each result carries two texts. `detail` is for the operator at the console (`asistente check`): the failing URL,
the driver's message. `summary` is all the unauthenticated health endpoints show: the dialect, "HTTP 401" or an
exception's class name, never a URL (Twilio's holds the Account SID), host, user or driver text.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import httpx

from core.settings import Settings
from store.database import Database


@dataclass(frozen=True)
class ProbeResult:
    """The state of one dependency."""

    name: str
    configured: bool
    ok: bool
    detail: str
    latency_ms: float | None = None
    summary: str | None = None  # the public form of `detail`; None when `detail` holds nothing private

    @property
    def public_detail(self) -> str:
        """What a health endpoint may show anyone: `summary`, or `detail` when that is already safe."""
        return self.detail if self.summary is None else self.summary

    def as_dict(self) -> dict[str, object]:
        """JSON-ready form for the (unauthenticated) health endpoints: the safe summary only."""
        return {
            "configured": self.configured,
            "ok": self.ok,
            "detail": self.public_detail,
            "latency_ms": None if self.latency_ms is None else round(self.latency_ms, 1),
        }


async def probe_database(db: Database) -> ProbeResult:
    """Run `SELECT 1` on the configured database."""
    started = time.perf_counter()
    try:
        await db.ping()
    except Exception as exc:  # noqa: BLE001 - any failure means "unreachable", reported with its text
        # The driver's text names the host, port and user: console only.
        summary = f"{db.dialect}: {type(exc).__name__}"
        return ProbeResult("database", True, False, f"{summary}: {exc}", summary=summary)
    return ProbeResult("database", True, True, str(db.dialect), (time.perf_counter() - started) * 1000)


async def _probe_http(
    name: str, client: httpx.AsyncClient, url: str, headers: dict[str, str], auth: httpx.BasicAuth | None = None
) -> ProbeResult:
    started = time.perf_counter()
    try:
        response = await client.get(url, headers=headers, auth=auth)
    except httpx.HTTPError as exc:
        # httpx's messages may quote the URL, which for Twilio holds the Account SID: console only.
        return ProbeResult(name, True, False, f"{type(exc).__name__}: {exc}", summary=type(exc).__name__)
    latency = (time.perf_counter() - started) * 1000
    if response.status_code >= 400:
        status = f"HTTP {response.status_code}"
        return ProbeResult(name, True, False, f"{status} from {url}", latency, summary=status)
    return ProbeResult(name, True, True, f"HTTP {response.status_code}", latency)


async def probe_openai(settings: Settings, client: httpx.AsyncClient) -> ProbeResult:
    """List models at OPENAI_BASE_URL (or OpenAI); not configured means the recorded-cassette default."""
    if not settings.openai_enabled:
        return ProbeResult("openai", False, True, "not configured: replaying recorded model answers")
    base = str(settings.openai_base_url or "https://api.openai.com/v1").rstrip("/")
    headers = {}
    if settings.openai_api_key is not None:
        headers["Authorization"] = f"Bearer {settings.openai_api_key.get_secret_value()}"
    return await _probe_http("openai", client, f"{base}/models", headers)


async def probe_twilio(settings: Settings, client: httpx.AsyncClient) -> ProbeResult:
    """Fetch the Twilio account resource; not configured means the log sender."""
    if not settings.twilio_enabled or settings.twilio_auth_token is None or settings.twilio_account_sid is None:
        return ProbeResult("twilio", False, True, "not configured: messages are logged, not sent")
    base = str(settings.twilio_api_base_url).rstrip("/")
    auth = httpx.BasicAuth(settings.twilio_account_sid, settings.twilio_auth_token.get_secret_value())
    url = f"{base}/2010-04-01/Accounts/{settings.twilio_account_sid}.json"
    return await _probe_http("twilio", client, url, {}, auth)


async def probe_calendly(settings: Settings, client: httpx.AsyncClient) -> ProbeResult:
    """Fetch `/users/me` from Calendly; not configured means the local calendar."""
    if settings.calendly_access_token is None:
        return ProbeResult("calendly", False, True, "not configured: local calendar from the business YAML")
    base = str(settings.calendly_api_base_url).rstrip("/")
    headers = {"Authorization": f"Bearer {settings.calendly_access_token.get_secret_value()}"}
    return await _probe_http("calendly", client, f"{base}/users/me", headers)
