"""`asistente check` as an operator runs it: every problem in one table, against local doubles of the services.

The doubles are one HTTP server on 127.0.0.1 (the only address tests may reach) speaking OpenAI's, Twilio's (REST
and Content API) and Calendly's wire formats; the base URLs in the environment point at it, so the command runs
exactly as in production.
"""

from __future__ import annotations

import base64
import json
import secrets
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from pydantic import ValidationError
from typer.testing import CliRunner

from cli.main import app
from core.settings import Settings, get_settings, is_placeholder, is_placeholder_sid, is_placeholder_url
from integrations.twilio.content import content_api_base

ROOT = Path(__file__).resolve().parents[1]
runner = CliRunner()

ACCOUNT = "AC" + "0123456789abcdef" * 2
TEMPLATES = {
    "TWILIO_TEMPLATE_CONFIRMATION_SID": "HX" + "a1" * 16,
    "TWILIO_TEMPLATE_REMINDER_SID": "HX" + "b2" * 16,
    "TWILIO_TEMPLATE_CANCELLATION_SID": "HX" + "c3" * 16,
    "TWILIO_TEMPLATE_STAFF_ALERT_SID": "HX" + "d4" * 16,
    "TWILIO_CONTENT_CONFIRM_BUTTONS_SID": "HX" + "e5" * 16,
}
USER_URI = "https://api.calendly.com/users/U7K3M9P2Q5R8T1V4"
ORGANIZATION = "https://api.calendly.com/organizations/O2J8N4W6X1Z3C5B7"
CORTE = "https://api.calendly.com/event_types/F3H7K2M9Q4R8T1V6"
TINTE = "https://api.calendly.com/event_types/G4J8L3N1P5S9U2W7"
APPOINTMENT = {"twilio/text": {"body": "Hola {{1}}, tu cita de {{2}} es el {{3}} a las {{4}}."}}
STAFF_ALERT = {"twilio/text": {"body": "Cliente {{1}} ({{2}}): {{3}}"}}
BUTTONS = {
    "twilio/quick-reply": {
        "body": "{{1}}",
        "actions": [{"title": "Sí", "id": "confirm:{{2}}"}, {"title": "Cambiar", "id": "change:{{2}}"}],
    }
}
BUSINESS_YAML = f"""
name: Peluquería RB
timezone: Europe/Madrid
services:
  - {{name: Corte y Peinado, duration_minutes: 45, price_eur: 25, calendly_event_type: "{CORTE}"}}
  - {{name: Tinte, duration_minutes: 90, price_eur: 45}}
"""
HOURS = 'opening_hours: {tuesday: ["09:30-14:00"]}\n'


@dataclass
class LocalApi:
    """A loopback HTTP server answering JSON per (method, path), recording every request it gets."""

    routes: dict[tuple[str, str], tuple[int, Any]] = field(default_factory=dict)
    requests: list[tuple[str, str, dict[str, str], bytes]] = field(default_factory=list)

    def __post_init__(self) -> None:
        api = self

        class Handler(BaseHTTPRequestHandler):
            def _answer(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                api.requests.append((self.command, self.path, dict(self.headers), body))
                status, payload = api.routes.get((self.command, urlsplit(self.path).path), (404, None))
                if payload is None:
                    payload = {"code": 20404, "message": f"The requested resource {self.path} was not found"}
                data = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            do_GET = do_POST = _answer  # noqa: N815 - http.server's naming

            def log_message(self, format: str, *args: object) -> None:  # noqa: A002
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def base(self) -> str:
        """http://127.0.0.1:<port>"""
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def route(self, method: str, path: str, payload: Any, status: int = 200) -> None:
        """Answer `method path` with `payload` as JSON."""
        self.routes[(method, path)] = (status, payload)

    def paths(self) -> list[str]:
        """The path (and query) of every request received, in order."""
        return [path for _, path, _, _ in self.requests]

    def close(self) -> None:
        """Stop serving."""
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def local_api() -> Iterator[LocalApi]:
    """The services' double, empty: tests add the routes they need."""
    api = LocalApi()
    yield api
    api.close()


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[None]:
    monkeypatch.chdir(tmp_path)  # no developer .env
    for name in Settings.model_fields:
        monkeypatch.delenv(name.upper(), raising=False)
    monkeypatch.setenv("DATABASE_URL", f"sqlite:///{tmp_path / 'a.db'}")
    get_settings.cache_clear()
    yield
    get_settings.cache_clear()


def content(sid: str, types: dict[str, Any], name: str = "cita") -> dict[str, Any]:
    """A Content resource as Twilio's Content API returns it."""
    return {
        "sid": sid,
        "account_sid": ACCOUNT,
        "friendly_name": name,
        "language": "es",
        "variables": {},
        "types": types,
        "url": f"https://content.twilio.com/v1/Content/{sid}",
        "date_created": "2026-11-01T10:00:00Z",
        "date_updated": "2026-11-01T10:00:00Z",
    }


def approval(sid: str, status: str = "approved", reason: str = "") -> dict[str, Any]:
    """GET /v1/Content/{sid}/ApprovalRequests."""
    whatsapp = {"type": "whatsapp", "name": "cita", "category": "UTILITY", "status": status, "rejection_reason": reason}
    return {"account_sid": ACCOUNT, "sid": sid, "url": "", "whatsapp": whatsapp}


def event_type(uri: str, name: str, duration: int, active: bool = True) -> dict[str, Any]:
    """One item of Calendly's GET /event_types."""
    return {"uri": uri, "name": name, "active": active, "duration": duration, "slug": name.lower(), "kind": "solo"}


def configure(monkeypatch: pytest.MonkeyPatch, api: LocalApi, tmp_path: Path) -> dict[str, str]:
    """A production-like configuration against the double, every service answering well; returns the secrets."""
    keys = {name: secrets.token_hex(16) for name in ("openai", "twilio", "calendly", "signing", "jwt")}
    (tmp_path / "business.yaml").write_text(BUSINESS_YAML + HOURS, encoding="utf-8")
    env = {
        "BUSINESS_CONFIG": str(tmp_path / "business.yaml"),
        "OPENAI_API_KEY": "sk-proj-" + keys["openai"],
        "OPENAI_BASE_URL": api.base + "/v1",
        "TWILIO_ACCOUNT_SID": ACCOUNT,
        "TWILIO_AUTH_TOKEN": keys["twilio"],
        "TWILIO_WHATSAPP_NUMBER": "whatsapp:+34910123456",
        "TWILIO_API_BASE_URL": api.base,
        "STAFF_WHATSAPP_NUMBER": "+34611222333",
        "CALENDLY_ACCESS_TOKEN": keys["calendly"],
        "CALENDLY_USER_URI": USER_URI,
        "CALENDLY_WEBHOOK_SIGNING_KEY": keys["signing"],
        "CALENDLY_API_BASE_URL": api.base,
        "PUBLIC_BASE_URL": "https://reservas.peluqueria-rb.test",
        "JWT_SECRET": keys["jwt"],
        **TEMPLATES,
    }
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    api.route("GET", "/v1/models", {"object": "list", "data": [{"id": "gpt-5-mini", "object": "model"}]})
    account = {"sid": ACCOUNT, "friendly_name": "Peluquería RB", "status": "active"}
    api.route("GET", f"/2010-04-01/Accounts/{ACCOUNT}.json", account)
    types = [APPOINTMENT, APPOINTMENT, APPOINTMENT, STAFF_ALERT, BUTTONS]
    for sid, kinds in zip(TEMPLATES.values(), types, strict=True):
        api.route("GET", f"/v1/Content/{sid}", content(sid, kinds))
        api.route("GET", f"/v1/Content/{sid}/ApprovalRequests", approval(sid))
    me = {"uri": USER_URI, "name": "Peluquería RB", "email": "hola@peluqueria-rb.test", "timezone": "Europe/Madrid"}
    api.route("GET", "/users/me", {"resource": {**me, "current_organization": ORGANIZATION}})
    collection = [event_type(CORTE, "Corte y Peinado", 45), event_type(TINTE, "Tinte", 90)]
    api.route("GET", "/event_types", {"collection": collection, "pagination": {"count": 2, "next_page": None}})
    return keys


@dataclass(frozen=True)
class Row:
    area: str
    status: str
    detail: str


def table(output: str) -> dict[str, Row]:
    """The printed table by item (a key, a template key, a service), read by the header's column positions."""
    lines = output.splitlines()
    header = next(i for i, line in enumerate(lines) if line.startswith("area"))
    columns = [lines[header].index(name) for name in ("status", "item", "detail")]
    rows: dict[str, Row] = {}
    last = ""
    for line in lines[header + 1 :]:
        if not line.strip() or not line.startswith((" ", *_AREAS)):
            continue
        if line.startswith(" ") and last:  # a wrapped detail
            rows[last] = Row(rows[last].area, rows[last].status, rows[last].detail + " " + line.strip())
            continue
        area, status, item, detail = (
            line[: columns[0]].strip(),
            line[columns[0] : columns[1]].strip(),
            line[columns[1] : columns[2]].strip(),
            line[columns[2] :].strip(),
        )
        last = item if item not in rows else f"{item} ({area})"
        rows[last] = Row(area, status, detail)
    return rows


_AREAS = ("settings", "business", "database", "model", "twilio", "calendly", "tracing")


def test_env_example_copied_lists_every_placeholder_in_one_run(tmp_path: Path) -> None:
    """README step 1, before anything is filled in: both examples copied as they are."""
    (tmp_path / ".env").write_text((ROOT / ".env.example").read_text(encoding="utf-8"), encoding="utf-8")
    (tmp_path / "business.yaml").write_text((ROOT / "business.example.yaml").read_text(encoding="utf-8"))
    result = runner.invoke(app, ["check"])  # not offline: nothing may be contacted with placeholders anyway
    assert result.exit_code == 1, result.output
    rows = table(result.output)
    failed = {item for item, row in rows.items() if row.status == "FAILED"}
    assert failed == {
        "OPENAI_API_KEY",
        "TWILIO_ACCOUNT_SID",
        "TWILIO_AUTH_TOKEN",
        *TEMPLATES,
        "CALENDLY_ACCESS_TOKEN",
        "CALENDLY_USER_URI",
        "PUBLIC_BASE_URL",
        "JWT_SECRET",
        "Corte y Peinado",  # the example YAML's event type is Calendly's documentation id
    }
    assert rows["TWILIO_TEMPLATE_REMINDER_SID"].area == "twilio"
    assert "tu_user_id is a placeholder" in rows["CALENDLY_USER_URI"].detail
    assert "tu-dominio.example" in rows["PUBLIC_BASE_URL"].detail
    # .env.example leaves the signing key unset: `calendly subscribe` makes one; until then it is a warning.
    assert rows["CALENDLY_WEBHOOK_SIGNING_KEY"].status == "warning"
    assert "asistente calendly subscribe" in rows["CALENDLY_WEBHOOK_SIGNING_KEY"].detail
    warned = {item for item, row in rows.items() if row.status == "warning"}
    assert {"LANGSMITH_API_KEY", "STAFF_WHATSAPP_NUMBER", "TWILIO_WHATSAPP_NUMBER"} <= warned
    assert rows["gpt-5-mini"].status == "skipped"  # the model is not asked with a placeholder key
    assert rows["DATABASE_URL"].status == "ok" and rows["BUSINESS_CONFIG"].status == "ok"
    assert f"{len(failed)} problem(s) to fix" in result.output
    assert "changeme" not in result.output  # secrets are named, never shown


def test_settings_refuse_every_placeholder_at_once(tmp_path: Path) -> None:
    """What `serve` and every other command see with the copied .env.example: all refusals in one error."""
    (tmp_path / ".env").write_text((ROOT / ".env.example").read_text(encoding="utf-8"), encoding="utf-8")
    with pytest.raises(ValidationError) as caught:
        Settings()
    keys = {error["loc"][0] for error in caught.value.errors()}
    assert {"OPENAI_API_KEY", "TWILIO_AUTH_TOKEN", "JWT_SECRET", "TWILIO_ACCOUNT_SID", *TEMPLATES} <= keys
    assert "changeme" not in str(caught.value)


def test_field_errors_and_placeholders_are_reported_together(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DATABASE_URL", "mysql://salon@db/x")
    (tmp_path / ".env").write_text("PUBLIC_BASE_URL=not a url\nRATE_LIMIT_PER_MINUTE=0\nOPENAI_API_KEY=changeme\n")
    result = runner.invoke(app, ["check", "--offline"])
    assert result.exit_code == 1
    rows = table(result.output)
    assert {rows[k].status for k in ("PUBLIC_BASE_URL", "RATE_LIMIT_PER_MINUTE", "OPENAI_API_KEY")} == {"FAILED"}
    assert rows["DATABASE_URL"].status == "FAILED" and "must start with" in rows["DATABASE_URL"].detail
    assert rows["DATABASE_URL (database)"].status == "skipped"  # not the default database in its place
    assert "Traceback" not in result.output


def test_defaults_pass_and_the_model_row_tells_the_truth() -> None:
    result = runner.invoke(app, ["check", "--offline"])
    assert result.exit_code == 0, result.output
    rows = table(result.output)
    assert rows["OPENAI_API_KEY"] == Row(
        "model", "warning", "not configured: serve will refuse to start; set OPENAI_API_KEY or OPENAI_BASE_URL"
    )
    assert rows["TWILIO_ACCOUNT_SID"].status == "off" and rows["CALENDLY_ACCESS_TOKEN"].status == "off"
    assert "check passed" in result.output


def test_the_prompt_version_is_shown_and_tracing_without_masking_or_hash_key_warns(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from agent.prompt_version import prompt_version
    from core.business import example_business

    rows = table(runner.invoke(app, ["check", "--offline"]).output)
    assert rows["prompt version"].detail.startswith(prompt_version(example_business()) + " ")
    monkeypatch.setenv("LANGSMITH_TRACING", "true")
    monkeypatch.setenv("LANGSMITH_API_KEY", "lsv2_pt_" + secrets.token_hex(16))
    monkeypatch.setenv("LANGSMITH_MASK_PII", "false")
    get_settings.cache_clear()
    try:
        rows = table(runner.invoke(app, ["check", "--offline"]).output)
    finally:
        get_settings.cache_clear()
    assert rows["LANGSMITH_MASK_PII"].status == "warning" and rows["LANGSMITH_HASH_KEY"].status == "warning"


def test_a_production_configuration_passes_against_the_services(
    monkeypatch: pytest.MonkeyPatch, local_api: LocalApi, tmp_path: Path
) -> None:
    keys = configure(monkeypatch, local_api, tmp_path)
    result = runner.invoke(app, ["check"])
    assert result.exit_code == 0, result.output
    rows = table(result.output)
    assert {row.status for row in rows.values()} == {"ok"}, result.output
    assert rows["Corte y Peinado"].detail == f"-> 'Corte y Peinado' ({CORTE})"
    assert rows["Tinte"].detail == f"-> 'Tinte' ({TINTE}, matched by name)"
    assert rows["CALENDLY_ACCESS_TOKEN"].detail == f"user {USER_URI} (Peluquería RB)"
    assert "approved for WhatsApp" in rows["TWILIO_TEMPLATE_REMINDER_SID"].detail
    assert rows["gpt-5-mini"].detail == f"served by {local_api.base}/v1"
    # Each content fetched with the account's basic auth; no secret printed.
    content_calls = [
        r for r in local_api.requests if r[1] == f"/v1/Content/{TEMPLATES['TWILIO_TEMPLATE_STAFF_ALERT_SID']}"
    ]
    expected_auth = "Basic " + base64.b64encode(f"{ACCOUNT}:{keys['twilio']}".encode()).decode()
    assert [r[2]["Authorization"] for r in content_calls] == [expected_auth]
    assert not any(secret in result.output for secret in keys.values())


def test_template_and_event_type_mistakes_are_each_a_row(
    monkeypatch: pytest.MonkeyPatch, local_api: LocalApi, tmp_path: Path
) -> None:
    configure(monkeypatch, local_api, tmp_path)
    confirmation, reminder, cancellation, staff, buttons = TEMPLATES.values()
    local_api.routes.pop(("GET", f"/v1/Content/{confirmation}"))  # 404: deleted, or another account's
    local_api.route("GET", f"/v1/Content/{reminder}", content(reminder, {"twilio/text": {"body": "{{1}} {{5}}"}}))
    local_api.route("GET", f"/v1/Content/{cancellation}/ApprovalRequests", approval(cancellation, "rejected", "x"))
    local_api.route("GET", f"/v1/Content/{staff}/ApprovalRequests", approval(staff, "pending"))
    local_api.route("GET", f"/v1/Content/{buttons}", content(buttons, {"twilio/text": {"body": "{{1}} {{2}}"}}))
    (tmp_path / "business.yaml").write_text(
        BUSINESS_YAML.replace("duration_minutes: 90", "duration_minutes: 60")
        + "  - {name: Barba, duration_minutes: 20, price_eur: 10}\n"
        + "  - {name: Mechas, duration_minutes: 120, price_eur: 60, calendly_event_type: "
        + '"https://api.calendly.com/event_types/H5K9M4P2R6T1W3Y8"}\n'
        + HOURS,
        encoding="utf-8",
    )
    result = runner.invoke(app, ["check"])
    assert result.exit_code == 1
    rows = table(result.output)
    assert rows["TWILIO_TEMPLATE_CONFIRMATION_SID"].status == "FAILED"
    assert "no such content in this account" in rows["TWILIO_TEMPLATE_CONFIRMATION_SID"].detail
    assert rows["TWILIO_TEMPLATE_REMINDER_SID"].status == "FAILED"
    assert "uses {{5}}, which the server never fills" in rows["TWILIO_TEMPLATE_REMINDER_SID"].detail
    assert "does not show {{2}} service, {{3}} date, {{4}} time" in rows["TWILIO_TEMPLATE_REMINDER_SID"].detail
    assert rows["TWILIO_TEMPLATE_CANCELLATION_SID"].status == "FAILED"
    assert "WhatsApp approval rejected: x" in rows["TWILIO_TEMPLATE_CANCELLATION_SID"].detail
    assert rows["TWILIO_TEMPLATE_STAFF_ALERT_SID"].status == "warning"
    assert rows["TWILIO_CONTENT_CONFIRM_BUTTONS_SID"].status == "FAILED"
    assert "not twilio/quick-reply" in rows["TWILIO_CONTENT_CONFIRM_BUTTONS_SID"].detail
    assert rows["Corte y Peinado"].status == "ok"
    assert rows["Tinte"].status == "warning" and "90 min on Calendly, 60 in the YAML" in rows["Tinte"].detail
    assert rows["Barba"].status == "warning" and "cannot be booked" in rows["Barba"].detail
    assert rows["Mechas"].status == "FAILED" and f"not an event type of {USER_URI}" in rows["Mechas"].detail


def test_a_rejected_twilio_account_skips_its_templates(
    monkeypatch: pytest.MonkeyPatch, local_api: LocalApi, tmp_path: Path
) -> None:
    configure(monkeypatch, local_api, tmp_path)
    local_api.route("GET", f"/2010-04-01/Accounts/{ACCOUNT}.json", {"code": 20003, "message": "Authenticate"}, 401)
    result = runner.invoke(app, ["check"])
    assert result.exit_code == 1
    rows = table(result.output)
    assert rows["TWILIO_ACCOUNT_SID"].status == "FAILED" and "do not match" in rows["TWILIO_ACCOUNT_SID"].detail
    assert {rows[key].status for key in TEMPLATES} == {"skipped"}
    assert not any(path.startswith("/v1/Content") for path in local_api.paths())


def test_offline_contacts_nothing_and_still_maps_the_services(
    monkeypatch: pytest.MonkeyPatch, local_api: LocalApi, tmp_path: Path
) -> None:
    configure(monkeypatch, local_api, tmp_path)
    result = runner.invoke(app, ["check", "--offline"])
    assert result.exit_code == 0, result.output
    assert local_api.requests == []
    rows = table(result.output)
    assert rows["Corte y Peinado"] == Row("calendly", "skipped", f"-> {CORTE}; not verified (--offline)")
    assert {rows[key].status for key in TEMPLATES} == {"skipped"}


def test_placeholder_detection_catches_documentation_values_and_passes_real_ones() -> None:
    for url in (
        "https://tu-dominio.example",
        "https://api.calendly.com/users/tu_user_id",
        "https://api.calendly.com/users/your_user_id",
        "https://api.calendly.com/event_types/AAAAAAAAAAAAAAAA",
        "https://asistente.example.com",
        "https://xxx.ngrok.app",
        "https://api.calendly.com/users/<user>",
    ):
        assert is_placeholder_url(url), url
    for url in (
        "https://tu-peluqueria.es",
        "https://api.calendly.com/users/GBGBDCAADAEDCRZ2",
        "https://api.calendly.com/event_types/5f3c1f0a-8b3e-4c1d-9a2b-0e4d7c6b5a21",
        "http://localhost:8000",
        "http://127.0.0.1:8080/v1",
    ):
        assert not is_placeholder_url(url), url
    assert is_placeholder_sid("HXxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx") and is_placeholder_sid("ACXXXXXXXX")
    assert is_placeholder_sid("HX<tu_template>") and is_placeholder_sid("changeme")
    assert not is_placeholder_sid(TEMPLATES["TWILIO_TEMPLATE_REMINDER_SID"]) and not is_placeholder_sid(ACCOUNT)
    assert is_placeholder("example-token") and not is_placeholder("eyJhbGciOiJIUzI1NiJ9.example")


def test_content_api_base_follows_the_twilio_base_url() -> None:
    assert content_api_base("https://api.twilio.com") == "https://content.twilio.com"
    assert content_api_base("https://api.dublin.ie1.twilio.com/") == "https://content.dublin.ie1.twilio.com"
    assert content_api_base("http://127.0.0.1:9000") == "http://127.0.0.1:9000"  # a proxy or double serves both
