"""LangSmith tracing, configured from settings (never from a stray environment variable).

Each turn is one trace an admin can read: a root run named for what happened ("WhatsApp turn", "Calendar event",
"Reminder"), with the graph, the model calls and the tools under it. Traces group into one LangSmith thread per
customer through a keyed hash of the number, never the number itself, and everything the client sends (inputs,
outputs, metadata, errors) passes through LangSmith's anonymizer with the project's masking rules first.
"""

from __future__ import annotations

import logging
import secrets
import uuid
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from importlib.metadata import PackageNotFoundError, version
from typing import Any, Literal

from langchain_core.runnables import RunnableConfig
from langchain_core.tracers.langchain import LangChainTracer
from langgraph.errors import GraphInterrupt
from langsmith import Client
from langsmith.anonymizer import create_anonymizer
from langsmith.run_helpers import trace, tracing_context

from agent.api import TurnResult
from core.masking import ANONYMIZER_MAX_DEPTH, MASKER, customer_key, masking_replacer
from core.settings import Settings

logger = logging.getLogger(__name__)

TraceKind = Literal["customer", "system", "reminder"]
ROOT_NAMES: dict[TraceKind, str] = {"customer": "WhatsApp turn", "system": "Calendar event", "reminder": "Reminder"}


def app_version() -> str:
    """The installed version of the application (what `asistente --version` prints)."""
    try:
        return version("asistente")
    except PackageNotFoundError:
        return "unknown"


def langsmith_client(settings: Settings) -> Client:
    """A LangSmith client for LANGSMITH_ENDPOINT and the key (which must be set), masking personal data in
    everything it sends unless LANGSMITH_MASK_PII=false: traces, and evaluation experiments too."""
    assert settings.langsmith_api_key is not None, "langsmith_client needs LANGSMITH_API_KEY"
    return Client(
        api_url=str(settings.langsmith_endpoint).rstrip("/"),
        api_key=settings.langsmith_api_key.get_secret_value(),
        anonymizer=_anonymizer() if settings.langsmith_mask_pii else None,
    )


def _anonymizer() -> Any:
    # The whole depth: LangChain messages nest deeper than LangSmith's default of 10, and deeper strings would be
    # skipped (sent unmasked), not masked.
    return create_anonymizer(masking_replacer(MASKER), max_depth=ANONYMIZER_MAX_DEPTH)


def _masked_description(serialized: dict[str, Any]) -> dict[str, Any]:
    # The class path and name stay (they name the run); its repr and constructor arguments are masked.
    return {key: MASKER.mask_data(value) if key in ("repr", "kwargs") else value for key, value in serialized.items()}


class PauseAwareTracer(LangChainTracer):
    """LangChain's LangSmith tracer, except that the confirmation pause ends its node normally.

    LangGraph pauses a thread by raising `GraphInterrupt` inside the node; to LangSmith that looks like a failed
    run, so every confirmation question would show as an error. Asking the customer is the design, not a fault.
    """

    def on_chat_model_start(self, serialized: dict[str, Any], *args: Any, **kwargs: Any) -> Any:
        """Start a model run, its description masked too (LangSmith's anonymizer covers inputs, outputs, metadata
        and errors, not the `serialized` model, whose repr may quote messages)."""
        return super().on_chat_model_start(_masked_description(serialized), *args, **kwargs)

    def on_llm_start(self, serialized: dict[str, Any], *args: Any, **kwargs: Any) -> Any:
        """As `on_chat_model_start`, for completion models."""
        return super().on_llm_start(_masked_description(serialized), *args, **kwargs)

    def on_chain_error(self, error: BaseException, *, run_id: uuid.UUID, **kwargs: Any) -> Any:
        """Record a pause as the node's normal end; any other error as an error."""
        if isinstance(error, GraphInterrupt):
            outputs = {"paused": "waiting for the customer's answer"}
            return self.on_chain_end(outputs, run_id=run_id, **kwargs)
        return super().on_chain_error(error, run_id=run_id, **kwargs)


@dataclass(frozen=True)
class TraceLabels:
    """What every trace of one process carries: model, prompt version, app version, and the caller's tags (an
    evaluation run tags its traces with the scenario and mode, and keeps them out of production threads)."""

    model: str = "unknown"
    prompt_version: str = "unknown"
    app_version: str = field(default_factory=app_version)
    tags: tuple[str, ...] = ()
    metadata: Mapping[str, str] = field(default_factory=dict)
    thread_prefix: str = ""


@dataclass
class TracedTurn:
    """A turn being traced: its root run id (None with tracing off), the config the graph runs with, and what the
    root run reports when the turn ends."""

    run_id: str | None = None
    config: RunnableConfig = field(default_factory=RunnableConfig)
    metadata: dict[str, object] = field(default_factory=dict)
    outputs: dict[str, object] = field(default_factory=dict)

    def finish(self, result: TurnResult) -> None:
        """Record what the turn did on the root run (it is sent when the turn's block ends)."""
        self.metadata.update(outcome=result.outcome, appointment_ids=list(result.appointment_ids))
        if result.budget_exhausted:
            self.metadata["budget_exhausted"] = result.budget_exhausted
        self.outputs.update(outcome=result.outcome, replies=list(result.replies))


class TurnTracer:
    """Wraps each turn in a LangSmith trace when tracing is on; does nothing (and sends nothing) otherwise."""

    def __init__(
        self,
        client: Client | None,
        project: str,
        *,
        labels: TraceLabels | None = None,
        hash_key: bytes | None = None,
    ) -> None:
        self._client = client
        self._project = project
        self._labels = labels or TraceLabels()
        # Without a configured key the hashes still hide the number, but only for this process's lifetime.
        self._hash_key = hash_key or secrets.token_bytes(32)

    @classmethod
    def from_settings(
        cls, settings: Settings, *, labels: TraceLabels | None = None, project: str | None = None
    ) -> TurnTracer:
        """Tracing on only with LANGSMITH_TRACING=true and a key (the settings refuse a placeholder key); masking
        on unless LANGSMITH_MASK_PII=false."""
        hash_key = settings.langsmith_hash_key or settings.jwt_secret
        key = hash_key.get_secret_value().encode() if hash_key is not None else None
        project = project or settings.langsmith_project
        if not settings.langsmith_tracing or settings.langsmith_api_key is None:
            return cls(None, project, labels=labels, hash_key=key)
        return cls(langsmith_client(settings), project, labels=labels, hash_key=key)

    def labelled(self, labels: TraceLabels, *, project: str | None = None) -> TurnTracer:
        """The same client and customer hashing under other labels (and project): an evaluation case, a chat."""
        return TurnTracer(self._client, project or self._project, labels=labels, hash_key=self._hash_key)

    @property
    def project(self) -> str:
        """The LangSmith project traces go to."""
        return self._project

    @property
    def labels(self) -> TraceLabels:
        """What every trace of this tracer carries."""
        return self._labels

    @property
    def enabled(self) -> bool:
        """Whether turns are sent to LangSmith."""
        return self._client is not None

    @property
    def client(self) -> Client | None:
        """The LangSmith client (None with tracing off), for feedback on the runs it traced."""
        return self._client

    def customer_id(self, wa_id: str) -> str:
        """The customer as traces name them: a keyed hash, stable across turns and restarts (with a key set)."""
        return customer_key(wa_id, self._hash_key)

    @contextmanager
    def turn(
        self,
        wa_id: str,
        kind: TraceKind,
        *,
        run_id: str | None = None,
        message_sids: Sequence[str] = (),
        event_id: str | None = None,
        names: Sequence[str | None] = (),
        inputs: Mapping[str, object] | None = None,
    ) -> Iterator[TracedTurn]:
        """Trace the block as one turn of `wa_id`'s conversation; `names` are the customer's, masked wherever they
        appear. `run_id` (a UUID) lets the caller store the run with the turn before it ends."""
        if self._client is None:
            # Explicitly off, so a stray LANGSMITH_TRACING in the environment cannot turn it on behind our back.
            with tracing_context(enabled=False):
                yield TracedTurn()
            return
        MASKER.remember_names(*names)
        customer = self.customer_id(wa_id)
        labels = self._labels
        metadata: dict[str, object] = {
            **labels.metadata,
            "customer": customer,
            "thread_id": labels.thread_prefix + customer,  # LangSmith's thread grouping key
            "turn_kind": kind,
            "model": labels.model,
            "prompt_version": labels.prompt_version,
            "app_version": labels.app_version,
            "message_sids": list(message_sids),
        }
        if event_id is not None:
            metadata["event_id"] = event_id
        tags = [f"turn:{kind}", *labels.tags]
        graph_tracer = PauseAwareTracer(client=self._client, project_name=self._project)
        with (
            tracing_context(enabled=True, client=self._client, project_name=self._project),
            trace(
                ROOT_NAMES[kind],
                "chain",
                inputs=dict(inputs or {}),
                metadata=metadata,
                tags=tags,
                client=self._client,
                project_name=self._project,
                run_id=run_id or str(uuid.uuid4()),
            ) as root,
        ):
            # The graph's runs carry the hashed thread id too (LangGraph would copy the raw one from `configurable`).
            config = RunnableConfig(callbacks=[graph_tracer], metadata={"thread_id": metadata["thread_id"]})
            traced = TracedTurn(run_id=str(root.id), config=config)
            try:
                yield traced
            except BaseException:
                root.add_metadata({"outcome": "failed"})
                raise
            root.add_metadata(traced.metadata)
            root.end(outputs=traced.outputs)

    def event(
        self,
        wa_id: str,
        kind: TraceKind,
        *,
        inputs: Mapping[str, object],
        outputs: Mapping[str, object],
        metadata: Mapping[str, object] | None = None,
    ) -> str | None:
        """Trace something that ran without the model (a reminder sent) as a root run of its own in the customer's
        thread; its run id, or None with tracing off."""
        with self.turn(wa_id, kind, inputs=inputs) as traced:
            traced.metadata.update(metadata or {})
            traced.outputs.update(outputs)
        return traced.run_id

    def flush(self) -> None:
        """Send buffered runs now (at shutdown); a LangSmith outage must not stop the process from exiting."""
        if self._client is None:
            return
        try:
            self._client.flush()
        except Exception:
            logger.warning("could not flush traces to LangSmith", exc_info=True)
