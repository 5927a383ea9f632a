"""Settings: every documented key exists, placeholders are refused where their backend is on."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from pydantic import SecretStr, ValidationError

from core.settings import Settings, get_settings, is_placeholder

ROOT = Path(__file__).resolve().parents[1]
DESIGN_KEYS = [
    "DATABASE_URL",
    "BUSINESS_CONFIG",
    "OPENAI_API_KEY",
    "OPENAI_MODEL",
    "OPENAI_BASE_URL",
    "TWILIO_ACCOUNT_SID",
    "TWILIO_AUTH_TOKEN",
    "TWILIO_WHATSAPP_NUMBER",
    "TWILIO_API_BASE_URL",
    "TWILIO_TEMPLATE_CONFIRMATION_SID",
    "TWILIO_TEMPLATE_REMINDER_SID",
    "TWILIO_TEMPLATE_CANCELLATION_SID",
    "CALENDLY_ACCESS_TOKEN",
    "CALENDLY_USER_URI",
    "CALENDLY_WEBHOOK_SIGNING_KEY",
    "CALENDLY_API_BASE_URL",
    "PUBLIC_BASE_URL",
    "JWT_SECRET",
    "STAFF_WHATSAPP_NUMBER",
    "LANGSMITH_TRACING",
    "LANGSMITH_API_KEY",
    "LANGSMITH_PROJECT",
    "LANGSMITH_ENDPOINT",
]


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.chdir(tmp_path)  # no developer .env
    for key in DESIGN_KEYS:
        monkeypatch.delenv(key, raising=False)


def test_every_design_key_is_a_setting_and_in_env_example() -> None:
    fields = {name.upper() for name in Settings.model_fields}
    example = (ROOT / ".env.example").read_text()
    example_keys = set(re.findall(r"^#? ?([A-Z][A-Z0-9_]+)=", example, flags=re.M))
    for key in DESIGN_KEYS:
        assert key in fields, key
        assert key in example_keys, key
    # and .env.example documents nothing that does not exist
    assert example_keys <= fields


def test_secrets_are_secretstr_and_urls_are_urls() -> None:
    settings = Settings(
        openai_api_key="sk-proj-9f8e7d6c5b4a",
        jwt_secret="0123456789abcdef0123456789abcdef",  # type: ignore[arg-type]
    )
    assert isinstance(settings.openai_api_key, SecretStr)
    assert "9f8e7d" not in repr(settings)
    assert str(settings.calendly_api_base_url) == "https://api.calendly.com/"
    with pytest.raises(ValidationError, match="public_base_url"):
        Settings(public_base_url="not a url")  # type: ignore[arg-type]


def test_defaults_are_the_embedded_backends() -> None:
    settings = Settings()
    assert settings.database_url == "sqlite:///./data/asistente.db"
    assert not settings.twilio_enabled and not settings.calendly_enabled and not settings.openai_enabled
    assert settings.rate_limit_per_minute == 30
    assert settings.reminder_offsets_hours == [24.0, 2.0]


def test_env_file_and_list_parsing(tmp_path: Path) -> None:
    (tmp_path / ".env").write_text("REMINDER_OFFSETS_HOURS=48,3\nOPENAI_BASE_URL=\nDATABASE_URL=postgresql://u@h/db\n")
    settings = Settings()
    assert settings.reminder_offsets_hours == [48.0, 3.0]
    assert settings.openai_base_url is None  # empty values are ignored, not invalid
    assert settings.is_postgres


@pytest.mark.parametrize(
    ("env", "key"),
    [
        (
            {
                "TWILIO_ACCOUNT_SID": "AC0123456789abcdef",
                "TWILIO_AUTH_TOKEN": "tu_auth_token",
                "TWILIO_WHATSAPP_NUMBER": "whatsapp:+14155238886",
            },
            "TWILIO_AUTH_TOKEN",
        ),
        ({"TWILIO_ACCOUNT_SID": "ACxxxxxxxxxxxxxxxx", "TWILIO_AUTH_TOKEN": "f00dfeed"}, "TWILIO_ACCOUNT_SID"),
        ({"OPENAI_API_KEY": "sk-proj-tu_api_key"}, "OPENAI_API_KEY"),
        ({"CALENDLY_ACCESS_TOKEN": "changeme"}, "CALENDLY_ACCESS_TOKEN"),
        ({"JWT_SECRET": "tu_jwt_secret_muy_largo_y_seguro"}, "JWT_SECRET"),
        ({"LANGSMITH_TRACING": "true", "LANGSMITH_API_KEY": "changeme"}, "LANGSMITH_API_KEY"),
        ({"LANGSMITH_TRACING": "true"}, "LANGSMITH_API_KEY"),
    ],
)
def test_placeholder_secret_refused_naming_the_key(
    monkeypatch: pytest.MonkeyPatch, env: dict[str, str], key: str
) -> None:
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    with pytest.raises(ValidationError, match=key):
        Settings()


def test_placeholder_ignored_when_backend_is_off(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LANGSMITH_API_KEY", "changeme")  # tracing is off: the key is unused
    assert Settings().langsmith_tracing is False


def test_placeholder_detection_is_not_fooled_by_random_tokens() -> None:
    assert is_placeholder("changeme") and is_placeholder("tu_auth_token") and is_placeholder("sk-proj-tu_api_key")
    assert not is_placeholder("eyJhbGciOiJIUzI1NiJ9.tu_xxxxexample")  # real tokens may contain any substring


def test_get_settings_is_cached_and_not_read_at_import(monkeypatch: pytest.MonkeyPatch) -> None:
    get_settings.cache_clear()
    monkeypatch.setenv("OPENAI_MODEL", "gpt-test")
    first = get_settings()
    assert first.openai_model == "gpt-test"
    assert get_settings() is first
    get_settings.cache_clear()
