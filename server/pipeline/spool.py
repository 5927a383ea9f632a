"""A local spool for Twilio webhooks the database could not take in time: one file per webhook, durable on disk.

The webhook answers Twilio 200 only for what is stored somewhere that survives a crash: the database, or this
spool. Each entry is written to a temporary file, fsynced, renamed into place (atomic) and the directory fsynced, so
a `kill -9` or a power cut right after the answer loses nothing and never leaves half an entry behind. Entries are
named after what identifies the webhook (MessageSid, plus the status for a status callback), so a Twilio retry of a
message already spooled is kept once, with the time it first arrived.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import re
import secrets
import time
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Literal

logger = logging.getLogger(__name__)

SpoolKind = Literal["inbound", "status"]
KINDS: tuple[SpoolKind, ...] = ("inbound", "status")

_SUFFIX = ".json"
_TEMP_SUFFIX = ".tmp"
_SAFE_KEY = re.compile(r"[A-Za-z0-9_-]{1,80}")
# A temporary file this old was left by a process that died mid-write (a live write takes milliseconds).
_STALE_TEMP_SECONDS = 3600.0
REJECTED = "rejected"


class SpoolUnavailable(Exception):
    """The spool could not store an entry durably (disk full, read-only, missing permissions...)."""


@dataclass(frozen=True)
class SpoolEntry:
    """One spooled webhook: its verified form and the moment it reached us."""

    kind: SpoolKind
    received_at: datetime
    form: dict[str, str]
    path: Path

    @property
    def name(self) -> str:
        """The entry's file name (unique in the spool)."""
        return self.path.name


class WebhookSpool:
    """A directory of spooled webhooks. Safe to share between processes: writes are atomic renames, and the
    database (deduplicated on MessageSid) decides what was already stored."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory

    def problem(self) -> str | None:
        """Why entries could not be written here, or None; checked without creating anything (the directory is
        made by the first entry, so a process that never spools leaves no trace)."""
        existing = self.directory
        while not existing.exists() and existing.parent != existing:
            existing = existing.parent
        if not existing.is_dir():
            return f"{existing} is not a directory"
        if not os.access(existing, os.W_OK | os.X_OK):
            return f"{existing} is not writable"
        return None

    def sweep(self) -> None:
        """Drop temporary files left by a process that died while writing (never a complete entry)."""
        with contextlib.suppress(OSError):
            for path in self.directory.glob(f".*{_TEMP_SUFFIX}"):
                with contextlib.suppress(OSError):
                    if time.time() - path.stat().st_mtime > _STALE_TEMP_SECONDS:
                        path.unlink()

    def put(self, kind: SpoolKind, key: str, form: dict[str, str], received_at: datetime) -> bool:
        """Store one webhook durably (blocking: call it in a thread). False when an entry with this key is already
        spooled (a Twilio retry): the first one, with its arrival time, is kept. Raises `SpoolUnavailable`."""
        final = self.directory / f"{kind}-{_file_key(key)}{_SUFFIX}"
        body = json.dumps(
            {"version": 1, "kind": kind, "received_at": received_at.isoformat(), "form": form}, ensure_ascii=False
        ).encode()
        temp = self.directory / f".{final.name}.{os.getpid()}.{secrets.token_hex(4)}{_TEMP_SUFFIX}"
        try:
            self.directory.mkdir(mode=0o700, parents=True, exist_ok=True)
            if final.exists():
                return False
            fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            try:
                view = memoryview(body)
                while view:
                    view = view[os.write(fd, view) :]
                os.fsync(fd)
            finally:
                os.close(fd)
            temp.replace(final)
            _fsync_directory(self.directory)
        except OSError as exc:
            with contextlib.suppress(OSError):
                temp.unlink()
            raise SpoolUnavailable(f"{type(exc).__name__} ({exc.strerror or 'error'})") from None
        return True

    def has(self, kind: SpoolKind) -> bool:
        """Whether any entry of this kind is waiting."""
        return any(True for _ in self._names(kind))

    def depth(self) -> dict[str, int]:
        """How many entries of each kind are waiting (0 when the directory does not exist)."""
        return {kind: sum(1 for _ in self._names(kind)) for kind in KINDS}

    def state(self) -> dict[str, object]:
        """What the health endpoint shows: entries waiting by kind, and whether new ones could be written."""
        return {**self.depth(), "writable": self.problem() is None}

    def entries(self) -> list[SpoolEntry]:
        """Every waiting entry, oldest arrival first. A file that cannot be read as an entry is moved aside to
        `rejected/` (kept for an operator, never deleted) and logged."""
        found: list[SpoolEntry] = []
        for kind in KINDS:
            for name in self._names(kind):
                path = self.directory / name
                try:
                    found.append(_read(path))
                except FileNotFoundError:
                    continue  # drained meanwhile by another process sharing the directory
                except (OSError, ValueError, KeyError, TypeError) as exc:
                    self.reject(path, f"unreadable entry: {type(exc).__name__}")
        return sorted(found, key=lambda entry: (entry.received_at, entry.name))

    def remove(self, entry: SpoolEntry) -> None:
        """Forget an entry once what it holds is committed to the database. Not fsynced: an entry that reappears
        after a crash is stored again as a duplicate, which the database recognises."""
        with contextlib.suppress(FileNotFoundError):
            entry.path.unlink()

    def reject(self, path: Path, reason: str) -> None:
        """Move a file that can never be processed to `rejected/`, for an operator to look at."""
        target = self.directory / REJECTED
        with contextlib.suppress(OSError):
            target.mkdir(mode=0o700, exist_ok=True)
            path.replace(target / path.name)
        logger.error("spooled webhook set aside", extra={"file": path.name, "reason": reason})

    def _names(self, kind: SpoolKind) -> list[str]:
        try:
            with os.scandir(self.directory) as listing:
                return [
                    item.name
                    for item in listing
                    if item.name.startswith(f"{kind}-") and item.name.endswith(_SUFFIX) and item.is_file()
                ]
        except OSError:  # missing (nothing spooled yet) or unreadable: nothing this process can drain
            return []


def _file_key(key: str) -> str:
    # MessageSids are letters and digits; anything else is hashed so it can never escape the directory.
    return key if _SAFE_KEY.fullmatch(key) else hashlib.sha256(key.encode()).hexdigest()[:40]


def _read(path: Path) -> SpoolEntry:
    data = json.loads(path.read_bytes())
    kind = data["kind"]
    if kind not in KINDS:
        raise ValueError(f"unknown kind {kind!r}")
    received_at = datetime.fromisoformat(data["received_at"])
    if received_at.tzinfo is None:
        raise ValueError("naive received_at")
    form = {str(k): str(v) for k, v in dict(data["form"]).items()}
    return SpoolEntry(kind=kind, received_at=received_at, form=form, path=path)


def _fsync_directory(directory: Path) -> None:
    # The rename is durable only once the directory itself is on disk.
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
