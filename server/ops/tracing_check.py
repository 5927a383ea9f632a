"""`asistente check`'s tracing rows: the prompt version every trace carries, and how traces leave the system
(LangSmith on or off, personal data masked, customers named by a keyed hash that survives restarts)."""

from __future__ import annotations

from agent.prompt_version import prompt_version
from core.business import Business
from core.settings import Settings
from server.ops.config_check import CheckRow


def tracing_rows(settings: Settings, business: Business | None) -> list[CheckRow]:
    """The prompt version (needs the business: its facts are part of the prompt) and the tracing setup."""
    rows: list[CheckRow] = []
    if business is None:
        rows.append(CheckRow("model", "prompt version", "skipped", "fix the business file first"))
    else:
        rows.append(CheckRow("model", "prompt version", "ok", f"{prompt_version(business)} (static prompt + tools)"))
    if not settings.langsmith_tracing:
        return rows  # tracing is optional: nothing to check, nothing to warn about
    rows.append(CheckRow("tracing", "LANGSMITH_TRACING", "ok", f"project {settings.langsmith_project}"))
    if settings.langsmith_mask_pii:
        rows.append(CheckRow("tracing", "LANGSMITH_MASK_PII", "ok", "phones, e-mails and names masked"))
    else:
        detail = "customers' phones, e-mails and names are sent to LangSmith unmasked"
        rows.append(CheckRow("tracing", "LANGSMITH_MASK_PII", "warning", detail))
    if settings.langsmith_hash_key is None and settings.jwt_secret is None:
        detail = "neither it nor JWT_SECRET is set: customers' traces regroup under new ids on every restart"
        rows.append(CheckRow("tracing", "LANGSMITH_HASH_KEY", "warning", detail))
    return rows
