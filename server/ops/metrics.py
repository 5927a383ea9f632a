"""Prometheus metrics, in a registry owned by one app (never the process-global one, so apps and tests stay apart)."""

from __future__ import annotations

from collections.abc import Callable, Mapping

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.exposition import CONTENT_TYPE_LATEST, generate_latest

CONTENT_TYPE = CONTENT_TYPE_LATEST


class ServerMetrics:
    """Every metric the server and worker update."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.http_requests = Counter(
            "asistente_http_requests_total",
            "HTTP requests by route and status.",
            ["method", "route", "status"],
            registry=self.registry,
        )
        self.inbound_messages = Counter(
            "asistente_inbound_messages_total",
            "WhatsApp messages received, by how they were stored.",
            ["status"],
            registry=self.registry,
        )
        self.webhook_rejections = Counter(
            "asistente_webhook_rejections_total",
            "Webhooks refused, by source and reason.",
            ["source", "reason"],
            registry=self.registry,
        )
        self.turns = Counter(
            "asistente_turns_total",
            "Agent turns run, by kind and outcome.",
            ["kind", "outcome"],
            registry=self.registry,
        )
        self.turn_budget_exhausted = Counter(
            "asistente_turn_budget_exhausted_total",
            "Turns cut short by the agent's budget (model calls or messages sent), by kind and reason.",
            ["kind", "reason"],
            registry=self.registry,
        )
        self.turn_seconds = Histogram(
            "asistente_turn_duration_seconds", "Time an agent turn took.", ["kind"], registry=self.registry
        )
        self.delivery_attempts = Counter(
            "asistente_delivery_attempts_total",
            "Attempts to hand a message to the provider, by outcome.",
            ["transport", "outcome"],
            registry=self.registry,
        )
        self.calendar_events = Counter(
            "asistente_calendar_events_total",
            "Calendly webhook deliveries, by event and outcome.",
            ["event", "outcome"],
            registry=self.registry,
        )
        self.reminders = Counter(
            "asistente_reminders_total", "Reminders handled, by outcome.", ["outcome"], registry=self.registry
        )
        self.dependency_errors = Counter(
            "asistente_dependency_errors_total",
            "Errors from a dependency (twilio, calendly, agent, database).",
            ["dependency"],
            registry=self.registry,
        )

        self.webhook_spool = Counter(
            "asistente_webhook_spool_total",
            "Twilio webhooks through the local spool (the database did not take them in time), by kind and outcome: "
            "spooled, duplicate (a retry already spooled), drained (moved into the database), write_failed (answered "
            "503), rejected (set aside as unreadable).",
            ["kind", "outcome"],
            registry=self.registry,
        )
        self.webhook_spool_depth = Gauge(
            "asistente_webhook_spool_depth",
            "Twilio webhooks waiting in this process's spool for the database, by kind.",
            ["kind"],
            registry=self.registry,
        )

    def watch_spool(self, kinds: tuple[str, ...], depth: Callable[[], Mapping[str, int]]) -> None:
        """Read the spool's depth at every scrape (it also changes while the database is down)."""
        for kind in kinds:
            self.webhook_spool_depth.labels(kind).set_function(_depth_of(kind, depth))

    def render(self) -> bytes:
        """The text exposition format."""
        return bytes(generate_latest(self.registry))


def _depth_of(kind: str, depth: Callable[[], Mapping[str, int]]) -> Callable[[], float]:
    return lambda: depth().get(kind, 0)
