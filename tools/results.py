"""Tool results as JSON the model reads: successes, and expected failures (`Refusal`) with what to do next."""

from __future__ import annotations

import json
from typing import Any

from booking.refusal import Refusal, problem

__all__ = ["Refusal", "ok", "problem"]


def ok(**fields: Any) -> str:
    """A successful result."""
    return json.dumps({"ok": True, **fields}, ensure_ascii=False, default=str)
