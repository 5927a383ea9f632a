"""The bare baseline: what a developer writes in an afternoon with LangGraph, durable and nothing else.

- `BareLoop`: a `StateGraph` agent -> `ToolNode` -> agent loop (`tools_condition`) around `ChatOpenAI`, with one tool
  (`check_availability`, one read from the same database) and LangGraph's own checkpointer on the same kind of
  database as Asistente's (`AsyncSqliteSaver` on its own aiosqlite connection, or `AsyncPostgresSaver` on a psycopg
  pool), written once per turn as Asistente's is. The prompt is the thread's history; no system prompt, window,
  policy or confirmation.
- `bare_webhook_app`: Twilio's signature checked with its `RequestValidator`, one INSERT (deduplicated on the
  MessageSid) before the empty TwiML answer, and, with `worker`, tasks in the same process that run the turn, post
  the reply to Twilio's Messages API and mark the row answered (rows left unanswered are picked up at start).

The same model and Twilio doubles (over HTTP) serve both, so the difference to Asistente is the product's own work.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections import defaultdict
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass
from typing import Annotated, Any, Literal, TypedDict

import httpx
from fastapi import FastAPI, Request, Response
from langchain_core.messages import AnyMessage, HumanMessage
from langchain_core.tools import tool
from langchain_openai import ChatOpenAI
from langgraph.graph import START, StateGraph
from langgraph.graph.message import add_messages
from langgraph.graph.state import CompiledStateGraph
from langgraph.prebuilt import ToolNode, tools_condition
from pydantic import SecretStr
from twilio.request_validator import RequestValidator

from bench.bare_store import BareStore, open_bare_store

logger = logging.getLogger(__name__)

EMPTY_TWIML = '<?xml version="1.0" encoding="UTF-8"?><Response></Response>'
WEBHOOK_PATH = "/webhook/whatsapp"
DURABILITY: Literal["exit"] = "exit"

__all__ = ["BareConfig", "BareLoop", "BareStore", "bare_webhook_app", "open_bare_store"]


class BareState(TypedDict):
    """The whole state: the conversation."""

    messages: Annotated[list[AnyMessage], add_messages]


class BareLoop:
    """agent -> tools -> agent on a checkpointed thread per customer."""

    def __init__(self, graph: CompiledStateGraph[BareState, None, BareState, BareState]) -> None:
        self.graph = graph

    @classmethod
    @asynccontextmanager
    async def open(cls, store: BareStore, model_url: str, api_key: str, model: str) -> AsyncIterator[BareLoop]:
        """The loop on `store`'s database (its checkpointer opened here), the model at `model_url`."""

        @tool
        async def check_availability(service: str, date_from: str, date_to: str | None = None) -> str:
            """Find free appointment times for a service between two days (YYYY-MM-DD)."""
            booked = await store.booked_between(date_from, date_to or date_from)
            free = ["10:00", "11:30", "17:00"][booked:]
            return json.dumps({"service": service, "days": [{"date": date_from, "start_times": free}]})

        chat = ChatOpenAI(model=model, base_url=model_url, api_key=SecretStr(api_key), max_retries=0, timeout=30)
        bound = chat.bind_tools([check_availability])

        async def agent(state: BareState) -> dict[str, Any]:
            return {"messages": [await bound.ainvoke(state["messages"])]}

        builder = StateGraph(BareState)
        builder.add_node("agent", agent)
        builder.add_node("tools", ToolNode([check_availability]))
        builder.add_edge(START, "agent")
        builder.add_conditional_edges("agent", tools_condition)
        builder.add_edge("tools", "agent")
        async with store.checkpointer() as saver:
            yield cls(builder.compile(checkpointer=saver))

    async def turn(self, thread_id: str, text: str) -> str:
        """Run one customer message through the graph; the final text."""
        config: Any = {"configurable": {"thread_id": thread_id}}
        # Checkpointed once, at the end of the turn, as Asistente's turns are: LangGraph's default ("async") writes one
        # per step, and the ratio would then measure that setting instead of the product's work.
        result = await self.graph.ainvoke({"messages": [HumanMessage(content=text)]}, config, durability=DURABILITY)
        return str(result["messages"][-1].text)


@dataclass(frozen=True)
class BareConfig:
    """Where the bare service's database, model and Twilio are, and how it runs."""

    db_url: str
    model_url: str
    twilio_url: str
    account_sid: str
    auth_token: str
    public_url: str  # what Twilio signs: the webhook's public address is public_url + WEBHOOK_PATH
    business_number: str = "+14155238886"
    model_api_key: str = "sk-bench-double"
    model: str = "bench-double"
    worker: bool = True
    concurrency: int = 16  # turns at once, as Asistente's max_concurrent_turns


class _Worker:
    """Turns in `concurrency` tasks of this process, fed by the webhook through a queue; one customer at a time."""

    def __init__(self, config: BareConfig, store: BareStore, loop: BareLoop, http: httpx.AsyncClient) -> None:
        self._config, self._store, self._loop, self._http = config, store, loop, http
        self.queue: asyncio.Queue[tuple[int, str, str]] = asyncio.Queue()
        # Without it two messages of one customer could run on the thread at once (a forked checkpoint).
        self._locks: defaultdict[str, asyncio.Lock] = defaultdict(asyncio.Lock)

    async def run(self) -> None:
        for row in await self._store.unanswered():
            self.queue.put_nowait(row)
        await asyncio.gather(*(self._serve() for _ in range(self._config.concurrency)))

    async def _serve(self) -> None:
        while True:
            row_id, wa_id, body = await self.queue.get()
            try:
                async with self._locks[wa_id]:
                    reply = await self._loop.turn(wa_id, body)
                    await self._send(wa_id, reply)
                    await self._store.mark_answered(row_id)
            except Exception:
                logger.exception("bare turn failed")  # left unanswered: picked up again at the next start

    async def _send(self, wa_id: str, text: str) -> None:
        config = self._config
        response = await self._http.post(
            f"{config.twilio_url}/2010-04-01/Accounts/{config.account_sid}/Messages.json",
            data={"To": wa_id, "From": f"whatsapp:{config.business_number}", "Body": text},
            auth=(config.account_sid, config.auth_token),
        )
        response.raise_for_status()


def bare_webhook_app(config: BareConfig) -> FastAPI:
    """The bare durable webhook (and, with `config.worker`, its worker) as an ASGI app; the database and the model
    are opened in the lifespan."""
    validator = RequestValidator(config.auth_token)
    url = config.public_url.rstrip("/") + WEBHOOK_PATH

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with AsyncExitStack() as stack:
            store = await stack.enter_async_context(open_bare_store(config.db_url))
            app.state.store, app.state.worker = store, None
            if config.worker:
                loop = await stack.enter_async_context(
                    BareLoop.open(store, config.model_url, config.model_api_key, config.model)
                )
                http = await stack.enter_async_context(httpx.AsyncClient(timeout=10))
                worker = _Worker(config, store, loop, http)
                app.state.worker = worker
                task = asyncio.create_task(worker.run())
                try:
                    yield
                finally:
                    task.cancel()
                    await asyncio.gather(task, return_exceptions=True)
                return
            yield

    app = FastAPI(lifespan=lifespan, docs_url=None, redoc_url=None, openapi_url=None)

    @app.post(WEBHOOK_PATH)
    async def inbound(request: Request) -> Response:
        form = {key: str(value) for key, value in (await request.form()).items()}
        if not validator.validate(url, form, request.headers.get("x-twilio-signature", "")):
            return Response(status_code=403)
        store: BareStore = request.app.state.store
        row_id = await store.insert_inbound(form["MessageSid"], form["From"], form.get("Body", ""))
        worker: _Worker | None = request.app.state.worker
        if row_id is not None and worker is not None:
            worker.queue.put_nowait((row_id, form["From"], form.get("Body", "")))
        return Response(content=EMPTY_TWIML, media_type="text/xml")

    return app
