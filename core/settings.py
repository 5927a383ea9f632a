"""Application settings, loaded from the environment and `.env` by `get_settings()`.

Nothing here runs at import time: call `get_settings()` (cached) from a composition root (CLI, app factory) and pass
what is needed down through constructors.
"""

from __future__ import annotations

import re
from functools import lru_cache
from pathlib import Path
from typing import Annotated, Self

from pydantic import AnyHttpUrl, Field, SecretStr, field_validator, model_validator
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
    "<",
)
_PLACEHOLDER_EXACT = {"", "secret", "password", "token", "test", "xxx"}
_VENDOR_PREFIXES = ("sk-proj-", "sk-", "lsv2_pt_", "lsv2_sk_")

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


class Settings(BaseSettings):
    """Every configuration key of Asistente. Field names map to upper-case environment variables."""

    model_config = SettingsConfigDict(env_file=".env", env_file_encoding="utf-8", extra="ignore", env_ignore_empty=True)

    # Persistence
    database_url: str = DEFAULT_DATABASE_URL
    business_config: Path = Path("business.yaml")

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
        """Refuse a documentation placeholder in any secret whose backend is switched on."""
        checks: list[tuple[str, SecretStr | None, bool]] = [
            ("OPENAI_API_KEY", self.openai_api_key, self.openai_api_key is not None),
            ("TWILIO_AUTH_TOKEN", self.twilio_auth_token, self.twilio_enabled),
            ("CALENDLY_ACCESS_TOKEN", self.calendly_access_token, self.calendly_access_token is not None),
            (
                "CALENDLY_WEBHOOK_SIGNING_KEY",
                self.calendly_webhook_signing_key,
                self.calendly_webhook_signing_key is not None,
            ),
            ("JWT_SECRET", self.jwt_secret, self.jwt_secret is not None),
            ("LANGSMITH_API_KEY", self.langsmith_api_key, self.langsmith_tracing),
        ]
        for key, secret, enabled in checks:
            if enabled and (secret is None or is_placeholder(secret.get_secret_value())):
                raise ValueError(f"{key} is a placeholder or empty; set a real value or remove the key")
        if self.twilio_account_sid is not None and re.fullmatch(r"AC[xX]+", self.twilio_account_sid):
            raise ValueError("TWILIO_ACCOUNT_SID is a placeholder; set your real Account SID or remove the key")
        if self.twilio_account_sid is not None and self.twilio_auth_token is None:
            raise ValueError("TWILIO_AUTH_TOKEN is required when TWILIO_ACCOUNT_SID is set")
        if self.twilio_enabled and not self.twilio_whatsapp_number:
            raise ValueError("TWILIO_WHATSAPP_NUMBER is required when Twilio is configured")
        return self

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
