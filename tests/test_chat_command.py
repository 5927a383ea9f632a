"""`asistente chat` against a local OpenAI-compatible server (OPENAI_BASE_URL), as a developer would use it.

Most tests run the command as a real process: piped like a script, or on a pseudo-terminal like a person, where
prompt_toolkit edits the line and Ctrl-C is a real SIGINT.
"""

from __future__ import annotations

import json
import signal
import socket
import sqlite3
import subprocess
from collections.abc import Iterator
from datetime import date, datetime, time, timedelta
from pathlib import Path

import pytest
from typer.testing import CliRunner

from cli.main import app
from core.business import example_business
from core.settings import get_settings
from tests.chat_harness import (
    GREETING,
    HANG,
    ModelDouble,
    Terminal,
    calls,
    chat_env,
    command,
    failure,
    run_piped,
    text,
)

UP, LEFT = "\x1b[A", "\x1b[D"
CTRL_C, CTRL_D = "\x03", "\x04"


@pytest.fixture
def model() -> Iterator[ModelDouble]:
    with ModelDouble() as double:
        yield double


@pytest.fixture
def terminal(model: ModelDouble, tmp_path: Path) -> Iterator[Terminal]:
    # `asistente chat` on a pseudo-terminal; killed at the end if a failed assertion left it running.
    opened = Terminal(command("--as", "console:ana"), chat_env(tmp_path, model.url), tmp_path)
    yield opened
    opened.close()


def test_chat_talks_to_the_configured_model_and_remembers(
    model: ModelDouble, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # In-process too: Typer's runner gives stdin as an in-memory stream, read without the event loop.
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("DATABASE_URL", f"sqlite:///{tmp_path / 'chat.db'}")
    monkeypatch.setenv("OPENAI_BASE_URL", model.url)
    monkeypatch.setenv("OPENAI_API_KEY", "sk-local-0123456789")
    monkeypatch.setenv("OPENAI_MAX_RETRIES", "0")
    get_settings.cache_clear()
    try:
        result = CliRunner().invoke(app, ["chat", "--as", "console:ana", "--name", "Ana"], input="hola\n/quit\n")
    finally:
        get_settings.cache_clear()
    assert result.exit_code == 0, result.output
    assert f"asistente › {GREETING}" in result.output
    [request] = model.requests
    assert request["path"] == "/v1/chat/completions"
    sent = request["body"]["messages"]
    assert sent[-1] == {"role": "user", "content": "hola"}
    assert "book_appointment" in json.dumps(request["body"]["tools"])
    assert sqlite_rows(tmp_path / "chat.db", "SELECT wa_id, profile_name FROM clients") == [("console:ana", "Ana")]


def sqlite_rows(path: Path, sql: str) -> list[tuple[object, ...]]:
    with sqlite3.connect(path) as conn:
        return list(conn.execute(sql))


def test_chat_without_a_model_points_to_the_demo(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)
    get_settings.cache_clear()
    try:
        result = CliRunner().invoke(app, ["chat"], input="hola\n")
    finally:
        get_settings.cache_clear()
    assert result.exit_code == 1 and "asistente demo" in result.output


def bookable_day() -> date:
    """A day the example salon is open, far enough ahead for any booking rule, at 10:00 free on a fresh database."""
    business = example_business()
    day = datetime.now(business.tz).date() + timedelta(days=2)
    while not any(r.start <= time(10) for r in business.hours_on(day)):
        day += timedelta(days=1)
    return day


def test_piped_booking_shows_tool_calls_and_the_confirmation(model: ModelDouble, tmp_path: Path) -> None:
    day = bookable_day().isoformat()
    model.script = [
        calls(("check_availability", {"service": "corte", "date_from": day})),
        text("Tengo las 10:00 libre."),
        calls(("book_appointment", {"service": "corte", "start_time": f"{day}T10:00:00"})),
        text("¡Reservado! Te esperamos."),
    ]
    done = run_piped(
        command("--as", "console:ana"),
        chat_env(tmp_path, model.url),
        tmp_path,
        f"¿tenéis hueco el {day} para corte?\nA las 10\nsí\n",
    )
    assert done.returncode == 0, done.stderr
    assert "Traceback" not in done.stderr
    lines = [line.strip() for line in done.stdout.splitlines()]
    assert lines[0] == f'· check_availability(service="corte", date_from="{day}")'
    assert lines[1] == "asistente › Tengo las 10:00 libre."
    assert lines[2] == f'· book_appointment(service="corte", start_time="{day}T10:00:00")  ⏸ waits for a yes'
    question = lines[3 : lines.index("✔ the customer confirmed: book_appointment ran")]
    assert question[0].startswith("asistente › ") and "10:00" in " ".join(question)  # rendered from the call
    assert lines[-2:] == ["✔ the customer confirmed: book_appointment ran", "asistente › ¡Reservado! Te esperamos."]
    assert "\x1b[" not in done.stdout  # no colours, no typing indicator when piped
    [(service, start)] = sqlite_rows(tmp_path / "chat.db", "SELECT service, start_at FROM appointments")
    assert service == "Corte y Peinado" and str(start).startswith(day)


def assert_one_line_failure(done: subprocess.CompletedProcess[str], expected: str) -> None:
    assert done.returncode == 1, (done.stdout, done.stderr)
    assert "Traceback" not in done.stderr + done.stdout
    assert done.stderr.splitlines() == [expected]


def test_a_refused_key_is_one_line_and_exit_1(model: ModelDouble, tmp_path: Path) -> None:
    model.script = [failure(401, "Incorrect API key provided: sk-local***6789.")]
    done = run_piped(command(), chat_env(tmp_path, model.url), tmp_path, "hola\n")
    assert_one_line_failure(done, f"the model at {model.host} refused the API key (401): check OPENAI_API_KEY")


def test_an_unreachable_model_is_one_line_and_exit_1(tmp_path: Path) -> None:
    # A port bound but not listening refuses connections, and no other process can take it meanwhile.
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        host = f"127.0.0.1:{closed.getsockname()[1]}"
        done = run_piped(command(), chat_env(tmp_path, f"http://{host}/v1"), tmp_path, "hola\n")
    assert_one_line_failure(done, f"cannot reach the model at {host}: check OPENAI_BASE_URL or the network")


def test_a_model_that_times_out_is_one_line_and_exit_1(model: ModelDouble, tmp_path: Path) -> None:
    model.script = [HANG]
    env = chat_env(tmp_path, model.url, OPENAI_TIMEOUT_SECONDS="0.5")
    done = run_piped(command(), env, tmp_path, "hola\n")
    assert_one_line_failure(
        done,
        f"the model at {model.host} did not answer in time (OPENAI_TIMEOUT_SECONDS=0.5, OPENAI_MAX_RETRIES=0): "
        "try again, or raise the timeout",
    )


def test_piped_ctrl_c_ends_the_chat_at_once(model: ModelDouble, tmp_path: Path) -> None:
    process = subprocess.Popen(
        command(),
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=chat_env(tmp_path, model.url),
        cwd=tmp_path,
        text=True,
    )
    try:
        assert process.stdin is not None and process.stdout is not None
        process.stdin.write("hola\n")
        process.stdin.flush()
        # Answered: the chat now waits for a line that never comes (stdin stays open), as a script could.
        assert process.stdout.readline() == f"asistente › {GREETING}\n"
        process.send_signal(signal.SIGINT)
        _, stderr = process.communicate(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert process.returncode == 0 and "Traceback" not in stderr, stderr


def test_terminal_edits_the_line_instead_of_sending_escape_codes(model: ModelDouble, terminal: Terminal) -> None:
    terminal.expect("tú ›")
    terminal.type(f"hla{LEFT}{LEFT}o\r")  # a typo fixed with the arrow keys
    assert "asistente está escribiendo" in terminal.expect(f"asistente › {GREETING}")
    indicator = terminal.raw[terminal.raw.rindex("escribiendo") :]
    assert "\r\x1b[2K" in indicator[: indicator.index("asistente ›")]  # erased before the reply is shown
    terminal.expect("tú ›")
    terminal.type(f"{UP}\r")  # the previous line again, from the history
    terminal.expect(f"asistente › {GREETING}")
    terminal.expect("tú ›")
    terminal.type(CTRL_D)
    assert terminal.wait() == (0, "")
    assert [model.last_user_text(i) for i in range(2)] == ["hola", "hola"]
    said = [m["content"] for r in model.requests for m in r["body"]["messages"] if m["role"] == "user"]
    assert not any("\x1b" in text or "[D" in text or "[A" in text for text in said)


def test_terminal_ctrl_c_cancels_a_turn_then_ends_the_chat(model: ModelDouble, terminal: Terminal) -> None:
    model.script = [HANG]
    terminal.expect("tú ›")
    terminal.type("hola\r")
    model.wait_for_requests(1)
    terminal.expect("asistente está escribiendo")
    # What the terminal does on Ctrl-C while the line editor is not reading keys (the agent is working).
    terminal.process.send_signal(signal.SIGINT)
    terminal.expect("turn cancelled (Ctrl-C)")
    terminal.expect("tú ›")
    terminal.type("¿seguís ahí?\r")
    terminal.expect(f"asistente › {GREETING}")
    assert model.last_user_text() == "¿seguís ahí?"
    terminal.expect("tú ›")
    terminal.type(CTRL_C)  # at the prompt: the chat ends
    assert terminal.wait() == (0, "")
