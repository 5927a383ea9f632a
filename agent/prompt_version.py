"""The prompt version: one short hash of what the model is told before any conversation (the static prompt and the
tool schemas). Traces, logs and `asistente check` show it, so an answer can be tied to the prompt that produced it
and two versions compared."""

from __future__ import annotations

import hashlib
import json
from typing import Any

from langchain_core.utils.function_calling import convert_to_openai_tool

from agent.prompting import static_prefix
from core.business import Business
from tools.registry import ALL_TOOLS


def tool_schemas() -> list[dict[str, Any]]:
    """The tools as the model receives them (OpenAI function schemas), in the order they are bound."""
    return [convert_to_openai_tool(tool) for tool in ALL_TOOLS]


def prompt_version(business: Business) -> str:
    """'p_' + 12 hex digits over the static prompt and the tool schemas: any edit to either changes it.

    The business facts are part of the static prompt, so editing the opening hours is a new version too: the model
    is told something else. The per-turn context (the date, the customer) is not: it changes every turn.
    """
    material = {"static_prompt": static_prefix(business).text, "tools": tool_schemas()}
    encoded = json.dumps(material, sort_keys=True, ensure_ascii=False).encode()
    return "p_" + hashlib.sha256(encoded).hexdigest()[:12]
