"""A scripted tool-calling chat model: returns prepared AIMessages in order and records what it was sent."""

from __future__ import annotations

import itertools
from collections.abc import Callable, Sequence
from typing import Any

from langchain_core.callbacks import AsyncCallbackManagerForLLMRun, CallbackManagerForLLMRun
from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, BaseMessage, ToolCall
from langchain_core.outputs import ChatGeneration, ChatResult
from langchain_core.runnables import Runnable
from pydantic import ConfigDict, Field

Step = AIMessage | Callable[[list[BaseMessage]], AIMessage]
_ids = itertools.count(1)


def call(name: str, /, **args: Any) -> ToolCall:
    """A tool call with a fresh id, as a model would emit it."""
    return ToolCall(name=name, args=args, id=f"call_{next(_ids):04d}", type="tool_call")


def says(text: str) -> AIMessage:
    """A final text answer."""
    return AIMessage(content=text)


def uses(*calls: ToolCall, text: str = "") -> AIMessage:
    """A message with tool calls."""
    return AIMessage(content=text, tool_calls=list(calls))


class ScriptedChatModel(BaseChatModel):
    """Plays `script` one step per model call; a step may be a function of the messages it receives."""

    model_config = ConfigDict(arbitrary_types_allowed=True)
    # Any: pydantic would try to read a function step as an AIMessage (Step is checked by mypy, not at run time).
    script: list[Any]
    calls: list[list[BaseMessage]] = Field(default_factory=list)
    bound_tools: list[str] = Field(default_factory=list)

    @property
    def _llm_type(self) -> str:
        return "scripted"

    def bind_tools(self, tools: Sequence[Any], **kwargs: Any) -> Runnable[Any, BaseMessage]:  # type: ignore[override]
        self.bound_tools = [getattr(t, "name", str(t)) for t in tools]
        return self

    def _next(self, messages: list[BaseMessage]) -> ChatResult:
        if len(self.calls) >= len(self.script):
            raise AssertionError(f"model called {len(self.calls) + 1} times, script has {len(self.script)} steps")
        step = self.script[len(self.calls)]
        self.calls.append(list(messages))
        message = step(messages) if callable(step) and not isinstance(step, AIMessage) else step
        return ChatResult(generations=[ChatGeneration(message=message.model_copy())])

    def _generate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        return self._next(messages)

    async def _agenerate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: AsyncCallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        return self._next(messages)

    def extend(self, *steps: Step) -> None:
        """Append steps for the next turns."""
        self.script.extend(steps)

    def assert_complete(self) -> None:
        """Every scripted step was used."""
        assert len(self.calls) == len(self.script), f"{len(self.script) - len(self.calls)} scripted steps unused"
