"""POST/GET /api/feedback: staff rate a turn named by its run, a customer's message or a reply; the rating is stored
and handed to LangSmith on that turn's run. Strict bodies, admin only."""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import timedelta
from types import SimpleNamespace
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from core.clock import FixedClock
from core.settings import Settings
from server.http.auth import mint_admin_token
from server.http.deps import get_services
from server.http.errors import install_error_handlers
from server.http.routes.feedback import router
from server.pipeline.feedback import FeedbackPublisher
from store import Database
from store.feedback import FeedbackRepository
from store.inbound import InboundRepository
from store.outbox_insert import insert_outbox
from store.turn_runs import TurnRun, TurnRunRepository
from tests.server.conftest import Secrets
from tests.server.test_feedback import ANA, Sink

NO_TURN = {"error": "no traced turn matches"}


@dataclass
class Api:
    client: httpx.AsyncClient
    sink: Sink
    admin: dict[str, str]
    run: TurnRun
    inbound_sid: str
    reply_id: int


@pytest.fixture
async def api(
    db: Database, make_settings: Callable[..., Settings], keys: Secrets, clock: FixedClock
) -> AsyncIterator[Api]:
    """The feedback routes alone, on services holding just what they use, with one traced turn: a customer message
    and the reply that turn queued."""
    sink = Sink()
    services = SimpleNamespace(
        feedback=FeedbackPublisher(FeedbackRepository(db), TurnRunRepository(db), sink, clock),
        settings=make_settings(),
        clock=clock,
    )
    app = FastAPI()
    install_error_handlers(app)
    app.include_router(router)
    app.dependency_overrides[get_services] = lambda: services
    inbound = await InboundRepository(db).receive(message_sid="SMq1", wa_id=ANA, body="hola", received_at=clock.now())
    assert inbound is not None
    run = await TurnRunRepository(db).record(
        TurnRun(
            run_id=str(uuid.uuid4()),
            trace_id=str(uuid.uuid4()),
            wa_id=ANA,
            kind="customer",
            turn_ref=inbound.id,
            message_sids=["SMq1"],
            outcome="answered",
            created_at=clock.now(),
        )
    )
    async with db.transaction() as conn:
        [reply] = await insert_outbox(
            conn, wa_id=ANA, parts=["Hola"], kind="reply", now=clock.now(), dedupe_key=f"turn:customer:{inbound.id}:0"
        )
    token = mint_admin_token(keys.jwt_secret, subject="ana-staff", now=clock.now(), ttl=timedelta(hours=1))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test") as client:
        yield Api(client, sink, {"Authorization": f"Bearer {token}"}, run, "SMq1", reply)


async def stored(db: Database) -> list[dict[str, Any]]:
    return await db.fetch_all("SELECT run_id, key, score, comment, source, author FROM turn_feedback ORDER BY id")


async def test_a_rating_is_stored_and_sent_on_the_turns_run(api: Api, db: Database) -> None:
    response = await api.client.post(
        "/api/feedback",
        json={"run_id": api.run.run_id.upper(), "score": 0.25, "comment": "  Se equivocó de hora  "},
        headers=api.admin,
    )
    assert response.status_code == 201, response.text
    body = response.json()
    assert body == {
        "id": body["id"],
        "run_id": api.run.run_id,
        "key": "staff_rating",
        "score": 0.25,
        "sent": True,
        "tracing": True,
    }
    assert await stored(db) == [
        {
            "run_id": api.run.run_id,
            "key": "staff_rating",
            "score": 0.25,
            "comment": "Se equivocó de hora",
            "source": "staff",
            "author": "ana-staff",
        }
    ]
    assert [(c.run_id, c.score, c.id) for c in api.sink.calls] == [(api.run.run_id, 0.25, body["id"])]


async def test_a_customer_message_or_a_reply_names_the_turn(api: Api, db: Database) -> None:
    for target in ({"message_sid": api.inbound_sid}, {"outbox_id": api.reply_id}):
        response = await api.client.post("/api/feedback", json={**target, "score": 1, "key": "tone"}, headers=api.admin)
        assert response.status_code == 201, (target, response.text)
        assert response.json()["run_id"] == api.run.run_id
    assert [c.run_id for c in api.sink.calls] == [api.run.run_id] * 2
    assert [row["key"] for row in await stored(db)] == ["tone", "tone"]


async def test_a_rating_langsmith_refused_is_accepted_as_not_sent_yet(api: Api, db: Database) -> None:
    api.sink.failures = 1
    response = await api.client.post("/api/feedback", json={"run_id": api.run.run_id, "score": 0}, headers=api.admin)
    assert response.status_code == 201
    assert response.json()["sent"] is False
    [row] = await db.fetch_all("SELECT sent_at, attempts, last_error FROM turn_feedback")
    assert row == {"sent_at": None, "attempts": 1, "last_error": "ConnectionError: LangSmith unreachable"}


async def test_a_turn_that_was_not_traced_is_a_404_and_nothing_is_stored(api: Api, db: Database) -> None:
    for target in ({"run_id": str(uuid.uuid4())}, {"message_sid": "SMunknown"}, {"outbox_id": api.reply_id + 1}):
        response = await api.client.post("/api/feedback", json={**target, "score": 1}, headers=api.admin)
        assert (response.status_code, response.json()) == (404, NO_TURN), target
    assert await stored(db) == [] and api.sink.calls == []


RUN = "<the traced run>"


@pytest.mark.parametrize(
    "body",
    [
        {"run_id": RUN, "score": 1.5},
        {"run_id": RUN, "score": -0.1},
        {"run_id": RUN, "score": True},
        {"run_id": RUN, "score": "0.9"},
        {"run_id": RUN},
        {"run_id": RUN, "message_sid": "SMq1", "score": 1},  # two targets, each valid alone
        {"score": 1},
        {"run_id": None, "score": 1},
        {"run_id": RUN, "score": 1, "author": "someone else"},  # not a field
        {"run_id": RUN, "score": 1, "key": "Staff-Rating"},
        {"run_id": RUN, "score": 1, "comment": "x" * 2001},
        {"run_id": RUN, "score": 1, "comment": "hola\u0000"},
        {"run_id": RUN, "score": 1, "comment": "\ud800"},
        {"outbox_id": "1", "score": 1},
        {"message_sid": "SM 1", "score": 1},
        {"run_id": "not-a-uuid", "score": 1},
    ],
)
async def test_an_invalid_rating_is_a_422_and_nothing_is_stored(api: Api, db: Database, body: dict[str, Any]) -> None:
    body = {k: api.run.run_id if v == RUN else v for k, v in body.items()}
    # Encoded here, escaping what UTF-8 cannot hold ("\ud800" as JSON spells it), as a client would send it.
    headers = {**api.admin, "Content-Type": "application/json"}
    response = await api.client.post("/api/feedback", content=json.dumps(body), headers=headers)
    assert response.status_code == 422, (body, response.text)
    assert response.json()["error"] == "invalid request"
    assert await stored(db) == []


async def test_the_same_body_valid_is_accepted(api: Api) -> None:
    # The counterpart of the 422 cases: the edges themselves are fine.
    for score in (0, 1, 0.0, 1.0):
        body = {"run_id": api.run.run_id, "score": score, "comment": "x" * 2000}
        assert (await api.client.post("/api/feedback", json=body, headers=api.admin)).status_code == 201


async def test_only_admins_rate_and_only_in_json(api: Api, db: Database, keys: Secrets, clock: FixedClock) -> None:
    body = {"run_id": api.run.run_id, "score": 1}
    assert (await api.client.post("/api/feedback", json=body)).status_code == 401
    forged = mint_admin_token("another-secret-" + "x" * 40, subject="ana", now=clock.now(), ttl=timedelta(hours=1))
    response = await api.client.post("/api/feedback", json=body, headers={"Authorization": f"Bearer {forged}"})
    assert response.status_code == 401
    response = await api.client.post("/api/feedback", data=body, headers=api.admin)  # a form
    assert response.status_code == 415
    assert (await api.client.get(f"/api/feedback?run_id={api.run.run_id}")).status_code == 401
    assert await stored(db) == [] and api.sink.calls == []


async def test_a_turn_and_what_it_was_rated_can_be_read(api: Api) -> None:
    await api.client.post("/api/feedback", json={"outbox_id": api.reply_id, "score": 0.5}, headers=api.admin)
    response = await api.client.get("/api/feedback", params={"message_sid": api.inbound_sid}, headers=api.admin)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["run"]["run_id"] == api.run.run_id and body["run"]["outcome"] == "answered"
    [entry] = body["feedback"]
    assert (entry["score"], entry["author"], entry["sent"], entry["attempts"]) == (0.5, "ana-staff", True, 1)
    unknown = await api.client.get("/api/feedback", params={"run_id": str(uuid.uuid4())}, headers=api.admin)
    assert (unknown.status_code, unknown.json()) == (404, NO_TURN)
    both: dict[str, str | int] = {"run_id": api.run.run_id, "outbox_id": api.reply_id}
    assert (await api.client.get("/api/feedback", params=both, headers=api.admin)).status_code == 422
