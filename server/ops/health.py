"""Health of each dependency (database, OpenAI, Twilio, Calendly), probed and cached briefly."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace

import httpx

from core.settings import Settings
from server.ops.probes import ProbeResult, probe_calendly, probe_database, probe_openai, probe_twilio
from store.database import Database

DEPENDENCIES = ("database", "openai", "twilio", "calendly")


@dataclass(frozen=True)
class HealthReport:
    """Probe results per dependency, and when they were taken."""

    results: dict[str, ProbeResult]
    checked_at: float
    # This process's local webhook spool: entries waiting for the database by kind, and whether it is writable
    # (read live, never cached).
    spool: Mapping[str, object] | None = None

    def view(self, names: Sequence[str]) -> tuple[int, dict[str, object]]:
        """HTTP status and JSON body for a subset of dependencies.

        The database is essential (503 when it fails); any other configured dependency failing is 'degraded' (200),
        since messages are still stored and answered later.
        """
        chosen = {name: self.results[name] for name in names}
        status = "ok"
        if any(not r.ok for r in chosen.values()):
            status = "degraded"
        if "database" in chosen and not chosen["database"].ok:
            status = "down"
        body: dict[str, object] = {
            "status": status,
            "dependencies": {name: result.as_dict() for name, result in chosen.items()},
        }
        if self.spool is not None and "database" in chosen:
            body["spool"] = dict(self.spool)
        return (503 if status == "down" else 200), body


class HealthChecker:
    """Runs every probe at most once per `ttl_seconds`, however many health requests arrive."""

    def __init__(
        self,
        settings: Settings,
        db: Database,
        http: httpx.AsyncClient,
        *,
        ttl_seconds: float,
        spool_state: Callable[[], Mapping[str, object]] | None = None,
    ) -> None:
        self._spool_state = spool_state
        self._settings = settings
        self._db = db
        self._http = http
        self._ttl = ttl_seconds
        self._report: HealthReport | None = None
        self._lock = asyncio.Lock()

    async def report(self) -> HealthReport:
        """The cached report, refreshed when older than the TTL."""
        async with self._lock:
            if self._report is None or time.monotonic() - self._report.checked_at > self._ttl:
                results = await asyncio.gather(
                    probe_database(self._db),
                    probe_openai(self._settings, self._http),
                    probe_twilio(self._settings, self._http),
                    probe_calendly(self._settings, self._http),
                )
                self._report = HealthReport({r.name: r for r in results}, time.monotonic())
            if self._spool_state is not None:
                return replace(self._report, spool=self._spool_state())
            return self._report
