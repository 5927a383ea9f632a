"""LangSmith tracing, configured from settings (not from the process environment): one trace per turn, grouped
into a LangSmith thread per customer so admins can read a whole conversation."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from langsmith import Client
from langsmith.run_helpers import tracing_context

from core.settings import Settings


class TurnTracer:
    """Wraps each turn in a LangSmith tracing context when tracing is on; does nothing otherwise."""

    def __init__(self, client: Client | None, project: str) -> None:
        self._client = client
        self._project = project

    @classmethod
    def from_settings(cls, settings: Settings) -> TurnTracer:
        """Tracing on only with LANGSMITH_TRACING=true and a key (the settings refuse a placeholder key)."""
        if not settings.langsmith_tracing or settings.langsmith_api_key is None:
            return cls(None, settings.langsmith_project)
        client = Client(
            api_url=str(settings.langsmith_endpoint).rstrip("/"),
            api_key=settings.langsmith_api_key.get_secret_value(),
        )
        return cls(client, settings.langsmith_project)

    @property
    def enabled(self) -> bool:
        """Whether turns are sent to LangSmith."""
        return self._client is not None

    @contextmanager
    def turn(self, wa_id: str, kind: str) -> Iterator[None]:
        """Trace the block as one turn of `wa_id`'s conversation (`thread_id` groups it into a LangSmith thread)."""
        if self._client is None:
            # Explicitly off, so a stray LANGSMITH_TRACING in the environment cannot turn it on behind our back.
            with tracing_context(enabled=False):
                yield
            return
        metadata = {"thread_id": wa_id, "turn": kind}
        with tracing_context(
            enabled=True, client=self._client, project_name=self._project, metadata=metadata, tags=[f"turn:{kind}"]
        ):
            yield

    def flush(self) -> None:
        """Send buffered runs now (at shutdown)."""
        if self._client is not None:
            self._client.flush()
