"""A Prometheus endpoint for a process without a web app: the standalone `asistente worker`.

The app serves its registry at `GET /metrics`; a worker has no HTTP server, so it gets prometheus_client's own
(a small threaded WSGI server on a daemon thread). Scrapes run on that thread and only read the registry, which
prometheus_client guards with locks, so the worker's event loop is never involved.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from prometheus_client import start_http_server

from server.ops.metrics import ServerMetrics

logger = logging.getLogger(__name__)

# A stuck scrape must not hold up the process's exit for long; the thread is a daemon thread anyway.
_JOIN_TIMEOUT_SECONDS = 5.0


@dataclass(frozen=True)
class MetricsAddress:
    """Where the endpoint actually listens (the port the OS chose when 0 was asked for)."""

    host: str
    port: int

    @property
    def url(self) -> str:
        """The scrape URL (any path answers; /metrics is the conventional one)."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}/metrics"


@contextmanager
def serve_metrics(metrics: ServerMetrics, *, host: str, port: int) -> Iterator[MetricsAddress]:
    """Serve `metrics.registry` on `host:port` until the block ends. Raises `OSError` when the port is taken."""
    server, thread = start_http_server(port, addr=host, registry=metrics.registry)
    address = MetricsAddress(host=host, port=int(server.server_address[1]))
    logger.info("metrics endpoint listening", extra={"url": address.url})
    try:
        yield address
    finally:
        # Stop accepting scrapes and release the port, so a restarted worker can bind it again at once.
        server.shutdown()
        server.server_close()
        thread.join(timeout=_JOIN_TIMEOUT_SECONDS)
