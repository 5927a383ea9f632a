"""Staff feedback on the assistant's turns: rate a turn (stored, then sent to LangSmith on that turn's run), and read
what a turn was rated.

Staff name the turn by what they see: the run id (from LangSmith), a customer's message (its MessageSid: the whole turn
that folded it) or a message the assistant sent (its outbox id: the turn that sent it).
"""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, Query, status
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from core.sanitize import unstorable_characters
from server.http.deps import Admin, AppServices, JsonBody
from server.pipeline.feedback import KEY_PATTERN, STAFF_RATING, FeedbackPublisher, UnknownTurn
from store.feedback import FeedbackEntry
from store.turn_runs import TurnRun

router = APIRouter(prefix="/api/feedback", tags=["feedback"])

MAX_COMMENT_CHARS = 2000
SID_PATTERN = r"^[A-Za-z0-9]{1,64}$"
NO_TURN = "no traced turn matches"


def get_publisher(services: AppServices) -> FeedbackPublisher:
    """The app's feedback publisher."""
    return services.feedback


Publisher = Annotated[FeedbackPublisher, Depends(get_publisher)]


class RateRequest(BaseModel):
    """A rating of one turn, named by exactly one of `run_id`, `message_sid`, `outbox_id`."""

    model_config = ConfigDict(extra="forbid")

    run_id: uuid.UUID | None = Field(None, description="the turn's LangSmith run id")
    message_sid: str | None = Field(None, pattern=SID_PATTERN, description="a customer message the turn answered")
    outbox_id: int | None = Field(None, ge=1, strict=True, description="a message the turn sent")
    score: float = Field(ge=0, le=1, strict=True, allow_inf_nan=False, description="1 = good, 0 = bad")
    comment: str | None = Field(None, max_length=MAX_COMMENT_CHARS)
    key: str = Field(STAFF_RATING, pattern=KEY_PATTERN)

    @field_validator("comment", mode="before")
    @classmethod
    def _comment(cls, value: object) -> object:
        # Refused rather than cleaned, as for a message staff sends: they can fix it, and NUL or half a surrogate
        # pair can be neither stored nor sent on. Surrounding blanks are dropped, and a blank comment is none.
        if isinstance(value, str):
            if unstorable_characters(value):
                raise ValueError("must not contain NUL (\\u0000) or unpaired surrogate (\\ud800-\\udfff) characters")
            return value.strip() or None
        return value

    @model_validator(mode="after")
    def _one_target(self) -> RateRequest:
        if sum(target is not None for target in (self.run_id, self.message_sid, self.outbox_id)) != 1:
            raise ValueError("name exactly one of run_id, message_sid, outbox_id")
        return self


def entry_view(entry: FeedbackEntry) -> dict[str, object]:
    """A feedback row as the admin API shows it."""
    return {**entry.model_dump(mode="json"), "sent": entry.sent}


def run_view(run: TurnRun) -> dict[str, object]:
    """A turn's run as the admin API shows it."""
    return run.model_dump(mode="json")


@router.post("", status_code=status.HTTP_201_CREATED, dependencies=[JsonBody])
async def rate_turn(request: RateRequest, publisher: Publisher, admin: Admin) -> dict[str, object]:
    """Rate a turn: stored at once, sent to LangSmith at once if possible (`sent`), else retried by the worker
    (`tracing` false: this server sends nothing to LangSmith)."""
    try:
        entry = await publisher.rate(
            run_id=str(request.run_id) if request.run_id is not None else None,
            message_sid=request.message_sid,
            outbox_id=request.outbox_id,
            score=request.score,
            comment=request.comment,
            author=admin.subject,
            key=request.key,
        )
    except UnknownTurn:
        raise HTTPException(status.HTTP_404_NOT_FOUND, NO_TURN) from None
    return {
        "id": entry.id,
        "run_id": entry.run_id,
        "key": entry.key,
        "score": entry.score,
        "sent": entry.sent,
        "tracing": publisher.tracing,
    }


@router.get("")
async def turn_feedback(
    publisher: Publisher,
    admin: Admin,
    run_id: Annotated[uuid.UUID | None, Query()] = None,
    message_sid: Annotated[str | None, Query(pattern=SID_PATTERN)] = None,
    outbox_id: Annotated[int | None, Query(ge=1)] = None,
) -> dict[str, object]:
    """The turn named by exactly one of `run_id`, `message_sid`, `outbox_id`, and the feedback stored on its run."""
    if sum(target is not None for target in (run_id, message_sid, outbox_id)) != 1:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, "name exactly one of run_id, message_sid, outbox_id")
    try:
        run = await publisher.resolve(
            run_id=str(run_id) if run_id is not None else None, message_sid=message_sid, outbox_id=outbox_id
        )
    except UnknownTurn:
        raise HTTPException(status.HTTP_404_NOT_FOUND, NO_TURN) from None
    return {"run": run_view(run), "feedback": [entry_view(e) for e in await publisher.feedback_for(run.run_id)]}
