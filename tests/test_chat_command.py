"""`asistente chat` against a local OpenAI-compatible server (OPENAI_BASE_URL), as a developer would use it."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from cli.main import app
from core.settings import get_settings

COMPLETION = {
    "id": "chatcmpl-local-1",
    "object": "chat.completion",
    "created": 1795541402,
    "model": "local-model",
    "choices": [
        {
            "index": 0,
            "message": {"role": "assistant", "content": "¡Hola! ¿En qué te ayudo?", "refusal": None},
            "finish_reason": "stop",
            "logprobs": None,
        }
    ],
    "usage": {"prompt_tokens": 10, "completion_tokens": 7, "total_tokens": 17},
    "system_fingerprint": None,
}


class _OpenAICompatible(BaseHTTPRequestHandler):
    requests: list[dict[str, Any]] = []

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        type(self).requests.append({"path": self.path, "body": body})
        payload = json.dumps(COMPLETION).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, format: str, *args: object) -> None:
        return None


@pytest.fixture
def local_model() -> Iterator[str]:
    _OpenAICompatible.requests = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), _OpenAICompatible)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/v1"
    finally:
        server.shutdown()


def test_chat_talks_to_the_configured_model_and_remembers(
    local_model: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("DATABASE_URL", f"sqlite:///{tmp_path / 'chat.db'}")
    monkeypatch.setenv("OPENAI_BASE_URL", local_model)
    monkeypatch.setenv("OPENAI_API_KEY", "sk-local-0123456789")
    monkeypatch.setenv("OPENAI_MAX_RETRIES", "0")
    get_settings.cache_clear()
    try:
        result = CliRunner().invoke(app, ["chat", "--as", "console:ana", "--name", "Ana"], input="hola\n/quit\n")
    finally:
        get_settings.cache_clear()
    assert result.exit_code == 0, result.output
    assert "asistente › ¡Hola! ¿En qué te ayudo?" in result.output
    [request] = _OpenAICompatible.requests
    assert request["path"] == "/v1/chat/completions"
    sent = request["body"]["messages"]
    assert sent[-1] == {"role": "user", "content": "hola"}
    assert "book_appointment" in json.dumps(request["body"]["tools"])
    assert sqlite_rows(tmp_path / "chat.db") == [("console:ana", "Ana")]


def sqlite_rows(path: Path) -> list[tuple[str, str]]:
    import sqlite3

    with sqlite3.connect(path) as conn:
        return list(conn.execute("SELECT wa_id, profile_name FROM clients"))


def test_chat_without_a_model_points_to_the_demo(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)
    get_settings.cache_clear()
    try:
        result = CliRunner().invoke(app, ["chat"], input="hola\n")
    finally:
        get_settings.cache_clear()
    assert result.exit_code == 1 and "asistente demo" in result.output
