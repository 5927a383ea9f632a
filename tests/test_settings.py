"""Settings: every documented key exists, placeholders are refused where their backend is on."""

from __future__ import annotations

import re
import secrets
from pathlib import Path

import pytest
from pydantic import SecretStr, ValidationError
from typer.testing import CliRunner

from cli.main import app
from core.settings import MAKE_KEY, Settings, get_settings, is_placeholder, weak_key
from integrations.calendly.subscription import generate_signing_key

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
OWN_KEYS = ["JWT_SECRET", "CALENDLY_WEBHOOK_SIGNING_KEY", "METRICS_TOKEN"]


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.chdir(tmp_path)  # no developer .env
    for key in [*DESIGN_KEYS, *OWN_KEYS]:
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


@pytest.mark.parametrize("key", OWN_KEYS)
@pytest.mark.parametrize(
    ("value", "why"),
    [
        ("a", "too short (1 of 32 bytes)"),
        ("0123456789abcdef0123456789abcde", "too short (31 of 32 bytes)"),
        ("d" * 40, "not random"),
        ("passwordpasswordpasswordpassword", "not random"),
    ],
)
def test_keys_we_verify_with_need_32_random_bytes(
    monkeypatch: pytest.MonkeyPatch, key: str, value: str, why: str
) -> None:
    monkeypatch.setenv(key, value)
    with pytest.raises(ValidationError) as refused:
        Settings()
    (error,) = refused.value.errors()
    assert error["loc"] == (key,)
    assert why in error["msg"] and "at least 32 random bytes" in error["msg"] and MAKE_KEY in error["msg"]
    assert len(value) < 8 or value not in str(refused.value)  # never the secret itself


@pytest.mark.parametrize(
    "value", [secrets.token_hex(16), secrets.token_urlsafe(32), generate_signing_key(), "0123456789abcdef" * 2]
)
def test_random_keys_of_32_bytes_pass(monkeypatch: pytest.MonkeyPatch, value: str) -> None:
    for key in OWN_KEYS:
        monkeypatch.setenv(key, value)
    settings = Settings()
    assert settings.jwt_secret is not None and settings.jwt_secret.get_secret_value() == value
    assert weak_key(value) is None


def test_the_suggested_command_makes_a_key_that_passes() -> None:
    code = MAKE_KEY.removeprefix('python -c "').removesuffix('"')
    printed: list[str] = []
    exec(code, {"print": printed.append})  # the very command the refusal tells the operator to run
    assert weak_key(printed[0]) is None


def test_a_short_key_stops_every_command_with_one_line_per_key(monkeypatch: pytest.MonkeyPatch) -> None:
    get_settings.cache_clear()
    monkeypatch.setenv("JWT_SECRET", "a")
    monkeypatch.setenv("CALENDLY_WEBHOOK_SIGNING_KEY", "b")
    try:
        result = CliRunner().invoke(app, ["admin", "token"])
    finally:
        get_settings.cache_clear()
    assert result.exit_code == 1
    lines = result.output.strip().splitlines()
    assert lines[0] == "configuration error (.env / environment):"
    assert [line.split(":")[0].strip() for line in lines[1:]] == ["CALENDLY_WEBHOOK_SIGNING_KEY", "JWT_SECRET"]
    assert all("too short (1 of 32 bytes)" in line and MAKE_KEY in line for line in lines[1:])
    assert "Traceback" not in result.output


def test_check_lists_a_short_key_as_failed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("JWT_SECRET", "a")
    result = CliRunner().invoke(app, ["check", "--offline"])
    assert result.exit_code == 1
    (row,) = [line for line in result.output.splitlines() if "JWT_SECRET" in line]
    assert "FAILED" in row and "too short" in row
