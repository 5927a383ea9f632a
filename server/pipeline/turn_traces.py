"""Each traced turn is stored with its LangSmith run, and what the system already knows about it becomes feedback
on that run: a hand-off, a rejected confirmation, a turn cut short by its budget or failed, a customer repeating
what they said before (on the run of the answer they repeated themselves after).

Bookkeeping, not the turn: a failure here is logged and the turn goes on. Signals are stored now and sent by the
worker's maintenance pass, so a slow LangSmith never holds up a customer's reply.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

from langsmith import Client
from langsmith.utils import LangSmithConflictError, LangSmithNotFoundError

from agent.api import TurnResult
from core.clock import Clock
from core.masking import MASKER
from server.pipeline.feedback import FeedbackPublisher, SystemSignal
from store.feedback import FeedbackEntry
from store.turn_runs import TurnKind, TurnRun, TurnRunRepository

logger = logging.getLogger(__name__)

# Every signal marks something to look at; 0 on LangSmith's 0-1 scale, so they sort with poor staff ratings.
_SIGNAL_SCORE = 0.0


class LangSmithFeedback:
    """The feedback sink: LangSmith's feedback API, one call per stored row, under the row's own feedback id."""

    def __init__(self, client: Client, project: str) -> None:
        self._client = client
        self._project = project
        self._project_id: str | None = None

    def send(self, entry: FeedbackEntry) -> None:
        """Create the feedback (no trace id: sent now, not queued behind runs, so a failure is seen and retried).

        A 409 means LangSmith already has this feedback id: an earlier send arrived but its answer was lost.
        """
        try:
            self._client.create_feedback(
                run_id=entry.run_id,
                key=entry.key,
                score=entry.score,
                comment=MASKER.mask_text(entry.comment) if entry.comment else None,  # staff may quote the customer
                feedback_id=entry.feedback_id,
                feedback_source_type="api" if entry.source == "staff" else "model",
                source_info={"source": entry.source},
                session_id=self._session_id(),
            )
        except LangSmithConflictError:
            return

    def _session_id(self) -> str | None:
        # LangSmith wants the run's project with run feedback (deprecated without it; refused by SmithDB-only
        # deployments). Looked up once; a project not found yet is retried on the next send.
        if self._project_id is None:
            try:
                self._project_id = str(self._client.read_project(project_name=self._project).id)
            except LangSmithNotFoundError:
                return None
        return self._project_id


class TurnTraces:
    """Records traced turns (`turn_runs`) and raises their automatic feedback signals."""

    def __init__(self, runs: TurnRunRepository, feedback: FeedbackPublisher, clock: Clock) -> None:
        self._runs = runs
        self._feedback = feedback
        self._clock = clock

    async def finished(
        self, wa_id: str, kind: TurnKind, ref: int, result: TurnResult, *, message_sids: Sequence[str] = ()
    ) -> None:
        """A turn ended: store its run, and the signals it raised."""
        if result.run_id is None:
            return  # not traced
        try:
            previous = await self._answer_before(wa_id, kind, ref) if result.repeated else None
            await self._record(wa_id, kind, ref, result.run_id, result.outcome, message_sids, result.appointment_ids)
            signals: list[tuple[str, SystemSignal, str]] = []
            if result.outcome == "handed_off":
                signals.append((result.run_id, "handoff", "the assistant handed the conversation to staff"))
            if result.rejected_confirmation:
                signals.append((result.run_id, "rejected_confirmation", "the customer did not confirm the question"))
            if result.budget_exhausted:
                signals.append((result.run_id, "budget_exhausted", f"turn cut short: {result.budget_exhausted}"))
            if previous is not None:
                signals.append((previous.run_id, "customer_repeated", "the customer repeated themselves after this"))
            for run_id, key, comment in signals:
                await self._feedback.signal(run_id, key, _SIGNAL_SCORE, comment, send_now=False)
        except Exception:
            logger.exception("could not record the turn's trace", extra={"run_id": result.run_id})

    async def _answer_before(self, wa_id: str, kind: TurnKind, ref: int) -> TurnRun | None:
        # The answer the customer repeated themselves after: the latest run of another turn that answered (a failed
        # attempt of this very turn answered nothing).
        for run in await self._runs.for_customer(wa_id, limit=10):
            if (run.kind, run.turn_ref) != (kind, ref) and run.outcome != "failed":
                return run
        return None

    async def failed(
        self, wa_id: str, kind: TurnKind, ref: int, run_id: str | None, *, message_sids: Sequence[str] = ()
    ) -> None:
        """A turn attempt failed: store its (errored) run, so staff can rate it, and flag it."""
        if run_id is None:
            return
        try:
            await self._record(wa_id, kind, ref, run_id, "failed", message_sids, ())
            await self._feedback.signal(run_id, "turn_failed", _SIGNAL_SCORE, "the turn failed", send_now=False)
        except Exception:
            logger.exception("could not record the failed turn's trace", extra={"run_id": run_id})

    async def _record(
        self,
        wa_id: str,
        kind: TurnKind,
        ref: int,
        run_id: str,
        outcome: str,
        message_sids: Sequence[str],
        appointment_ids: Sequence[str],
    ) -> None:
        run = TurnRun(
            run_id=run_id,
            trace_id=run_id,  # a turn's run is the root of its trace
            wa_id=wa_id,
            kind=kind,
            turn_ref=ref,
            message_sids=list(message_sids),
            outcome=outcome,
            appointment_ids=list(appointment_ids),
            created_at=self._clock.now(),
        )
        await self._runs.record(run)
