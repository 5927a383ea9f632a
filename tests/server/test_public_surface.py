"""What the public address shows: no metrics without METRICS_TOKEN, no API documentation unless asked for in
development; `asistente serve --metrics-port` serves the metrics on their own (loopback by default) listener."""

from __future__ import annotations

import dataclasses
import secrets
import signal
import socket
import subprocess
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path

import pytest

from core.settings import Settings
from server.options import ServerOptions
from tests.server.conftest import FAST, Secrets, StartApp
from tests.server.helpers import inbound_form, post_signed
from tests.test_worker_metrics import EXIT_DEADLINE_SECONDS, asistente, free_port, scrape, worker_env

DOCS = ["/docs", "/redoc", "/openapi.json", "/docs/oauth2-redirect"]


async def test_metrics_and_docs_are_not_public_by_default(start_app: StartApp) -> None:
    async with start_app(run_worker=False) as running:
        for path in ["/metrics", *DOCS]:
            response = await running.client.get(path)
            assert response.status_code == 404, path
            assert "asistente_" not in response.text and "swagger" not in response.text.lower()


async def test_metrics_answer_only_the_metrics_token(
    start_app: StartApp, make_settings: Callable[..., Settings], keys: Secrets
) -> None:
    token = secrets.token_urlsafe(32)
    async with start_app(settings=make_settings(metrics_token=token), run_worker=False) as running:
        await post_signed(running.client, keys.twilio_token, "/webhook/whatsapp", inbound_form("SMq", "hola"))
        refused = [
            await running.client.get("/metrics"),
            await running.client.get("/metrics", headers={"Authorization": f"Bearer {token[:-1]}"}),
            await running.client.get("/metrics", headers={"Authorization": f"Bearer {keys.jwt_secret}"}),
            await running.client.get("/metrics", headers={"Authorization": f"Basic {token}"}),
        ]
        allowed = await running.client.get("/metrics", headers={"Authorization": f"Bearer {token}"})
    for response in refused:
        assert response.status_code == 401
        assert response.headers["www-authenticate"] == "Bearer"
        assert "asistente_" not in response.text
    assert allowed.status_code == 200
    assert 'asistente_inbound_messages_total{status="pending"} 1.0' in allowed.text


async def test_api_docs_only_with_the_development_flag(start_app: StartApp) -> None:
    async with start_app(options=dataclasses.replace(FAST, api_docs=True), run_worker=False) as running:
        schema = await running.client.get("/openapi.json")
        page = await running.client.get("/docs")
    assert schema.status_code == 200 and "/api/whatsapp/send" in schema.json()["paths"]
    assert page.status_code == 200 and "swagger" in page.text.lower()


def test_api_docs_cannot_be_switched_on_from_the_environment() -> None:
    with pytest.raises(ValueError, match="--api-docs"):
        ServerOptions.from_env({"ASISTENTE_API_DOCS": "true"})


def get_status(url: str) -> int:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return int(response.status)
    except urllib.error.HTTPError as exc:
        return exc.code


def test_serve_metrics_port_serves_them_off_the_public_address(tmp_path: Path) -> None:
    env = worker_env(tmp_path)
    port, metrics_port = free_port(), free_port()
    command = [
        *asistente(),
        "serve",
        "--no-worker",
        "--no-agent",
        "--port",
        str(port),
        "--metrics-port",
        str(metrics_port),
    ]
    proc = subprocess.Popen(command, cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        body = scrape(f"http://127.0.0.1:{metrics_port}/metrics", proc)
        assert "asistente_http_requests_total" in body or "asistente_inbound_messages_total" in body
        scrape(f"http://127.0.0.1:{port}/health", proc)  # the app answers too, once uvicorn is up
        assert get_status(f"http://127.0.0.1:{port}/metrics") == 404
        assert get_status(f"http://127.0.0.1:{port}/docs") == 404
        # The app's requests are counted in the registry the separate listener serves.
        again = scrape(f"http://127.0.0.1:{metrics_port}/metrics", proc)
        assert 'route="/health",status="200"' in again
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            _, err = proc.communicate(timeout=EXIT_DEADLINE_SECONDS)
        except subprocess.TimeoutExpired:
            proc.kill()
            _, err = proc.communicate()
    # uvicorn shuts down cleanly, then re-raises the signal it caught: the exit status is SIGTERM's own.
    assert proc.returncode in (0, -signal.SIGTERM), err
    assert "Traceback" not in err
    with pytest.raises(ConnectionRefusedError):  # the metrics listener went down with the server
        socket.create_connection(("127.0.0.1", metrics_port), timeout=2).close()
