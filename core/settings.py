"""Application settings, loaded from the environment and `.env` by `get_settings()`.

Nothing here runs at import time: call `get_settings()` (cached) from a composition root (CLI, app factory) and pass
what is needed down through constructors.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Annotated, ClassVar, Self
from urllib.parse import unquote, urlsplit

from pydantic import AnyHttpUrl, Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_core import InitErrorDetails, PydanticCustomError
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

# Values copied from documentation or `.env.example` that must never reach a real service. Matched on the start of
# the value (after a vendor prefix such as `sk-proj-`), never anywhere inside it: real tokens are random text.
_PLACEHOLDER_PREFIXES = (
    "changeme",
    "change-me",
    "change_me",
    "tu_",
    "tu-",
    "your_",
    "your-",
    "replace",
    "placeholder",
    "example",
    "dummy",
    "<",
)
_PLACEHOLDER_EXACT = {"", "secret", "password", "token", "test", "xxx", "..."}
_VENDOR_PREFIXES = ("sk-proj-", "sk-", "lsv2_pt_", "lsv2_sk_")
# URL parts that are placeholders. Hosts are matched whole, label by label, and narrowly ("tu-peluqueria.es" may be
# a real domain); path segments (ids) also when "x" or one character is repeated: Calendly's documentation writes
# ids as AAAAAAAAAAAAAAAA. Brackets and braces are template syntax, never part of a real address.
_HOST_PLACEHOLDER = re.compile(
    r"(tu|your)[_-]?(dominio|domain|servidor|server|host)|(tu|your)_.*|change[_-]?me|placeholder|x{3,}|.*[<>{}].*",
    re.IGNORECASE,
)
_SEGMENT_PLACEHOLDER = re.compile(
    r"(tu|your)_.*|(tu|your)-(user|id|uuid|uri|event|org).*|change[_-]?me.*|placeholder.*"
    r"|x{3,}|(?P<c>.)(?P=c){7,}|.*[<>{}].*",
    re.IGNORECASE,
)
# Hosts that can never be a business's own address (RFC 2606 / RFC 6761): example.com/.net/.org, *.example, *.invalid.
_RESERVED_HOST = re.compile(r"(^|\.)(example\.(com|net|org)|example|invalid)$", re.IGNORECASE)
# A Twilio SID: two capital letters (AC account, HX content) and 32 hexadecimal characters.
_SID_SHAPE = re.compile(r"[A-Z]{2}[0-9a-fA-F]{32}")

_HINTS = {"CALENDLY_WEBHOOK_SIGNING_KEY": " (`asistente calendly subscribe` generates one when the key is unset)"}
# Keys we verify HMAC signatures or bearer tokens with: at least 32 bytes (HS256's own minimum, RFC 7518 3.2), and
# not a word or a character repeated, which a guesser tries first.
_OWN_KEYS = frozenset({"JWT_SECRET", "CALENDLY_WEBHOOK_SIGNING_KEY", "METRICS_TOKEN", "LANGSMITH_HASH_KEY"})
MIN_KEY_BYTES = 32
_MIN_DISTINCT_CHARACTERS = 8
MAKE_KEY = 'python -c "import secrets; print(secrets.token_urlsafe(32))"'

DEFAULT_DATABASE_URL = "sqlite:///./data/asistente.db"


def is_placeholder(value: str) -> bool:
    """Whether a secret looks like a documentation placeholder rather than a real credential."""
    lowered = value.strip().lower()
    for prefix in _VENDOR_PREFIXES:
        lowered = lowered.removeprefix(prefix)
    return (
        lowered in _PLACEHOLDER_EXACT
        or lowered.startswith(_PLACEHOLDER_PREFIXES)
        or re.fullmatch(r"x{3,}", lowered) is not None
    )


def weak_key(value: str) -> str | None:
    """Why `value` cannot serve as a signing key or bearer secret (too short, not random), None when it can."""
    size = len(value.encode())
    if size < MIN_KEY_BYTES:
        return f"is too short ({size} of {MIN_KEY_BYTES} bytes); use at least {MIN_KEY_BYTES} random bytes: {MAKE_KEY}"
    if len(set(value)) < _MIN_DISTINCT_CHARACTERS:
        return f"is not random (too few different characters); use at least {MIN_KEY_BYTES} random bytes: {MAKE_KEY}"
    return None


def _secret_problem(key: str, secret: SecretStr | None) -> str | None:
    if secret is None or is_placeholder(secret.get_secret_value()):
        return "is a placeholder or empty; set the real value or remove the key" + _HINTS.get(key, "")
    # Keys we check signatures or tokens with ourselves must be strong; vendors' tokens are theirs to shape.
    return weak_key(secret.get_secret_value()) if key in _OWN_KEYS else None


def is_placeholder_sid(value: str) -> bool:
    """Whether a Twilio SID is a placeholder: `ACxxxx...`, `HXxxxx...`, `HX<your template>`, `changeme`..."""
    text = value.strip()
    if is_placeholder(text):
        return True
    rest = text[2:] if re.match(r"[A-Za-z]{2}", text) else text
    return is_placeholder(rest) or re.fullmatch(r"x+", rest, re.IGNORECASE) is not None or "<" in rest


def is_sid_shaped(value: str, prefix: str) -> bool:
    """Whether `value` has the shape of a real Twilio SID starting with `prefix` (`AC`, `HX`)."""
    return value.startswith(prefix) and _SID_SHAPE.fullmatch(value) is not None


def is_placeholder_url(url: str) -> bool:
    """Whether a URL or URI is a documentation placeholder, e.g. `https://tu-dominio.example` or
    `https://api.calendly.com/users/tu_user_id`.

    The host is one when it is reserved for documentation (example.com, *.example, *.invalid) or a label is a
    placeholder word (`tu-dominio`, `your_host`, `xxx`); a path segment when it starts like one (`tu_user_id`), is
    "x" or one character repeated (AAAAAAAAAAAAAAAA), or holds template brackets. Real hosts and random ids pass.
    """
    parts = urlsplit(url.strip())
    host = (parts.hostname or "").lower()
    if _RESERVED_HOST.search(host) or any(_HOST_PLACEHOLDER.fullmatch(label) for label in host.split(".")):
        return True
    segments = (unquote(segment) for segment in parts.path.split("/") if segment)
    return any(_SEGMENT_PLACEHOLDER.fullmatch(segment) for segment in segments)


@dataclass(frozen=True)
class SettingsProblem:
    """A value that cannot work. `refused`: the settings do not load at all (every command stops); otherwise
    `asistente check` reports it and exits 1 when `failing`, while other commands still run."""

    key: str
    message: str
    refused: bool = False
    failing: bool = True


class Settings(BaseSettings):
    """Every configuration key of Asistente. Field names map to upper-case environment variables."""

    model_config = SettingsConfigDict(env_file=".env", env_file_encoding="utf-8", extra="ignore", env_ignore_empty=True)
    # False only in `asistente check`'s copy, which loads what it can and lists every refusal itself.
    enforce_refusals: ClassVar[bool] = True

    # Persistence
    database_url: str = DEFAULT_DATABASE_URL
    business_config: Path = Path("business.yaml")
    spool_dir: Path = Path("data/spool")  # webhooks the database did not take in time wait here; keep it on disk

    # Model
    openai_api_key: SecretStr | None = None
    openai_model: str = "gpt-5-mini"
    openai_base_url: AnyHttpUrl | None = None
    openai_timeout_seconds: float = 30.0
    openai_max_retries: int = 2

    # Twilio / WhatsApp
    twilio_account_sid: str | None = None
    twilio_auth_token: SecretStr | None = None
    twilio_whatsapp_number: str | None = None
    twilio_api_base_url: AnyHttpUrl = AnyHttpUrl("https://api.twilio.com")
    twilio_template_confirmation_sid: str | None = None
    twilio_template_reminder_sid: str | None = None
    twilio_template_cancellation_sid: str | None = None
    twilio_template_staff_alert_sid: str | None = None
    # In-session quick reply (twilio/quick-reply, body {{1}}, buttons with ids confirm:{{2}} and change:{{2}}).
    twilio_content_confirm_buttons_sid: str | None = None

    # Calendly
    calendly_access_token: SecretStr | None = None
    calendly_user_uri: AnyHttpUrl | None = None
    calendly_webhook_signing_key: SecretStr | None = None
    calendly_api_base_url: AnyHttpUrl = AnyHttpUrl("https://api.calendly.com")

    # Server
    public_base_url: AnyHttpUrl = AnyHttpUrl("http://localhost:8000")
    jwt_secret: SecretStr | None = None
    # Admin tokens valid for longer than this (from issue, or from now) are refused; `admin token` mints none longer.
    admin_token_max_hours: float = Field(default=168.0, gt=0, le=24 * 90)
    # Bearer token Prometheus sends to scrape the app's /metrics; unset = /metrics is not served by the app.
    metrics_token: SecretStr | None = None
    staff_whatsapp_number: str | None = None
    rate_limit_per_minute: int = Field(default=30, ge=1)
    # A customer's "sí" confirms a question only this long after it was asked (and never after the slot began).
    confirmation_expiry_hours: float = Field(default=3.0, gt=0, le=72)
    # Per turn: model calls, and messages the agent may send with send_whatsapp, before the turn is cut short.
    turn_max_model_calls: int = Field(default=8, ge=2, le=50)
    turn_max_messages: int = Field(default=2, ge=1, le=10)
    reminder_offsets_hours: Annotated[list[float], NoDecode] = Field(default_factory=lambda: [24.0, 2.0])
    log_level: str = "INFO"

    # Tracing
    langsmith_tracing: bool = False
    langsmith_api_key: SecretStr | None = None
    langsmith_project: str = "asistente"
    langsmith_endpoint: AnyHttpUrl = AnyHttpUrl("https://api.smith.langchain.com")
    langsmith_mask_pii: bool = True  # phones, e-mails and names masked in everything sent to LangSmith
    langsmith_hash_key: SecretStr | None = None  # keys the customer hash that groups traces (else JWT_SECRET)

    @field_validator("reminder_offsets_hours", mode="before")
    @classmethod
    def _split_offsets(cls, value: object) -> object:
        # Accept "24,2" from the environment as well as a list from code.
        if isinstance(value, str):
            return [float(part) for part in value.split(",") if part.strip()]
        return value

    @field_validator("database_url")
    @classmethod
    def _known_database(cls, value: str) -> str:
        if not value.startswith(("sqlite://", "postgresql://", "postgres://")):
            raise ValueError("must start with sqlite:///, postgresql:// or postgres://")
        return value

    @model_validator(mode="after")
    def _refuse_placeholders(self) -> Self:
        """Refuse every placeholder or missing value that would break a backend switched on, all in one error."""
        problems = self.refusals() if self.enforce_refusals else []
        if problems:
            raise ValidationError.from_exception_data(
                type(self).__name__,
                [
                    InitErrorDetails(
                        type=PydanticCustomError("refused_setting", "{message}", {"message": problem.message}),
                        loc=(problem.key,),
                        input=None,  # never the value: it may be a secret
                    )
                    for problem in problems
                ],
            )
        return self

    def refusals(self) -> list[SettingsProblem]:
        """Values no command may run with: placeholders in the secrets and SIDs of a backend switched on (a
        placeholder in an unused key is harmless), and the companions Twilio cannot work without."""
        secrets: list[tuple[str, SecretStr | None, bool]] = [
            ("OPENAI_API_KEY", self.openai_api_key, self.openai_api_key is not None),
            ("TWILIO_AUTH_TOKEN", self.twilio_auth_token, self.twilio_enabled),
            ("CALENDLY_ACCESS_TOKEN", self.calendly_access_token, self.calendly_access_token is not None),
            (
                "CALENDLY_WEBHOOK_SIGNING_KEY",
                self.calendly_webhook_signing_key,
                self.calendly_webhook_signing_key is not None,
            ),
            ("JWT_SECRET", self.jwt_secret, self.jwt_secret is not None),
            ("METRICS_TOKEN", self.metrics_token, self.metrics_token is not None),
            ("LANGSMITH_HASH_KEY", self.langsmith_hash_key, self.langsmith_hash_key is not None),
            ("LANGSMITH_API_KEY", self.langsmith_api_key, self.langsmith_tracing),
        ]
        refused: list[tuple[str, str]] = [
            (key, problem) for key, secret, used in secrets if used and (problem := _secret_problem(key, secret))
        ]
        if self.twilio_account_sid is not None and is_placeholder_sid(self.twilio_account_sid):
            refused.append(("TWILIO_ACCOUNT_SID", "is a placeholder; set your Account SID (AC...)"))
        if self.twilio_account_sid is not None and self.twilio_auth_token is None:
            refused.append(("TWILIO_AUTH_TOKEN", "is required when TWILIO_ACCOUNT_SID is set"))
        if self.twilio_enabled:
            if not self.twilio_whatsapp_number:
                refused.append(("TWILIO_WHATSAPP_NUMBER", "is required when Twilio is configured"))
            refused += [
                (key, "is a placeholder; set the Content SID (HX...) from Twilio or remove the key")
                for key, sid in self.content_sids().items()
                if sid is not None and is_placeholder_sid(sid)
            ]
        return [SettingsProblem(key, message, refused=True) for key, message in refused]

    def content_sids(self) -> dict[str, str | None]:
        """The Twilio Content SIDs by key: the four approved templates and the quick-reply buttons."""
        return {
            "TWILIO_TEMPLATE_CONFIRMATION_SID": self.twilio_template_confirmation_sid,
            "TWILIO_TEMPLATE_REMINDER_SID": self.twilio_template_reminder_sid,
            "TWILIO_TEMPLATE_CANCELLATION_SID": self.twilio_template_cancellation_sid,
            "TWILIO_TEMPLATE_STAFF_ALERT_SID": self.twilio_template_staff_alert_sid,
            "TWILIO_CONTENT_CONFIRM_BUTTONS_SID": self.twilio_content_confirm_buttons_sid,
        }

    @property
    def twilio_enabled(self) -> bool:
        """Twilio sends real messages only when both the account SID and the auth token are set."""
        return self.twilio_account_sid is not None and self.twilio_auth_token is not None

    @property
    def calendly_enabled(self) -> bool:
        """The Calendly calendar replaces the local one when an access token is configured."""
        return self.calendly_access_token is not None

    @property
    def openai_enabled(self) -> bool:
        """A real model is used only with an API key (or a compatible server at OPENAI_BASE_URL)."""
        return self.openai_api_key is not None or self.openai_base_url is not None

    @property
    def is_postgres(self) -> bool:
        """Whether the configured database is PostgreSQL (Supabase) rather than the embedded SQLite file."""
        return self.database_url.startswith(("postgresql://", "postgres://"))


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings, read once from the environment and `.env`."""
    return Settings()
