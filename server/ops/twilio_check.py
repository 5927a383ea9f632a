"""`asistente check` on Twilio: the account answers, and each configured Content SID exists, is approved for
WhatsApp when it is sent outside the 24-hour window, and uses the variables the server fills in."""

from __future__ import annotations

import asyncio
import re
from dataclasses import dataclass

import httpx

from core.settings import Settings
from integrations.twilio.content import ContentClient, ContentLookupError, ContentTemplate, content_api_base
from server.ops.config_check import CheckRow, Status

# What the server puts in ContentVariables (server/wording.py, pipeline/handoff.py, calendar_sync/alerts.py, and
# the question buttons of pipeline/delivery.py).
APPOINTMENT_VARIABLES = {"1": "name", "2": "service", "3": "date", "4": "time"}
STAFF_ALERT_VARIABLES = {"1": "number", "2": "name", "3": "reason"}
BUTTON_VARIABLES = {"1": "question", "2": "question id"}
QUICK_REPLY = "twilio/quick-reply"
_SEVERITY: tuple[Status, ...] = ("ok", "off", "skipped", "warning", "FAILED")
_ACCOUNT_KEYS = {"TWILIO_ACCOUNT_SID", "TWILIO_AUTH_TOKEN", "TWILIO_API_BASE_URL"}


@dataclass(frozen=True)
class ContentUse:
    """How the server uses one configured content: what it sends, and what happens when the SID is unset."""

    key: str
    sent: dict[str, str]
    when_unset: str
    needs_approval: bool = True  # sent outside the 24-hour window, so WhatsApp must have approved it


CONTENT_USES = (
    ContentUse("TWILIO_TEMPLATE_CONFIRMATION_SID", APPOINTMENT_VARIABLES, "confirmations"),
    ContentUse("TWILIO_TEMPLATE_REMINDER_SID", APPOINTMENT_VARIABLES, "reminders"),
    ContentUse("TWILIO_TEMPLATE_CANCELLATION_SID", APPOINTMENT_VARIABLES, "cancellations"),
    ContentUse("TWILIO_TEMPLATE_STAFF_ALERT_SID", STAFF_ALERT_VARIABLES, "staff alerts"),
    ContentUse("TWILIO_CONTENT_CONFIRM_BUTTONS_SID", BUTTON_VARIABLES, "", needs_approval=False),
)


def worst(statuses: list[Status]) -> Status:
    """The most serious of some statuses (`ok` for none)."""
    return max(statuses, key=_SEVERITY.index, default="ok")


async def twilio_rows(
    settings: Settings, http: httpx.AsyncClient | None, *, broken: set[str], offline: bool
) -> list[CheckRow]:
    """The account, then one row per content the server may send."""
    if not settings.twilio_enabled:
        return [CheckRow("twilio", "TWILIO_ACCOUNT_SID", "off", "not configured: messages are logged, not sent")]
    sids = settings.content_sids()
    unset = [_unset_row(use, settings) for use in CONTENT_USES if sids[use.key] is None]
    configured = [use for use in CONTENT_USES if sids[use.key] is not None and use.key not in broken]
    if broken & _ACCOUNT_KEYS or offline or http is None:
        why = "--offline" if offline or http is None else "fix the account settings above first"
        skipped = [CheckRow("twilio", u.key, "skipped", f"{sids[u.key]}: not fetched ({why})") for u in configured]
        return [*skipped, *unset]
    account = await _account_row(settings, http)
    if account.failed:
        skipped = [CheckRow("twilio", u.key, "skipped", "not fetched: the account check failed") for u in configured]
        return [account, *skipped, *unset]
    base = content_api_base(str(settings.twilio_api_base_url))
    token = settings.twilio_auth_token.get_secret_value() if settings.twilio_auth_token else ""
    client = ContentClient(http, base, settings.twilio_account_sid or "", token)
    contents = await asyncio.gather(*(_content_row(client, use, sids[use.key] or "") for use in configured))
    return [account, *contents, *unset]


def _unset_row(use: ContentUse, settings: Settings) -> CheckRow:
    if not use.needs_approval:
        return CheckRow("twilio", use.key, "off", "unset: confirmation questions go as text, without buttons")
    if use.sent is STAFF_ALERT_VARIABLES and not settings.staff_whatsapp_number:
        return CheckRow("twilio", use.key, "off", "unset (no STAFF_WHATSAPP_NUMBER either)")
    detail = f"unset: {use.when_unset} outside WhatsApp's 24-hour window are not delivered"
    return CheckRow("twilio", use.key, "warning", detail)


async def _account_row(settings: Settings, http: httpx.AsyncClient) -> CheckRow:
    sid = settings.twilio_account_sid or ""
    token = settings.twilio_auth_token.get_secret_value() if settings.twilio_auth_token else ""
    url = f"{str(settings.twilio_api_base_url).rstrip('/')}/2010-04-01/Accounts/{sid}.json"
    try:
        response = await http.get(url, auth=httpx.BasicAuth(sid, token))
    except httpx.HTTPError as exc:
        return CheckRow("twilio", "TWILIO_ACCOUNT_SID", "FAILED", f"{type(exc).__name__}: {url} unreachable")
    if response.status_code in (401, 403):
        detail = f"HTTP {response.status_code} from {url}: TWILIO_ACCOUNT_SID and TWILIO_AUTH_TOKEN do not match"
        return CheckRow("twilio", "TWILIO_ACCOUNT_SID", "FAILED", detail)
    if response.status_code >= 400:
        return CheckRow("twilio", "TWILIO_ACCOUNT_SID", "FAILED", f"HTTP {response.status_code} from {url}")
    try:
        account = response.json()
    except ValueError:
        account = {}
    name = account.get("friendly_name") if isinstance(account, dict) else None
    state = account.get("status", "active") if isinstance(account, dict) else "active"
    detail = f"account {sid}" + (f" ({name})" if name else "") + f": {state}"
    return CheckRow("twilio", "TWILIO_ACCOUNT_SID", "ok" if state == "active" else "FAILED", detail)


async def _content_row(client: ContentClient, use: ContentUse, sid: str) -> CheckRow:
    try:
        template = await client.fetch(sid)
    except ContentLookupError as exc:
        reason = "no such content in this account" if exc.status == 404 else exc.message
        return CheckRow("twilio", use.key, "FAILED", f"{sid}: {reason}")
    notes = variable_notes(template, use.sent, buttons=not use.needs_approval)
    if use.needs_approval:
        notes.append(await _approval_note(client, sid))
    name = f"{sid} '{template.friendly_name}'" + (f" ({template.language})" if template.language else "")
    problems = [text for status, text in notes if status != "ok"]
    detail = "; ".join(problems) if problems else "; ".join(text for _, text in notes)
    return CheckRow("twilio", use.key, worst([status for status, _ in notes]), f"{name}: {detail}")


def variable_notes(template: ContentTemplate, sent: dict[str, str], *, buttons: bool) -> list[tuple[Status, str]]:
    """Whether a content fits the variables we send: a variable we never fill fails (Twilio refuses the message);
    one of ours the content does not show is a warning (a confirmation without the time, say), except for the
    buttons, whose {{1}} is the question and whose {{2}} names it in the `confirm:` payload."""
    used = template.variables()
    notes: list[tuple[Status, str]] = []
    unknown = sorted(used - sent.keys())
    if unknown:
        notes.append(("FAILED", f"uses {_braces(unknown)}, which the server never fills ({_sent(sent)})"))
    missing = sorted(sent.keys() - used)
    if missing:
        shown = ", ".join(f"{{{{{n}}}}} {sent[n]}" for n in missing)
        notes.append(("FAILED" if buttons else "warning", f"does not show {shown}"))
    if buttons:
        if QUICK_REPLY not in template.types:
            kinds = ", ".join(template.types) or "no type"
            notes.append(("FAILED", f"is {kinds}, not {QUICK_REPLY}"))
        elif not any(re.sub(r"\s", "", i) == "confirm:{{2}}" for i in template.action_ids(QUICK_REPLY)):
            notes.append(("FAILED", "has no button with id confirm:{{2}}, so a tap would confirm nothing"))
    if not notes:
        notes.append(("ok", f"variables fit ({_sent(sent)})"))
    return notes


async def _approval_note(client: ContentClient, sid: str) -> tuple[Status, str]:
    try:
        approval = await client.approval(sid)
    except ContentLookupError as exc:
        return "warning", f"WhatsApp approval unknown ({exc.message})"
    if approval.status == "approved":
        return "ok", "approved for WhatsApp"
    if approval.status in ("received", "pending"):
        return "warning", f"WhatsApp approval {approval.status}: not deliverable until approved"
    reason = f": {approval.rejection_reason}" if approval.rejection_reason else ""
    return "FAILED", f"WhatsApp approval {approval.status}{reason}; only approved templates are delivered"


def _braces(names: list[str]) -> str:
    return ", ".join(f"{{{{{n}}}}}" for n in names)


def _sent(sent: dict[str, str]) -> str:
    return ", ".join(f"{{{{{n}}}}} {what}" for n, what in sent.items())
