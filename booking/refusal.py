"""Expected failures of the booking domain (slot taken, unknown service, too late to cancel...) as values."""

from __future__ import annotations

import json
from typing import Any


def problem(code: str, message: str, **fields: Any) -> str:
    """An expected refusal as JSON (code, message, and alternatives or facts the reader can act on)."""
    return json.dumps({"ok": False, "error": code, "message": message, **fields}, ensure_ascii=False, default=str)


class Refusal(Exception):
    """Raised for an expected failure; the tools turn it into a `problem(...)` result the model reads."""

    def __init__(self, code: str, message: str, **fields: Any) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.fields = fields

    def result(self) -> str:
        """The refusal as JSON (what the model sees)."""
        return problem(self.code, self.message, **self.fields)
