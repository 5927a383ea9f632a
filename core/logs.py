"""Structured (JSON) logging with customers' personal data masked (core.masking's rules)."""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime

from core.masking import MASKER, Masker

_STANDARD = set(vars(logging.LogRecord("", 0, "", 0, "", (), None)))


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message and any `extra=` fields, personal data masked.

    Values are masked before `json.dumps`, so a mask never has to survive JSON escaping (a phone written as
    "\\u002b34..." or split by an escape would slip past a mask applied to the dumped line).
    """

    def __init__(self, masker: Masker | None = None) -> None:
        super().__init__()
        self._masker = masker or MASKER

    def format(self, record: logging.LogRecord) -> str:
        """Render the record."""
        extras = {k: v for k, v in vars(record).items() if k not in _STANDARD and not k.startswith("_")}
        data: dict[str, object] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(),
            "level": record.levelname,
            "logger": record.name,
            "msg": self._masker.mask_text(record.getMessage()),
        }
        data.update(self._masker.mask_data(extras))
        if record.exc_info:
            data["exc"] = self._masker.mask_text(self.formatException(record.exc_info))
        elif record.exc_text:
            data["exc"] = self._masker.mask_text(record.exc_text)
        return json.dumps(data, ensure_ascii=False, default=str)


def configure_logging(level: str = "INFO") -> None:
    """Send JSON logs to stderr at `level`."""
    handler = logging.StreamHandler()
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
