"""`asistente check` after the configuration: the database, the model, Twilio and Calendly, each asked whether it
answers and whether what we configured exists there. With `offline`, nothing outside this machine is contacted."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable

import httpx

from core.settings import Settings
from server.ops.calendly_check import calendly_rows
from server.ops.config_check import AREAS, CheckedConfiguration, CheckRow
from server.ops.probes import probe_database
from server.ops.tracing_check import tracing_rows
from server.ops.twilio_check import twilio_rows
from store import open_database

_MODEL_KEYS = {"OPENAI_API_KEY", "OPENAI_BASE_URL"}
NO_MODEL = "not configured: serve will refuse to start; set OPENAI_API_KEY or OPENAI_BASE_URL"


async def check_services(
    config: CheckedConfiguration, http: httpx.AsyncClient | None, *, offline: bool
) -> list[CheckRow]:
    """Every row: the configuration's, then each backend's, in the table's order (`AREAS`)."""
    settings, broken = config.settings, config.broken_keys
    found = await asyncio.gather(
        _guarded("database", database_rows(settings, broken)),
        _guarded("model", model_rows(settings, http, broken=broken, offline=offline)),
        _guarded("twilio", twilio_rows(settings, http, broken=broken, offline=offline)),
        _guarded("calendly", calendly_rows(settings, config.business, http, broken=broken, offline=offline)),
    )
    rows = config.rows + [row for group in found for row in group] + tracing_rows(settings, config.business)
    return sorted(rows, key=lambda row: AREAS.index(row.area) if row.area in AREAS else len(AREAS))


async def _guarded(area: str, rows: Awaitable[list[CheckRow]]) -> list[CheckRow]:
    # One backend's surprise (an unexpected answer, a bug) is a row, never a traceback that hides the others.
    try:
        return await rows
    except Exception as exc:  # noqa: BLE001 - reported as a failed row
        return [CheckRow(area, "check", "FAILED", f"unexpected {type(exc).__name__}: {exc}")]


async def database_rows(settings: Settings, broken: set[str]) -> list[CheckRow]:
    """`SELECT 1` on DATABASE_URL (the URL itself is never shown: it may hold a password)."""
    if "DATABASE_URL" in broken:
        return [CheckRow("database", "DATABASE_URL", "skipped", "fix DATABASE_URL first")]
    db = open_database(settings.database_url, open_timeout=3.0)
    try:
        result = await probe_database(db)
    finally:
        await db.close()
    return [CheckRow("database", "DATABASE_URL", "ok" if result.ok else "FAILED", result.detail)]


async def model_rows(
    settings: Settings, http: httpx.AsyncClient | None, *, broken: set[str], offline: bool
) -> list[CheckRow]:
    """The model server lists its models, and OPENAI_MODEL among them."""
    if not settings.openai_enabled:
        return [CheckRow("model", "OPENAI_API_KEY", "warning", NO_MODEL)]
    if broken & _MODEL_KEYS:
        return [CheckRow("model", settings.openai_model, "skipped", "fix the model settings above first")]
    if offline or http is None:
        return [CheckRow("model", settings.openai_model, "skipped", "not contacted (--offline)")]
    base = str(settings.openai_base_url or "https://api.openai.com/v1").rstrip("/")
    headers = {}
    if settings.openai_api_key is not None:
        headers["Authorization"] = f"Bearer {settings.openai_api_key.get_secret_value()}"
    try:
        response = await http.get(f"{base}/models", headers=headers)
    except httpx.HTTPError as exc:
        return [CheckRow("model", settings.openai_model, "FAILED", f"{type(exc).__name__}: {base} unreachable")]
    if response.status_code >= 400:
        detail = f"HTTP {response.status_code} from {base}/models"
        if response.status_code == 401:
            detail += ": OPENAI_API_KEY is not accepted"
        return [CheckRow("model", settings.openai_model, "FAILED", detail)]
    listed = _model_ids(response)
    if listed and settings.openai_model not in listed:
        detail = f"{base} does not list OPENAI_MODEL={settings.openai_model} among its {len(listed)} models"
        return [CheckRow("model", settings.openai_model, "warning", detail)]
    return [CheckRow("model", settings.openai_model, "ok", f"served by {base}")]


def _model_ids(response: httpx.Response) -> set[str]:
    try:
        body = response.json()
    except ValueError:
        return set()
    data = body.get("data") if isinstance(body, dict) else None
    if not isinstance(data, list):
        return set()
    return {str(item["id"]) for item in data if isinstance(item, dict) and "id" in item}
