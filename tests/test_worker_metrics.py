"""`asistente worker --metrics-port`: a standalone worker serves its own Prometheus registry, and stops cleanly."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from server.ops.metrics import ServerMetrics
from server.ops.metrics_server import serve_metrics

ROOT = Path(__file__).resolve().parent.parent
# Generous: the first import of LangGraph and friends on a cold CI machine takes seconds.
STARTUP_DEADLINE_SECONDS = 60.0
EXIT_DEADLINE_SECONDS = 30.0


def free_port() -> int:
    """A port nothing listens on right now (the OS picks it; closed again before the worker binds it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def asistente() -> list[str]:
    """The console script of this virtualenv, as a user runs it (or the module, if the project is not installed)."""
    script = Path(sys.executable).with_name("asistente")
    return [str(script)] if script.exists() else [sys.executable, "-m", "cli.main"]


def worker_env(tmp_path: Path) -> dict[str, str]:
    """A bare environment: a temporary SQLite database, no model, no Twilio or Calendly, no tracing."""
    keep = ("PATH", "HOME", "LANG", "LC_ALL", "TMPDIR", "SYSTEMROOT")
    env = {key: os.environ[key] for key in keep if key in os.environ}
    env.update(
        DATABASE_URL=f"sqlite:///{tmp_path / 'worker.db'}",
        LANGSMITH_TRACING="false",
        LOG_LEVEL="INFO",
        # Only for the `-m cli.main` fallback; the installed console script ignores it.
        PYTHONPATH=str(ROOT),
    )
    return env


def scrape(url: str, proc: subprocess.Popen[str]) -> str:
    """GET `url` as soon as it answers; fail early with the worker's output if it exits first."""
    deadline = time.monotonic() + STARTUP_DEADLINE_SECONDS
    while True:
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                assert response.status == 200
                body: bytes = response.read()
                return body.decode()
        except (urllib.error.URLError, ConnectionError):
            if time.monotonic() > deadline:
                raise
        # Waiting on the process doubles as the poll interval, and notices a worker that died at start-up.
        try:
            proc.wait(timeout=0.2)
        except subprocess.TimeoutExpired:
            continue
        out, err = proc.communicate()
        pytest.fail(f"the worker exited with {proc.returncode} before serving metrics:\n{out}\n{err}")


def test_worker_serves_its_metrics_and_stops_on_sigterm(tmp_path: Path) -> None:
    env = worker_env(tmp_path)
    migrated = subprocess.run(
        [*asistente(), "db", "migrate"], check=False, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60
    )
    assert migrated.returncode == 0, migrated.stderr

    port = free_port()
    command = [*asistente(), "worker", "--no-agent", "--metrics-port", str(port)]
    proc = subprocess.Popen(command, cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        body = scrape(f"http://127.0.0.1:{port}/metrics", proc)
        assert "# TYPE asistente_turns_total counter" in body
        assert "asistente_delivery_attempts_total" in body

        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=EXIT_DEADLINE_SECONDS)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 0, err
    assert "Traceback" not in err
    assert "worker started" in out + err
    # Nothing listens any more: the endpoint went down with the worker.
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", port), timeout=2).close()


def test_a_taken_metrics_port_fails_with_one_line(tmp_path: Path) -> None:
    env = worker_env(tmp_path)
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = subprocess.run(
            [*asistente(), "worker", "--no-agent", "--metrics-port", str(port)],
            check=False,
            cwd=tmp_path,
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )
    assert result.returncode == 1
    assert f"cannot serve metrics on 127.0.0.1:{port}" in result.stderr
    assert "Traceback" not in result.stderr


def test_the_endpoint_serves_one_registry_and_releases_its_port() -> None:
    metrics = ServerMetrics()
    metrics.turns.labels(kind="customer", outcome="ok").inc()
    with serve_metrics(metrics, host="127.0.0.1", port=0) as address:
        assert address.url == f"http://127.0.0.1:{address.port}/metrics"
        with urllib.request.urlopen(address.url, timeout=5) as response:
            body = response.read().decode()
    assert 'asistente_turns_total{kind="customer",outcome="ok"} 1.0' in body
    # Only this registry: nothing from prometheus_client's process-global one.
    assert "python_gc_objects_collected_total" not in body
    # The port is released at once: a restarted worker binds it again (despite the scrape's TIME_WAIT).
    with serve_metrics(metrics, host="127.0.0.1", port=address.port) as again:
        assert again.port == address.port
