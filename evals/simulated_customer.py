"""The simulated customer: an LLM plays the scenario's customer from its persona and goal (openevals' simulated user).

openevals' `run_multiturn_simulation_async` drives the whole conversation itself, but calendar events must arrive
between turns (evals/session.py), so the session drives the loop and this class keeps the trajectory openevals'
simulated user reads: what the customer said as `user` messages, the assistant's replies as `assistant` messages.
The customer ends the conversation with the stop signal; the session caps the number of turns.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, cast

from langchain_core.language_models import BaseChatModel
from openevals.simulators import create_async_llm_simulated_user

from evals.scenario import Message, Scenario
from prompts import render

STOP = "###STOP###"
# The prompt's first words: an OpenAI-compatible test double tells the customer's requests apart by them.
CUSTOMER_MARKER = "You are playing a customer of a business"
PROMPT = "evals/customer.md"
LANGUAGE_NAMES = {"es": "Spanish (as spoken in Spain)", "en": "English"}
# Double texting: messages sent in a row are separated by an empty line (the prompt says so).
_MESSAGE_BREAK = re.compile(r"\n\s*\n")

SimulatedUser = Callable[..., Awaitable[dict[str, Any]]]


def customer_prompt(scenario: Scenario) -> str:
    """The customer's system prompt: persona, goal, facts to reveal when asked, language, the time, the stop signal."""
    customer = scenario.customer
    return render(
        PROMPT,
        persona=customer.persona,
        goal=customer.goal,
        knows=customer.knows,
        language=LANGUAGE_NAMES[scenario.language],
        now=scenario.now.strftime("%A %d %B %Y, %H:%M"),
        stop=STOP,
    )


def _text(content: object) -> str:
    # Chat models answer with a string, or with content blocks (reasoning models): keep the text blocks.
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        parts = [b if isinstance(b, str) else str(b.get("text", "")) for b in content if isinstance(b, str | dict)]
        return "".join(parts)
    return ""


def split_stop(text: str) -> tuple[str, bool]:
    """(what to send, whether the customer stopped): the text before the stop signal, if the signal is there."""
    said, signal, _ = text.partition(STOP)
    return said.strip(), bool(signal)


class SimulatedCustomer:
    """Plays `scenario.customer` with `model`; `next_turn` gives the customer's next messages, None when done."""

    def __init__(self, scenario: Scenario, model: BaseChatModel) -> None:
        self.scenario = scenario
        self.system = customer_prompt(scenario)
        self._user = cast(SimulatedUser, create_async_llm_simulated_user(system=self.system, client=model))
        self.trajectory: list[dict[str, str]] = []
        self.turns = 0
        self.ended: str | None = None

    async def next_turn(self, replies: Sequence[str]) -> list[Message] | None:
        """The customer's answer to `replies` (empty before the opening message); None once they stopped."""
        if self.ended is not None:
            return None
        self.trajectory += [{"role": "assistant", "content": reply} for reply in replies if reply.strip()]
        answer = await self._user(list(self.trajectory), turn_counter=self.turns)
        said, stopped = split_stop(_text(answer.get("content")))
        self.turns += 1
        if stopped:
            self.ended = "stop signal"
        elif not said:
            # A customer who has nothing to say has left the chat; an empty WhatsApp message cannot be sent.
            self.ended = "empty answer"
        if not said:
            return None
        self.trajectory.append({"role": "user", "content": said})
        return [Message(text=part.strip()) for part in _MESSAGE_BREAK.split(said) if part.strip()]
