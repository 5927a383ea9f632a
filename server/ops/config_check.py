"""What `asistente check` finds in the configuration itself, before anything is contacted.

Every problem is collected, none stops the others: field errors (a malformed URL), refusals (placeholders and
missing values no command starts with), and what only `check` reports (placeholder URLs and ids, SIDs of the
wrong shape, keys that look copied from `.env.example`). A key whose value failed is put back to its default so
that everything else can still be checked; the backends that depend on it are then skipped, not probed.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal

from pydantic import ValidationError

from core.business import Business, BusinessConfigError, configured_business
from core.settings import Settings, SettingsProblem, is_placeholder, is_placeholder_sid, is_placeholder_url
from core.settings import is_sid_shaped as sid_shaped

Status = Literal["ok", "off", "skipped", "warning", "FAILED"]
# Areas in the order the table shows them; every name fits the table's first column (8 characters).
AREAS = ("settings", "business", "database", "model", "twilio", "calendly", "tracing")
_AREA_BY_PREFIX = {
    "DATABASE_": "database",
    "BUSINESS_": "business",
    "OPENAI_": "model",
    "TWILIO_": "twilio",
    "CALENDLY_": "calendly",
    "LANGSMITH_": "tracing",
}
TWILIO_SANDBOX_NUMBER = "+14155238886"


@dataclass(frozen=True)
class CheckRow:
    """One line of the report: where (`area`), what (`item`: a key, a template, a service), the verdict, why."""

    area: str
    item: str
    status: Status
    detail: str

    @property
    def failed(self) -> bool:
        """Whether this row makes `asistente check` exit 1."""
        return self.status == "FAILED"


def area_of(key: str) -> str:
    """The table area an environment key belongs to (`TWILIO_AUTH_TOKEN` -> `twilio`)."""
    return next((area for prefix, area in _AREA_BY_PREFIX.items() if key.startswith(prefix)), "settings")


def problem_row(problem: SettingsProblem) -> CheckRow:
    """A settings problem as a row: FAILED when it fails the check, otherwise a warning."""
    detail = problem.message + ("; no command starts until it is fixed" if problem.refused else "")
    return CheckRow(area_of(problem.key), problem.key, "FAILED" if problem.failing else "warning", detail)


@dataclass
class CheckedConfiguration:
    """The settings as far as they could be read, the business (None when broken), and the rows found so far."""

    settings: Settings
    business: Business | None
    rows: list[CheckRow] = field(default_factory=list)

    @property
    def broken_keys(self) -> set[str]:
        """Keys with a FAILED row: whatever depends on them is skipped instead of probed."""
        return {row.item for row in self.rows if row.failed}


class _UnenforcedSettings(Settings):
    """The same keys and sources, without stopping at the first refusal: `check` lists them all itself."""

    enforce_refusals: ClassVar[bool] = False


def check_configuration(**sources: Any) -> CheckedConfiguration:
    """Read the settings (environment and `.env`; `sources` as for `Settings`, e.g. `_env_file`) and the business
    YAML, and report everything wrong with them."""
    settings, rows = _load_settings(sources)
    rows += [problem_row(p) for p in settings.refusals()]
    rows += [problem_row(p) for p in advisories(settings)]
    business, business_row = _load_business(settings)
    return CheckedConfiguration(settings, business, [*rows, business_row])


def _load_settings(sources: dict[str, Any]) -> tuple[Settings, list[CheckRow]]:
    rows: list[CheckRow] = []
    defaults: dict[str, Any] = {}
    while True:
        try:
            return _UnenforcedSettings(**sources, **defaults), rows
        except ValidationError as exc:
            reset = len(defaults)
            for error in exc.errors():
                name = str(error["loc"][0]) if error["loc"] else ""
                message = error["msg"].removeprefix("Value error, ")
                rows.append(CheckRow(area_of(name.upper()), name.upper() or "(settings)", "FAILED", message))
                if name in Settings.model_fields and name not in defaults:
                    defaults[name] = Settings.model_fields[name].get_default(call_default_factory=True)
            if len(defaults) == reset:  # nothing left to put back: check the embedded defaults instead
                return _UnenforcedSettings.model_construct(), rows


def _load_business(settings: Settings) -> tuple[Business | None, CheckRow]:
    path = settings.business_config
    try:
        business = configured_business(settings)  # as every other command reads it
    except BusinessConfigError as exc:
        return None, CheckRow("business", "BUSINESS_CONFIG", "FAILED", str(exc))
    summary = f"{business.name} ({business.timezone}, {len(business.services)} services)"
    if not path.exists():
        detail = f"{path} not found: using the shipped example, {summary}; copy business.example.yaml and edit it"
        return business, CheckRow("business", "BUSINESS_CONFIG", "warning", detail)
    return business, CheckRow("business", "BUSINESS_CONFIG", "ok", f"{path}: {summary}")


def advisories(settings: Settings) -> list[SettingsProblem]:
    """What commands accept but `asistente check` reports: placeholders in addresses and ids, SIDs of the wrong
    shape, and values that are harmless only while unused (those are warnings)."""
    problems = _url_problems(settings) + _twilio_problems(settings)
    tracing_key = settings.langsmith_api_key
    if tracing_key is not None and not settings.langsmith_tracing and is_placeholder(tracing_key.get_secret_value()):
        problems.append(_unused("LANGSMITH_API_KEY", "LANGSMITH_TRACING is off"))
    if settings.calendly_enabled and settings.calendly_webhook_signing_key is None:
        message = "unset: Calendly's webhook deliveries are refused; `asistente calendly subscribe` generates one"
        problems.append(SettingsProblem("CALENDLY_WEBHOOK_SIGNING_KEY", message, failing=False))
    if settings.staff_whatsapp_number and re.search(r"0{6,}$", settings.staff_whatsapp_number):
        message = f"{settings.staff_whatsapp_number} looks like the example number; set the staff's WhatsApp number"
        problems.append(SettingsProblem("STAFF_WHATSAPP_NUMBER", message, failing=False))
    return problems


def _unused(key: str, why: str) -> SettingsProblem:
    return SettingsProblem(key, f"is a placeholder (unused while {why}); remove the key", failing=False)


def _url_problems(settings: Settings) -> list[SettingsProblem]:
    public = str(settings.public_base_url)
    addresses: list[tuple[str, object, bool, str]] = [
        ("PUBLIC_BASE_URL", settings.public_base_url, True, "the server's public https address"),
        ("CALENDLY_USER_URI", settings.calendly_user_uri, settings.calendly_enabled, "your user URI, or remove it"),
        ("OPENAI_BASE_URL", settings.openai_base_url, True, "the model server's address, or remove it"),
        ("TWILIO_API_BASE_URL", settings.twilio_api_base_url, settings.twilio_enabled, "https://api.twilio.com"),
        ("CALENDLY_API_BASE_URL", settings.calendly_api_base_url, settings.calendly_enabled, "the API address"),
        ("LANGSMITH_ENDPOINT", settings.langsmith_endpoint, settings.langsmith_tracing, "the LangSmith address"),
    ]
    problems: list[SettingsProblem] = []
    for key, value, used, wanted in addresses:
        if value is None or not is_placeholder_url(str(value)):
            continue
        if used:
            problems.append(SettingsProblem(key, f"{value} is a placeholder; set {wanted}"))
        else:
            problems.append(_unused(key, "its backend is off"))
    if (settings.twilio_enabled or settings.calendly_enabled) and not public.startswith("https://"):
        message = f"{public}: Twilio and Calendly reach the server only at its public https address"
        problems.append(SettingsProblem("PUBLIC_BASE_URL", message, failing=False))
    return problems


def _twilio_problems(settings: Settings) -> list[SettingsProblem]:
    problems: list[SettingsProblem] = []
    if not settings.twilio_enabled:
        if settings.twilio_auth_token is not None and is_placeholder(settings.twilio_auth_token.get_secret_value()):
            problems.append(_unused("TWILIO_AUTH_TOKEN", "TWILIO_ACCOUNT_SID is unset"))
        problems += [
            _unused(key, "Twilio is not configured")
            for key, sid in settings.content_sids().items()
            if sid is not None and is_placeholder_sid(sid)
        ]
        return problems
    account = settings.twilio_account_sid or ""
    if not is_placeholder_sid(account) and not sid_shaped(account, "AC"):
        problems.append(SettingsProblem("TWILIO_ACCOUNT_SID", "is not an Account SID: AC and 32 hexadecimal digits"))
    for key, sid in settings.content_sids().items():
        if sid is not None and not is_placeholder_sid(sid) and not sid_shaped(sid, "HX"):
            problems.append(SettingsProblem(key, f"{sid} is not a Content SID: HX and 32 hexadecimal digits"))
    if (settings.twilio_whatsapp_number or "").removeprefix("whatsapp:") == TWILIO_SANDBOX_NUMBER:
        message = "is Twilio's shared sandbox number: only phones that joined the sandbox can write to it"
        problems.append(SettingsProblem("TWILIO_WHATSAPP_NUMBER", message, failing=False))
    return problems
