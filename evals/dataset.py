"""Recorded conversations as typed data: who writes, when, what is already booked, and what must come out."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Literal, Self

import yaml
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, model_validator

EVALS_DIR = Path(__file__).resolve().parent
CONVERSATIONS_DIR = EVALS_DIR / "conversations"
CASSETTES_DIR = EVALS_DIR / "cassettes"


class _Strict(BaseModel):
    # A misspelt key in a dataset must fail loudly, never be an expectation silently not checked.
    model_config = ConfigDict(extra="forbid", frozen=True)


class Customer(_Strict):
    """The WhatsApp customer of the conversation."""

    wa_id: str = Field(pattern=r"^whatsapp:\+\d{6,15}$")
    profile_name: str | None = None


class SeedAppointment(_Strict):
    """An appointment of the customer that exists before the conversation starts."""

    id: str = Field(pattern=r"^apt_[0-9a-f]{8}$")
    service: str
    start: datetime = Field(description="Local wall-clock time in the business timezone.")
    status: Literal["confirmed", "cancelled"] = "confirmed"
    source: Literal["agent", "calendly", "staff"] = "agent"
    cancel_reason: str | None = None


class Turn(_Strict):
    """One customer message (optionally a quick-reply button) or one injected system event."""

    customer: str | None = None
    button: str | None = None
    system: str | None = None

    @model_validator(mode="after")
    def _one_kind(self) -> Self:
        is_customer = self.customer is not None or self.button is not None
        if is_customer == (self.system is not None):
            raise ValueError("a turn is either `customer` (and/or `button`) or `system`")
        return self

    @property
    def kind(self) -> Literal["customer", "system"]:
        """Who the turn comes from."""
        return "system" if self.system is not None else "customer"

    @property
    def text(self) -> str:
        """What was written (or the event description)."""
        return self.system if self.system is not None else (self.customer or "")


class ExpectedAppointment(_Strict):
    """A confirmed appointment that must be in the database at the end."""

    service: str
    start: datetime = Field(description="Local wall-clock time in the business timezone.")
    id: str | None = None


class ReplyCheck(_Strict):
    """Text that a reply must (not) contain; `turn` is 1-based, the last customer turn when omitted."""

    turn: int | None = Field(default=None, ge=1)
    contains: list[str] = []
    excludes: list[str] = []


class Expectations(_Strict):
    """What the conversation must produce. Omitted checks are not run (except the confirmation invariant)."""

    confirmed: list[ExpectedAppointment] | None = None
    cancelled: list[str] | None = None
    tool_calls: list[str] | None = None
    confirmation_before_write: bool = True
    language: Literal["es", "en"] | None = None
    send_whatsapp: int | None = Field(default=None, ge=0)
    replies: list[ReplyCheck] = []


class Conversation(_Strict):
    """One recorded conversation; its model answers live in `evals/cassettes/<name>.yaml`."""

    name: str
    description: str = ""
    now: AwareDatetime
    customer: Customer
    seed: list[SeedAppointment] = []
    turns: list[Turn] = Field(min_length=1)
    expect: Expectations

    @property
    def cassette(self) -> Path:
        """The cassette shipped with the conversation."""
        return CASSETTES_DIR / f"{self.name}.yaml"


def load_conversation(path: Path) -> Conversation:
    """Parse one conversation file; its name is the file name without `.yaml`."""
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    if not isinstance(data, dict):
        raise ValueError(f"{path}: a conversation is a YAML mapping")
    return Conversation.model_validate({"name": path.stem, **data})


def conversation_names(directory: Path = CONVERSATIONS_DIR) -> list[str]:
    """Every conversation in `directory`, by name."""
    return sorted(p.stem for p in directory.glob("*.yaml"))


def load_conversations(names: list[str] | None = None, directory: Path = CONVERSATIONS_DIR) -> list[Conversation]:
    """The named conversations (all when `names` is empty), in the order given; unknown names raise `KeyError`."""
    available = conversation_names(directory)
    chosen = names or available
    unknown = [n for n in chosen if n not in available]
    if unknown:
        raise KeyError(f"unknown conversation(s): {', '.join(unknown)}; available: {', '.join(available)}")
    return [load_conversation(directory / f"{name}.yaml") for name in chosen]
