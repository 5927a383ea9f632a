"""The terminal side of `asistente chat`: reading the customer's lines, showing the assistant's, Ctrl-C and Ctrl-D.

On a terminal (stdin and stdout both ttys) lines come from prompt_toolkit's line editor: arrow keys move the cursor
and recall earlier lines instead of reaching the model as escape codes, Ctrl-C or Ctrl-D at the prompt end the chat,
a typing indicator shows while the agent works, and Ctrl-C during a turn cancels that turn and returns to the prompt.
Piped input (tests, scripts) is read as plain lines, with no editor and no indicator; there Ctrl-C ends the chat.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import os
import signal
import stat
import sys
from collections.abc import AsyncIterator, Coroutine
from typing import TYPE_CHECKING, Any, TextIO, TypeVar

import typer

if TYPE_CHECKING:
    from prompt_toolkit import PromptSession
    from prompt_toolkit.input import Input
    from prompt_toolkit.output import Output

T = TypeVar("T")

PROMPT = "tú › "
TYPING = "asistente está escribiendo"
# Seconds between frames of the indicator's dots: enough to show the agent is alive, not enough to flicker.
_TYPING_FRAME_SECONDS = 0.4
# A pasted message can be long; asyncio's default line limit (64 KiB) would end the chat with an error.
_LINE_LIMIT = 1 << 20


class PipedLines:
    """Lines from a non-terminal stdin, read without a blocking thread so that Ctrl-C ends the chat at once.

    A thread blocked in `readline` cannot be cancelled, and `asyncio.run` waits for it on exit: that is what made
    Ctrl-C hang until Enter. Pipes and sockets are read through the event loop instead. Regular files, /dev/null
    and in-memory streams (Typer's test runner) cannot be watched by the loop, but reading them never waits on
    anybody, so they are read directly.
    """

    def __init__(self, stream: TextIO) -> None:
        self._stream = stream
        self._reader: asyncio.StreamReader | None = None
        self._transport: asyncio.ReadTransport | None = None
        self._fd: int | None = None
        self._opened = False

    async def _open(self) -> None:
        self._opened = True
        try:
            fd = self._stream.fileno()
            mode = os.fstat(fd).st_mode
        except (OSError, ValueError, io.UnsupportedOperation):
            return  # an in-memory stream: read directly (see the class docstring)
        # Only these can be watched by the event loop; /dev/null, for one, would be accepted and then never read.
        if not (stat.S_ISFIFO(mode) or stat.S_ISSOCK(mode) or os.isatty(fd)):
            return
        reader = asyncio.StreamReader(limit=_LINE_LIMIT)
        pipe = os.fdopen(fd, "rb", buffering=0, closefd=False)
        loop = asyncio.get_running_loop()
        self._fd = fd  # known before connecting: the loop makes it non-blocking, `close` must undo that even then
        transport, _ = await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), pipe)
        self._reader, self._transport = reader, transport

    async def readline(self) -> str:
        """The next line, with its newline; "" at end of input."""
        if not self._opened:
            await self._open()
        if self._reader is None:
            return self._stream.readline()
        return (await self._reader.readline()).decode("utf-8", errors="replace")

    def close(self) -> None:
        """Stop reading (call it while the event loop runs); stdin goes back to blocking mode for whoever shares it."""
        if self._transport is not None:
            self._transport.close()
            self._transport = None
        if self._fd is not None:
            with contextlib.suppress(OSError):
                os.set_blocking(self._fd, True)


class Console:
    """Reads the customer's lines and shows the conversation, with terminal comforts only on a terminal."""

    def __init__(self, *, session: PromptSession[str] | None = None, piped: PipedLines | None = None) -> None:
        # Exactly one of them: a line editor on a terminal, or plain lines.
        self._session = session
        self._piped = piped

    @classmethod
    def open(cls, stdin: TextIO | None = None, stdout: TextIO | None = None) -> Console:
        """A line editor when both stdin and stdout are terminals, plain lines otherwise."""
        stdin, stdout = stdin or sys.stdin, stdout or sys.stdout
        if stdin.isatty() and stdout.isatty():
            return cls.terminal()
        return cls(piped=PipedLines(stdin))

    @classmethod
    def terminal(cls, pt_input: Input | None = None, pt_output: Output | None = None) -> Console:
        """The interactive console (its input and output can be replaced by prompt_toolkit's test doubles)."""
        from prompt_toolkit import PromptSession
        from prompt_toolkit.history import InMemoryHistory

        session: PromptSession[str] = PromptSession(history=InMemoryHistory(), input=pt_input, output=pt_output)
        return cls(session=session)

    @property
    def interactive(self) -> bool:
        """Whether a person is at a terminal (line editor, typing indicator, Ctrl-C cancels a turn)."""
        return self._session is not None

    async def read_line(self) -> str | None:
        """The customer's next line, stripped; None when the chat ends (end of input, Ctrl-D, Ctrl-C, /quit)."""
        if self._session is not None:
            try:
                line = await self._session.prompt_async(PROMPT)
            except (EOFError, KeyboardInterrupt):
                return None
        else:
            assert self._piped is not None
            line = await self._piped.readline()
            if not line:
                return None
        text = line.strip()
        return None if text in {"/quit", "/salir"} else text

    def close(self) -> None:
        """Release stdin (while the event loop that read it still runs)."""
        if self._piped is not None:
            self._piped.close()

    def say(self, who: str, text: str) -> None:
        """One message of the conversation; further lines of it are indented under its first."""
        prefix = f"{who} › "
        first, *rest = text.splitlines() or [""]
        typer.echo("\n".join([prefix + first, *(f"{' ' * len(prefix)}{line}".rstrip() for line in rest)]))

    def note(self, text: str) -> None:
        """A line about what the agent did: dim on a terminal (Typer drops the styling when piped)."""
        typer.echo(typer.style(f"  {text}", dim=True))

    @contextlib.asynccontextmanager
    async def typing(self) -> AsyncIterator[None]:
        """Show "asistente está escribiendo…" while the body runs (terminal only), then erase it."""
        if not self.interactive:
            yield
            return
        frames = asyncio.create_task(self._animate())
        try:
            yield
        finally:
            frames.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await frames
            # Back to the start of the line and clear it, so the reply takes the indicator's place.
            sys.stdout.write("\r\x1b[2K")
            sys.stdout.flush()

    async def _animate(self) -> None:
        frame = 0
        while True:
            dots = "…" if frame % 4 == 3 else "." * (frame % 4)
            sys.stdout.write(f"\r\x1b[2K{typer.style(TYPING + dots, dim=True)}")
            sys.stdout.flush()
            frame += 1
            await asyncio.sleep(_TYPING_FRAME_SECONDS)

    async def run_turn(self, turn: Coroutine[Any, Any, T]) -> T | None:
        """Run the agent's turn; on a terminal Ctrl-C cancels it (None) and the chat goes on.

        Piped, Ctrl-C keeps asyncio's own meaning: the whole chat is cancelled and ends.
        """
        task = asyncio.ensure_future(turn)
        if not self.interactive:
            return await task
        loop = asyncio.get_running_loop()
        previous = signal.getsignal(signal.SIGINT)
        try:
            loop.add_signal_handler(signal.SIGINT, task.cancel)
        except (NotImplementedError, RuntimeError, ValueError):  # no signals here (Windows, not the main thread)
            return await task
        try:
            return await task
        except asyncio.CancelledError:
            current = asyncio.current_task()
            if task.cancelled() and (current is None or not current.cancelling()):
                return None  # the customer's Ctrl-C, not a cancellation of the whole chat
            raise
        finally:
            loop.remove_signal_handler(signal.SIGINT)
            # remove_signal_handler leaves Python's default handler; asyncio.run's own (cancel the chat) comes back.
            signal.signal(signal.SIGINT, previous)
