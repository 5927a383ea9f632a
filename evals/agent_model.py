"""Where the agent's model answers come from in each mode: a cassette (replay), the configured model (live,
simulate), the configured model with every answer kept (record), or hand-written answers (author)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import httpx
from langchain_core.language_models import BaseChatModel

from agent.model import build_chat_model
from core.settings import Settings
from evals.authoring import AUTHORED_SOURCE, AuthoredTransport, load_authored
from evals.cassette import Cassette, RecordingTransport, ReplayTransport

AgentMode = Literal["replay", "live", "record", "simulate", "author"]

_HEADER = """\
# Model answers for evals/scenarios/{name}.yaml ({source}), replayed by evals/cassette.py in order.
# The fingerprint is what the agent sent (model, static prompt, tool schemas); replay fails on any change:
# re-record with `asistente eval --live --record {name}` (or, for authored answers, `asistente eval author {name}`).
"""


def replay_settings() -> Settings:
    """Settings for replay: the defaults (the cassettes' model), no key, no retries; no environment read."""
    return Settings.model_construct().model_copy(update={"openai_max_retries": 0})


@dataclass
class AgentModel:
    """The agent's chat model for one case, and the transport behind it (to check or save the cassette)."""

    model: BaseChatModel
    name: str
    client: httpx.AsyncClient
    replay: ReplayTransport | None = None
    recorder: RecordingTransport | None = None

    def problem(self) -> str | None:
        """Why the cassette did not replay as recorded (stale, exhausted, answers left unused), or None."""
        if self.replay is None:
            return None
        if self.replay.stale:
            return self.replay.stale
        name, played, recorded = self.replay.cassette.name, self.replay.played, self.replay.recorded
        if self.replay.exhausted:
            return f"cassette {name}: all {recorded} recorded answers played and the agent asked for more"
        if not self.replay.fully_played:
            return (
                f"cassette {name}: {played} of {recorded} recorded answers played (the conversation took another path)"
            )
        return None

    def save(self, path: Path) -> None:
        """Write what was recorded (record and author modes) to `path`."""
        if self.recorder is None:
            raise ValueError("nothing was recorded in this mode")
        cassette = self.recorder.cassette()
        cassette.save(path, _HEADER.format(name=path.stem, source=cassette.source))

    async def aclose(self) -> None:
        """Close the HTTP client."""
        await self.client.aclose()


def open_agent_model(mode: AgentMode, cassette: Path, settings: Settings | None = None) -> AgentModel:
    """The agent's model for `mode`; `settings` (the environment's) are required for live, record and simulate."""
    if mode == "replay":
        replay = ReplayTransport(Cassette.load(cassette))
        return _model(replay_settings(), replay, replay=replay)
    if mode == "author":
        authored = AuthoredTransport(load_authored(cassette.stem), cassette.stem)
        recorder = RecordingTransport(authored, cassette.stem, AUTHORED_SOURCE)
        return _model(replay_settings(), recorder, recorder=recorder)
    if settings is None:
        raise ValueError(f"{mode} mode needs the model's settings (OPENAI_API_KEY or OPENAI_BASE_URL)")
    if mode == "record":
        where = str(settings.openai_base_url or "https://api.openai.com/v1")
        recorder = RecordingTransport(httpx.AsyncHTTPTransport(), cassette.stem, f"recorded from {where}")
        return _model(settings, recorder, recorder=recorder)
    return _model(settings, httpx.AsyncHTTPTransport())


def _model(
    settings: Settings,
    transport: httpx.AsyncBaseTransport,
    *,
    replay: ReplayTransport | None = None,
    recorder: RecordingTransport | None = None,
) -> AgentModel:
    client = httpx.AsyncClient(transport=transport, timeout=settings.openai_timeout_seconds)
    model = build_chat_model(settings, http_client=client)
    return AgentModel(model, settings.openai_model, client, replay=replay, recorder=recorder)
