"""Waiting for a state with a deadline: never a bare sleep that passes whatever happened."""

from __future__ import annotations

import time
from collections.abc import Callable


def eventually(predicate: Callable[[], bool], within: float, *, interval: float = 0.1) -> bool:
    """Poll `predicate` until it holds (True) or `within` seconds pass (False)."""
    deadline = time.monotonic() + within
    while True:
        if predicate():
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(interval)


def wait_for(predicate: Callable[[], bool], within: float, what: str) -> float:
    """Poll until `predicate` holds and return the seconds it took; fail naming `what` after `within` seconds."""
    started = time.monotonic()
    if not eventually(predicate, within):
        raise AssertionError(f"timed out after {within:g} s waiting for {what}")
    return time.monotonic() - started


def sleep_until(moment: float) -> None:
    """Sleep until the monotonic clock reads `moment`: for pacing a fault's planned duration, never for a state."""
    time.sleep(max(0.0, moment - time.monotonic()))
