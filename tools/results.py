"""Tool results as JSON the model reads: successes, and expected failures with what to do next."""

from __future__ import annotations

import json
from typing import Any


def ok(**fields: Any) -> str:
    """A successful result."""
    return json.dumps({"ok": True, **fields}, ensure_ascii=False, default=str)


def problem(code: str, message: str, **fields: Any) -> str:
    """An expected refusal (slot taken, unknown service...) with a message and alternatives the model can offer."""
    return json.dumps({"ok": False, "error": code, "message": message, **fields}, ensure_ascii=False, default=str)


class ToolRefusal(Exception):
    """Raised inside a tool for an expected failure; turned into a `problem(...)` result for the model."""

    def __init__(self, code: str, message: str, **fields: Any) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.fields = fields

    def result(self) -> str:
        """The JSON result the model sees."""
        return problem(self.code, self.message, **self.fields)
