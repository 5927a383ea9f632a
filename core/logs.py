"""Structured (JSON) logging with phone numbers masked."""

from __future__ import annotations

import json
import logging
import re
from datetime import UTC, datetime

_PHONE = re.compile(r"\+?\d[\d ]{6,}(\d{3})")
_STANDARD = set(vars(logging.LogRecord("", 0, "", 0, "", (), None)))


def mask_phones(text: str) -> str:
    """Hide all but the last three digits of anything that looks like a phone number."""
    return _PHONE.sub(lambda m: "+***" + m.group(1), text)


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message and any `extra=` fields, phone numbers masked."""

    def format(self, record: logging.LogRecord) -> str:
        """Render the record."""
        data: dict[str, object] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(),
            "level": record.levelname,
            "logger": record.name,
            "msg": record.getMessage(),
        }
        for key, value in vars(record).items():
            if key not in _STANDARD and not key.startswith("_"):
                data[key] = value
        if record.exc_info:
            data["exc"] = self.formatException(record.exc_info)
        return mask_phones(json.dumps(data, ensure_ascii=False, default=str))


def configure_logging(level: str = "INFO") -> None:
    """Send JSON logs to stderr at `level`."""
    handler = logging.StreamHandler()
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
