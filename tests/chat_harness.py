"""For `asistente chat` tests: a scripted local OpenAI-compatible server, and the command run as a real process,
piped or on a pseudo-terminal (so that prompt_toolkit, signals and escape sequences behave as for a person).
"""

from __future__ import annotations

import itertools
import json
import os
import re
import subprocess
import sys
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.json_server import Answer, JsonServer

REPO = Path(__file__).resolve().parent.parent
GREETING = "¡Hola! ¿En qué te ayudo?"
WAIT_SECONDS = 30.0
_ANSI = re.compile(r"\x1b(\[[0-9;?]*[ -/]*[@-~]|\][^\x07]*\x07|[()][0-9A-Za-z]|[=>78])")


@dataclass(frozen=True)
class Step:
    """One scripted answer: a completion message, an HTTP error, or no answer at all (`hang`)."""

    message: dict[str, Any] | None = None
    status: int = 200
    error: str | None = None
    hang: bool = False


def text(content: str) -> Step:
    """The model answers with text."""
    return Step(message={"role": "assistant", "content": content, "refusal": None})


def calls(*named: tuple[str, dict[str, Any]]) -> Step:
    """The model calls tools (ids are numbered when served: the thread and the booking key need unique ones)."""
    tool_calls = [{"type": "function", "function": {"name": n, "arguments": json.dumps(a)}} for n, a in named]
    return Step(message={"role": "assistant", "content": None, "tool_calls": tool_calls, "refusal": None})


def failure(status: int, message: str) -> Step:
    """The server answers with an OpenAI-style error."""
    return Step(status=status, error=message)


HANG = Step(hang=True)


class ModelDouble:
    """A chat-completions server on 127.0.0.1 that plays `script` in order, then greets; it records each request."""

    def __init__(self) -> None:
        self.requests: list[dict[str, Any]] = []
        self.script: list[Step] = []
        self._arrived = threading.Condition()
        self._release = threading.Event()
        self._ids = itertools.count(1)
        self._server = JsonServer(self._answer)
        self.url, self.host = self._server.url, self._server.host

    def _answer(self, path: str, body: dict[str, Any]) -> Answer:
        with self._arrived:
            self.requests.append({"path": path, "body": body})
            step = self.script.pop(0) if self.script else text(GREETING)
            self._arrived.notify_all()
        if step.hang:
            self._release.wait()  # until the test ends; the client gives up or is cancelled first
            return None
        return step.status, self._payload(step)

    def _payload(self, step: Step) -> dict[str, Any]:
        if step.error is not None:
            return {"error": {"message": step.error, "type": "invalid_request_error", "code": None, "param": None}}
        assert step.message is not None
        message = json.loads(json.dumps(step.message))
        for call in message.get("tool_calls", []):
            call["id"] = f"call_{next(self._ids)}"
        reason = "tool_calls" if message.get("tool_calls") else "stop"
        return {
            "id": f"chatcmpl-{next(self._ids)}",
            "object": "chat.completion",
            "created": 1795541402,
            "model": "local-model",
            "choices": [{"index": 0, "message": message, "finish_reason": reason, "logprobs": None}],
            "usage": {"prompt_tokens": 10, "completion_tokens": 7, "total_tokens": 17},
        }

    def wait_for_requests(self, count: int) -> None:
        """Block until `count` requests have arrived."""
        with self._arrived:
            if not self._arrived.wait_for(lambda: len(self.requests) >= count, timeout=WAIT_SECONDS):
                raise AssertionError(f"expected {count} model requests, got {len(self.requests)}")

    def last_user_text(self, index: int = -1) -> str:
        """What the customer said last in request `index`."""
        users = [m for m in self.requests[index]["body"]["messages"] if m["role"] == "user"]
        return str(users[-1]["content"])

    def __enter__(self) -> ModelDouble:
        self._server.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._release.set()
        self._server.stop()


def chat_env(tmp_path: Path, base_url: str, **extra: str) -> dict[str, str]:
    """A minimal environment for the command: no developer .env or keys, a fresh SQLite file, the given model."""
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(tmp_path),
        "PYTHONPATH": str(REPO),
        "PYTHONUTF8": "1",
        "LANGSMITH_TRACING": "false",
        "DATABASE_URL": f"sqlite:///{tmp_path / 'chat.db'}",
        "OPENAI_BASE_URL": base_url,
        "OPENAI_API_KEY": "sk-local-0123456789",
        "OPENAI_MAX_RETRIES": "0",
    }
    return {**env, **extra}


def command(*args: str) -> list[str]:
    """`asistente chat ...` with this interpreter."""
    return [sys.executable, "-m", "cli.main", "chat", *args]


def _raw_offset(raw: str, plain_end: int) -> int:
    """Where in `raw` the first `plain_end` characters of its ANSI-stripped text end."""
    kept = position = 0
    for sequence in _ANSI.finditer(raw):
        plain = sequence.start() - position
        if kept + plain >= plain_end:
            break
        kept, position = kept + plain, sequence.end()
    return position + (plain_end - kept)


def strip_ansi(output: str) -> str:
    """Terminal output as a person reads it (colours and cursor moves removed)."""
    return _ANSI.sub("", output)


class Terminal:
    """`asistente chat` on a pseudo-terminal: keys go in as a terminal sends them, the screen's bytes come out.

    stderr stays a pipe, to check that nothing (no traceback) was written there.
    """

    def __init__(self, args: list[str], env: dict[str, str], cwd: Path) -> None:
        import fcntl
        import pty
        import struct
        import termios

        self._master, slave = pty.openpty()
        fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 120, 0, 0))
        # No cursor-position queries: nobody answers them here, and prompt_toolkit would wait for an answer.
        env = {**env, "TERM": "xterm-256color", "PROMPT_TOOLKIT_NO_CPR": "1"}
        self.process = subprocess.Popen(
            args, stdin=slave, stdout=slave, stderr=subprocess.PIPE, env=env, cwd=cwd, start_new_session=True
        )
        os.close(slave)
        self._output = b""
        self._seen = 0
        self._changed = threading.Condition()
        threading.Thread(target=self._pump, daemon=True).start()

    def _pump(self) -> None:
        while True:
            try:
                chunk = os.read(self._master, 4096)
            except OSError:  # the process closed the terminal (EIO)
                chunk = b""
            with self._changed:
                self._output += chunk
                self._changed.notify_all()
            if not chunk:
                return

    @property
    def raw(self) -> str:
        """Everything printed so far, escape sequences included."""
        with self._changed:
            return self._output.decode("utf-8", errors="replace")

    @property
    def screen(self) -> str:
        """Everything printed so far, without escape sequences."""
        with self._changed:
            return strip_ansi(self._output.decode("utf-8", errors="replace"))

    def expect(self, needle: str) -> str:
        """Wait until `needle` is printed after what earlier `expect` calls matched; the output up to it."""

        def unseen() -> str:
            return self._output.decode("utf-8", errors="replace")[self._seen :]

        with self._changed:
            if not self._changed.wait_for(lambda: needle in strip_ansi(unseen()), timeout=WAIT_SECONDS):
                raise AssertionError(f"{needle!r} never appeared; the screen shows:\n{self.screen}")
            raw = unseen()
            plain = strip_ansi(raw)
            end = plain.index(needle) + len(needle)
            self._seen += _raw_offset(raw, end)
            return plain[:end]

    def type(self, keys: str) -> None:
        """Send keys as the terminal would (Enter is "\\r", arrows are escape sequences)."""
        os.write(self._master, keys.encode())

    def wait(self) -> tuple[int, str]:
        """Exit code and stderr, once the process has ended."""
        _, stderr = self.process.communicate(timeout=WAIT_SECONDS)
        return self.process.returncode, stderr.decode()

    def close(self) -> None:
        """Kill the process if a test left it running; release the terminal."""
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()
        if self.process.stderr is not None:
            self.process.stderr.close()
        os.close(self._master)


def run_piped(args: list[str], env: dict[str, str], cwd: Path, stdin: str) -> subprocess.CompletedProcess[str]:
    """The command with `stdin` piped in, to completion."""
    return subprocess.run(args, check=False, input=stdin, capture_output=True, text=True, env=env, cwd=cwd, timeout=120)
