"""The pieces of `asistente chat` in process: the line editor and piped lines, the turn notes, the model errors."""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any, TextIO

import openai
import pytest
from langchain_core.messages import AIMessage, HumanMessage, ToolMessage
from prompt_toolkit.input import create_pipe_input
from prompt_toolkit.input.base import PipeInput
from prompt_toolkit.output import DummyOutput
from pydantic import AnyHttpUrl

from cli.console import Console, PipedLines
from cli.model_errors import describe_model_error, model_host
from cli.turn_notes import Asked, ThreadView, describe_call, turn_notes
from core.settings import Settings


@pytest.fixture
def keys() -> Iterator[PipeInput]:
    with create_pipe_input() as pipe:
        yield pipe


async def test_the_line_editor_applies_arrow_keys_and_history(keys: PipeInput) -> None:
    console = Console.terminal(pt_input=keys, pt_output=DummyOutput())
    keys.send_text("hla\x1b[D\x1b[Do\r")  # Left, Left, then the missing letter
    assert await console.read_line() == "hola"
    keys.send_text("\x1b[A\r")  # Up recalls it
    assert await console.read_line() == "hola"
    assert console.interactive


@pytest.mark.parametrize("key", ["\x03", "\x04", "/quit\r", "  /salir \r"], ids=["ctrl-c", "ctrl-d", "quit", "salir"])
async def test_the_line_editor_ends_the_chat(keys: PipeInput, key: str) -> None:
    console = Console.terminal(pt_input=keys, pt_output=DummyOutput())
    keys.send_text(key)
    assert await console.read_line() is None


async def test_piped_lines_from_a_pipe_are_read_through_the_event_loop() -> None:
    read_end, write_end = os.pipe()
    with os.fdopen(read_end, encoding="utf-8") as stdin:
        console = Console.open(stdin=stdin)
        os.write(write_end, "hola\n\nsí, a las 10\n".encode())
        os.close(write_end)
        lines = [await console.read_line() for _ in range(4)]
        console.close()
        assert os.get_blocking(read_end)  # left as found, for whoever shares stdin
    assert lines == ["hola", "", "sí, a las 10", None]
    assert not console.interactive


def read_all(stdin: TextIO) -> list[str]:
    piped = PipedLines(stdin)

    async def lines() -> list[str]:
        read = [await piped.readline()]
        while read[-1]:
            read.append(await piped.readline())
        return read

    return asyncio.run(lines())


def test_piped_lines_from_a_file_or_dev_null_are_read_directly(tmp_path: Path) -> None:
    script = tmp_path / "script.txt"
    script.write_text("hola\n", encoding="utf-8")
    with script.open(encoding="utf-8") as stdin:
        assert read_all(stdin) == ["hola\n", ""]
    # The event loop would accept /dev/null and then never read it: the chat must end, not hang.
    with Path(os.devnull).open(encoding="utf-8") as stdin:
        assert read_all(stdin) == [""]


async def test_piped_turns_show_no_indicator(capsys: pytest.CaptureFixture[str]) -> None:
    read_end, write_end = os.pipe()
    with os.fdopen(read_end) as stdin:
        console = Console.open(stdin=stdin)

        async def turn() -> str:
            return "done"

        async with console.typing():
            assert await console.run_turn(turn()) == "done"
    os.close(write_end)
    assert capsys.readouterr().out == ""


def asked_write(call_id: str = "call_9") -> tuple[AIMessage, ThreadView]:
    call = AIMessage(
        content="",
        id="ai-1",
        tool_calls=[{"id": call_id, "name": "book_appointment", "args": {"service": "corte", "notes": None}}],
    )
    return call, ThreadView((HumanMessage("a las 10", id="h-1"), call), Asked(call_id, "book_appointment"))


def answered(before: ThreadView, content: dict[str, object]) -> list[str]:
    result = ToolMessage(json.dumps(content), tool_call_id="call_9", name="book_appointment", id="t-1")
    after = ThreadView((*before.messages, result, HumanMessage("sí", id="h-2"), AIMessage("Hecho", id="ai-2")), None)
    return turn_notes(before, after)


def test_a_turn_that_asks_notes_the_call_and_that_it_waits() -> None:
    call, asked = asked_write()
    before = ThreadView(asked.messages[:1], None)
    assert turn_notes(before, asked) == ['· book_appointment(service="corte")  ⏸ waits for a yes']


@pytest.mark.parametrize(
    ("content", "note"),
    [
        ({"ok": True, "appointment_id": "a1"}, "✔ the customer confirmed: book_appointment ran"),
        (
            {"ok": False, "error": "not_confirmed", "reason": "not_confirmed"},
            "✘ no clear yes: book_appointment did not run",
        ),
        (
            {"ok": False, "error": "not_confirmed", "reason": "expired"},
            "✘ the question expired: book_appointment did not run",
        ),
        ({"ok": False, "error": "slot_taken"}, "✘ the customer confirmed, but book_appointment failed (slot_taken)"),
    ],
    ids=["ran", "no-yes", "expired", "failed"],
)
def test_the_answer_to_a_question_is_noted(content: dict[str, object], note: str) -> None:
    _, before = asked_write()
    assert answered(before, content) == [note]


def test_a_write_refused_before_asking_is_noted() -> None:
    call, _ = asked_write()
    refused = ToolMessage(json.dumps({"ok": False, "error": "invalid_arguments"}), tool_call_id="call_9", id="t-1")
    refused.name = "book_appointment"
    after = ThreadView((call, refused, AIMessage("¿A qué hora?", id="ai-2")), None)
    notes = turn_notes(ThreadView((), None), after)
    assert notes == ['· book_appointment(service="corte")', "✘ book_appointment was not asked (invalid_arguments)"]


def test_long_arguments_are_cut() -> None:
    described = describe_call("send_whatsapp", {"body": "x" * 100})
    assert described == f'send_whatsapp(body="{"x" * 38}…)'


class _Response:
    """What openai's status errors read from an HTTP response (the client's HTTP library is its own business)."""

    def __init__(self, status: int) -> None:
        self.status_code = status
        self.headers: dict[str, str] = {}
        self.request = None


def _response(status: int) -> Any:
    return _Response(status)


@pytest.mark.parametrize(
    ("error", "expected"),
    [
        (openai.PermissionDeniedError("no", response=_response(403), body=None), "denied access (403)"),
        (openai.NotFoundError("no", response=_response(404), body=None), "'gpt-x' was not found at 127.0.0.1:8080"),
        (openai.RateLimitError("no", response=_response(429), body=None), "rate-limited or out of quota (429)"),
        (openai.InternalServerError("boom\n" + "x" * 500, response=_response(500), body=None), "failed (500): boom"),
    ],
    ids=["403", "404", "429", "500"],
)
def test_model_errors_are_one_line(error: openai.OpenAIError, expected: str) -> None:
    settings = Settings.model_construct(openai_model="gpt-x", openai_base_url=AnyHttpUrl("http://127.0.0.1:8080/v1"))
    line = describe_model_error(error, settings)
    assert line is not None and expected in line and "\n" not in line and len(line) < 260


def test_only_the_models_errors_are_described_and_credentials_never_shown() -> None:
    settings = Settings.model_construct(openai_base_url=AnyHttpUrl("https://user:secret@llm.example:8443/v1"))
    assert describe_model_error(ValueError("x"), settings) is None
    assert model_host(settings) == "llm.example:8443"
    assert model_host(Settings.model_construct()) == "api.openai.com"
