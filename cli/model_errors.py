"""The model's expected failures (bad key, server down, timeout...) as one line that says what to check.

langchain-openai re-raises the OpenAI client's errors as subclasses of the same `openai` types, so matching on
those covers both.
"""

from __future__ import annotations

from urllib.parse import urlsplit

import openai

from core.quoting import one_line
from core.settings import Settings

DEFAULT_HOST = "api.openai.com"
# A server's error message can be a page of JSON or HTML; the line keeps its start.
_DETAIL_WIDTH = 160


def model_host(settings: Settings) -> str:
    """Where the model is: host and port of OPENAI_BASE_URL (never its path or credentials), or OpenAI's host."""
    if settings.openai_base_url is None:
        return DEFAULT_HOST
    url = urlsplit(str(settings.openai_base_url))
    host = url.hostname or str(settings.openai_base_url)
    return f"{host}:{url.port}" if url.port else host


def describe_model_error(exc: BaseException, settings: Settings) -> str | None:
    """One line: what went wrong with the model and which setting to check; None if `exc` is not the model's."""
    if not isinstance(exc, openai.OpenAIError):
        return None
    where = model_host(settings)
    if isinstance(exc, openai.AuthenticationError):
        return f"the model at {where} refused the API key (401): check OPENAI_API_KEY"
    if isinstance(exc, openai.PermissionDeniedError):
        return f"the model at {where} denied access (403): check OPENAI_API_KEY and OPENAI_MODEL"
    if isinstance(exc, openai.NotFoundError):
        return (
            f"the model {settings.openai_model!r} was not found at {where} (404): "
            "check OPENAI_MODEL and OPENAI_BASE_URL"
        )
    if isinstance(exc, openai.RateLimitError):
        return f"the model at {where} is rate-limited or out of quota (429): try again later or check the account"
    # A timeout is a connection error too: test it first.
    if isinstance(exc, openai.APITimeoutError):
        return (
            f"the model at {where} did not answer in time (OPENAI_TIMEOUT_SECONDS="
            f"{settings.openai_timeout_seconds:g}, OPENAI_MAX_RETRIES={settings.openai_max_retries}): "
            "try again, or raise the timeout"
        )
    if isinstance(exc, openai.APIConnectionError):
        return f"cannot reach the model at {where}: check OPENAI_BASE_URL or the network"
    if isinstance(exc, openai.APIStatusError):
        return f"the model at {where} failed ({exc.status_code}): {one_line(exc.message, limit=_DETAIL_WIDTH)}"
    return f"the model at {where} failed: {one_line(str(exc) or type(exc).__name__, limit=_DETAIL_WIDTH)}"
