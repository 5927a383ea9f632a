"""Serving a double's ASGI app from a thread of the test process, so a test reads and switches its state directly.

`Gate` holds requests inside a handler (to kill a process while its request is in flight) until the test opens it.
"""

from __future__ import annotations

import asyncio
import threading
import time

import uvicorn
from starlette.types import ASGIApp

from tests.reliability.ports import free_port


class Gate:
    """Open by default; while closed, handlers that `await gate.passage()` wait (and are counted as held)."""

    def __init__(self) -> None:
        self._open = threading.Event()
        self._open.set()
        self._lock = threading.Lock()
        self.held = 0

    def close(self) -> None:
        """Hold every request that reaches the gate from now on."""
        self._open.clear()

    def open(self) -> None:
        """Let the held requests (and all later ones) through."""
        self._open.set()

    @property
    def is_open(self) -> bool:
        """Whether requests pass straight through."""
        return self._open.is_set()

    async def passage(self) -> None:
        """Wait here while the gate is closed."""
        if self._open.is_set():
            return
        with self._lock:
            self.held += 1
        try:
            # The test thread opens the gate: a threading.Event, polled (an asyncio.Event belongs to one loop).
            while not self._open.is_set():  # noqa: ASYNC110
                await asyncio.sleep(0.02)
        finally:
            with self._lock:
                self.held -= 1


class BackgroundServer:
    """uvicorn serving `app` on 127.0.0.1 in a daemon thread; `stop()` and `start()` again keep the port."""

    def __init__(self, app: ASGIApp, *, name: str) -> None:
        self._app = app
        self.name = name
        self.port = free_port()
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None

    @property
    def base_url(self) -> str:
        """http://127.0.0.1:PORT"""
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        """Serve until `stop()`; returns once the socket accepts connections."""
        config = uvicorn.Config(
            self._app,
            host="127.0.0.1",
            port=self.port,
            log_level="warning",
            access_log=False,
            lifespan="off",
            timeout_graceful_shutdown=1,
        )
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._server.run, name=f"double-{self.name}", daemon=True)
        self._thread.start()
        deadline = time.monotonic() + 15
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError(f"the {self.name} double did not start on port {self.port}")
            time.sleep(0.02)

    def stop(self) -> None:
        """Stop serving (connections are refused until `start()`)."""
        if self._server is None or self._thread is None:
            return
        self._server.should_exit = True
        self._thread.join(timeout=10)
        self._server = None
        self._thread = None
