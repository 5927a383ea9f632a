"""The model replayed from HTTP cassettes, and re-recorded from the real OpenAI API on request.

Playback (the default) never touches the network: `record_mode="none"`, every interaction plays at most once
(`allow_playback_repeats=False`), and requests are matched on method + scheme + host + path only, so interactions
play in order whatever the prompt says. A request the cassette has no answer left for fails the run, and
`Replay.assert_fully_played()` fails a run that left answers unused. Only requests to the OpenAI host are the
cassette's business; anything else is not recorded or matched here.

Re-recording: with a real key and no OPENAI_BASE_URL, run

    ASISTENTE_RECORD=1 OPENAI_API_KEY=sk-... asistente eval NAME

The cassette is overwritten with what the API answered (record_mode "all"), with the Authorization header and
account headers filtered out and compressed bodies decoded so it stays readable. Review the diff: the conversation's
expectations must still pass against the new answers.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import vcr

from evals import RECORD_ENV

OPENAI_HOST = "api.openai.com"
MATCH_ON = ("method", "scheme", "host", "path")
# Credentials and account identifiers never reach a cassette file.
_FILTERED_REQUEST_HEADERS = ("authorization", "openai-organization", "openai-project", "cookie")
_FILTERED_RESPONSE_HEADERS = ("openai-organization", "openai-project", "set-cookie")

_RECORDED_HEADER = """\
# Recorded from the OpenAI API with {env}=1 (see evals/replay.py); Authorization and account headers filtered.
# Re-record the same way: {env}=1 OPENAI_API_KEY=sk-... asistente eval {name}
"""


class CassetteNotFullyPlayed(AssertionError):
    """The run ended with recorded model answers left unused: the conversation took a different path."""


def _openai_only(request: Any) -> Any:
    # Returning None tells vcrpy the request is not part of the cassette.
    return request if request.host == OPENAI_HOST else None


def _without_account_headers(response: dict[str, Any]) -> dict[str, Any]:
    headers = response.get("headers", {})
    response["headers"] = {k: v for k, v in headers.items() if k.lower() not in _FILTERED_RESPONSE_HEADERS}
    return response


@dataclass
class Replay:
    """An open cassette: how much of it was played, and whether it was recorded instead."""

    path: Path
    cassette: Any
    recording: bool

    @property
    def recorded(self) -> int:
        """Interactions in the cassette."""
        return len(self.cassette)

    @property
    def played(self) -> int:
        """Interactions played back so far."""
        return len(self.cassette.play_counts)

    @property
    def fully_played(self) -> bool:
        """Every recorded answer was used (always true while recording: everything is new)."""
        return self.recording or self.played == self.recorded

    def assert_fully_played(self) -> None:
        """Raise `CassetteNotFullyPlayed` when answers were left unused."""
        if not self.fully_played:
            raise CassetteNotFullyPlayed(
                f"{self.path.name}: {self.played} of {self.recorded} recorded model answers were played"
            )


@contextmanager
def model_cassette(path: Path, *, record: bool = False) -> Iterator[Replay]:
    """Answer OpenAI requests from the cassette at `path` (or record them into it when `record`)."""
    if not record and not path.is_file():
        raise FileNotFoundError(f"no cassette at {path}; record it with {RECORD_ENV}=1 (see evals/replay.py)")
    recorder = vcr.VCR(
        record_mode="all" if record else "none",
        match_on=MATCH_ON,
        filter_headers=list(_FILTERED_REQUEST_HEADERS),
        before_record_request=_openai_only,
        before_record_response=_without_account_headers,
        decode_compressed_response=True,
    )
    with recorder.use_cassette(str(path), allow_playback_repeats=False) as cassette:
        yield Replay(path=path, cassette=cassette, recording=record)
    if record and path.is_file():
        # vcrpy writes plain YAML; say where it came from, as the hand-authored cassettes do.
        header = _RECORDED_HEADER.format(env=RECORD_ENV, name=path.stem)
        path.write_text(header + path.read_text(encoding="utf-8"), encoding="utf-8")
