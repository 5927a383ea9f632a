"""Every turn becomes a LangSmith trace grouped by the customer's thread (captured locally, never sent)."""

from __future__ import annotations

from typing import Any

import requests
from langsmith import Client
from requests.adapters import BaseAdapter

from agent.api import IncomingText
from agent.assistant import Assistant
from agent.tracing import TurnTracer
from core.settings import Settings
from tests.agent.conftest import CUSTOMER, Harness
from tests.scripted_model import says


class CapturingAdapter(BaseAdapter):
    """A requests transport that records LangSmith's ingest calls and answers 200."""

    def __init__(self) -> None:
        super().__init__()
        self.bodies: list[bytes] = []
        self.urls: list[str] = []

    def send(self, request: requests.PreparedRequest, **kwargs: Any) -> requests.Response:
        self.urls.append(str(request.url))
        body = request.body
        self.bodies.append(body if isinstance(body, bytes) else str(body or "").encode())
        response = requests.Response()
        response.status_code = 200
        response._content = b"{}"
        response.headers["Content-Type"] = "application/json"
        response.url = str(request.url)
        return response

    def close(self) -> None:
        return None


async def test_turn_is_traced_with_the_thread_id(harness: Harness) -> None:
    adapter = CapturingAdapter()
    client = Client(api_url="http://langsmith.test", api_key="lsv2-test-key-0000")
    # Mounted after construction so it replaces the client's own transport: nothing leaves the process.
    client.session.mount("http://", adapter)
    tracer = TurnTracer(client, "asistente-tests")
    assistant = Assistant(harness.graph, harness.assistant.services, tracer=tracer)
    harness.model.extend(says("¡Hola!"))
    await assistant.customer_turn(CUSTOMER, [IncomingText(body="hola")], profile_name=None)
    tracer.flush()
    sent = b"".join(adapter.bodies)
    assert any("/runs" in url for url in adapter.urls), adapter.urls
    assert CUSTOMER.encode() in sent and b"asistente-tests" in sent and b"turn:customer" in sent


def test_tracing_is_off_without_a_key() -> None:
    assert not TurnTracer.from_settings(Settings(langsmith_tracing=False)).enabled
    on = Settings(
        langsmith_tracing=True,
        langsmith_api_key="lsv2_pt_0123456789abcdef",  # type: ignore[arg-type]
        langsmith_endpoint="http://127.0.0.1:9",  # type: ignore[arg-type]
    )
    assert TurnTracer.from_settings(on).enabled
