"""Running tool calls through LangGraph's `ToolNode`, with this turn's context and our error policy.

`ToolNode` validates arguments, injects the runtime and turns exceptions into error results. On top of it we add
what a tool needs (`ToolContext`: the turn from the graph's run context plus the process-wide services) and how
failures read to the model: bad arguments as `invalid_arguments`, anything unexpected as `tool_failed` (logged
once, with the traceback), so a failing tool never crashes the turn or leaves its call unanswered.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, cast

from langchain_core.messages import ToolCall, ToolMessage
from langchain_core.runnables import RunnableConfig
from langchain_core.tools import BaseTool
from langgraph.prebuilt import ToolNode
from langgraph.prebuilt.tool_node import ToolCallRequest, ToolInvocationError
from langgraph.types import Command

from tools.context import ToolContext, ToolServices, TurnContext
from tools.results import problem

logger = logging.getLogger(__name__)

Execute = Callable[[ToolCallRequest], Awaitable[ToolMessage | Command[Any]]]


def _describe_failure(exc: Exception) -> str:
    if isinstance(exc, ToolInvocationError):
        return problem("invalid_arguments", f"Fix the arguments and call the tool again. {exc.message}")
    logger.error("tool failed", exc_info=exc)
    return problem(
        "tool_failed",
        "The tool failed unexpectedly and may not have done anything. Tell the customer briefly and offer to try "
        "again later or to pass them to the staff.",
    )


class ToolRunner:
    """Executes tool calls with the services bound; returns one `ToolMessage` per call, in order."""

    def __init__(self, tools: Sequence[BaseTool], services: ToolServices) -> None:
        self._services = services
        self._node = ToolNode(list(tools), handle_tool_errors=_describe_failure, awrap_tool_call=self._with_services)

    @property
    def tools(self) -> dict[str, BaseTool]:
        """The tools by name."""
        return self._node.tools_by_name

    async def _with_services(self, request: ToolCallRequest, execute: Execute) -> ToolMessage | Command[Any]:
        # The graph's run context is the serialisable TurnContext; a tool sees it together with the services.
        turn = cast(TurnContext, request.runtime.context)
        runtime = dataclasses.replace(request.runtime, context=ToolContext(turn, self._services))  # type: ignore[arg-type]
        return await execute(dataclasses.replace(request, runtime=runtime))

    async def run(self, calls: Sequence[ToolCall], config: RunnableConfig) -> list[ToolMessage]:
        """Run `calls` (concurrently, as ToolNode does) inside the current graph node."""
        if not calls:
            return []
        output = await self._node.ainvoke([{**call, "type": "tool_call"} for call in calls], config)
        results = output["messages"] if isinstance(output, dict) else output
        messages = [m for m in results if isinstance(m, ToolMessage)]
        assert len(messages) == len(calls), "every tool call has exactly one result"
        return messages
