"""The two systems under measurement, each an ASGI app in this process, spoken to the way Twilio speaks to them:
Asistente (`server.app.create_app`, the real assistant around a model over HTTP) and the bare baseline.

A `Target` signs and posts WhatsApp webhooks for numbered customers and, with its worker on, times a turn from the
webhook to the reply reaching the Twilio double.
"""

from __future__ import annotations

import dataclasses
import itertools
import secrets
import time
from collections import defaultdict
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from asgi_lifespan import LifespanManager
from twilio.request_validator import RequestValidator

from bench.bare import WEBHOOK_PATH, BareConfig, bare_webhook_app
from bench.doubles import MODEL_API_KEY, MODEL_NAME, TWILIO_ACCOUNT_SID, Doubles
from core.business import example_business
from core.settings import Settings
from server.app import create_app
from server.options import ServerOptions
from server.wiring import Overrides
from store.engines import open_database
from store.migrate import migrate

PUBLIC_BASE = "https://bench.example.com"
BUSINESS_NUMBER = "+14155238886"
BARE_MODEL_NAME = MODEL_NAME + "-bare"  # the model double tells the two apart by the model they ask for
ASISTENTE, BARE = "Asistente", "bare"
# Every target opened gets customers of its own (the doubles count replies per number across openings).
_PREFIXES = itertools.count()
# Background passes (every kind of polling, maintenance, holding check) an hour apart, so that a transaction count
# is the turns' own.
QUIET_BACKGROUND = {
    f.name: 3600.0
    for f in dataclasses.fields(ServerOptions)
    if f.name.endswith("poll_seconds") or f.name in {"reminder_interval_seconds", "holding_check_seconds"}
}


def bench_options(**wanted: float | int) -> ServerOptions:
    """Production options with the fold window at 0 (whatever the fields are called in this version: every field
    named after folding or debouncing) and `wanted` fields that exist here."""
    known = {f.name for f in dataclasses.fields(ServerOptions)}
    values: dict[str, Any] = {name: 0.0 for name in known if "debounce" in name or name.startswith("fold")}
    values.update({name: value for name, value in wanted.items() if name in known})
    return ServerOptions(**values)


@dataclass
class Target:
    """One system's webhook behind an httpx client (ASGI in this process, or HTTP); customers are numbered, each
    target with numbers of its own."""

    name: str
    db_url: str
    client: httpx.AsyncClient
    token: str
    doubles: Doubles
    prefix: str  # the customers' numbers start with it: two digits, unique to this target
    app: Any = None
    _sids: itertools.count[int] = field(default_factory=itertools.count)
    _sent: defaultdict[str, int] = field(default_factory=lambda: defaultdict(int))

    def customer(self, index: int) -> str:
        """The WhatsApp address of customer `index`."""
        return f"whatsapp:+34{self.prefix}{index:07d}"

    def signed(self, index: int, text: str) -> tuple[dict[str, str], dict[str, str]]:
        """A webhook form from customer `index` saying `text`, and its headers (Twilio's signature)."""
        sid = f"SM{self.prefix}{next(self._sids):030x}"
        number = self.customer(index)
        form = {
            "MessageSid": sid,
            "SmsMessageSid": sid,
            "AccountSid": TWILIO_ACCOUNT_SID,
            "From": number,
            "To": f"whatsapp:{BUSINESS_NUMBER}",
            "WaId": number.removeprefix("whatsapp:+"),
            "ProfileName": "Cliente",
            "Body": text,
            "NumMedia": "0",
            "MessageType": "text",
        }
        signature = RequestValidator(self.token).compute_signature(PUBLIC_BASE + WEBHOOK_PATH, form)
        return form, {"X-Twilio-Signature": signature}

    async def post(self, index: int, text: str) -> float:
        """Post one message; the seconds until the webhook answered (it must answer 200)."""
        form, headers = self.signed(index, text)
        started = time.perf_counter()
        await self.send(form, headers)
        return time.perf_counter() - started

    async def send(self, form: dict[str, str], headers: dict[str, str]) -> None:
        """Post a signed form (`signed`); raises unless the webhook answered 200."""
        response = await self.client.post(WEBHOOK_PATH, data=form, headers=headers)
        if response.status_code != 200:
            raise RuntimeError(f"{self.name} webhook answered {response.status_code}")

    async def turn(self, index: int, text: str, wait_seconds: float = 30.0) -> float:
        """Post one message and wait for the reply to reach Twilio; seconds from the post to Twilio's receipt."""
        number = self.customer(index)
        form, headers = self.signed(index, text)
        started = time.monotonic()
        await self.send(form, headers)
        count, at = await self.doubles.wait_sent(number, self._sent[number], wait_seconds)
        self._sent[number] = count
        return at - started


def new_prefix() -> str:
    """Two digits no target opened before in this process has used (for 90 openings)."""
    return f"{10 + next(_PREFIXES) % 90}"


def asistente_settings(db_url: str, doubles: Doubles, token: str, spool: Path) -> Settings:
    """Settings for Asistente against the doubles (model, Twilio), webhooks signed with `token`."""
    values: dict[str, Any] = {
        "database_url": db_url,
        "spool_dir": spool,
        "openai_api_key": MODEL_API_KEY,
        "openai_base_url": doubles.model_url,
        "openai_model": MODEL_NAME,
        "openai_max_retries": 0,
        "twilio_account_sid": TWILIO_ACCOUNT_SID,
        "twilio_auth_token": token,
        "twilio_whatsapp_number": BUSINESS_NUMBER,
        "twilio_api_base_url": doubles.twilio_url,
        "public_base_url": PUBLIC_BASE,
        "rate_limit_per_minute": 1_000_000,
        "langsmith_tracing": False,
    }
    return Settings(_env_file=None, **values)


@asynccontextmanager
async def _serving(app: Any) -> AsyncIterator[tuple[Any, httpx.AsyncClient]]:
    async with (
        LifespanManager(app, startup_timeout=60, shutdown_timeout=60) as manager,
        httpx.AsyncClient(transport=httpx.ASGITransport(app=manager.app), base_url=PUBLIC_BASE, timeout=60) as client,
    ):
        yield manager.app, client


@asynccontextmanager
async def open_asistente(
    db_url: str, doubles: Doubles, spool: Path, *, worker: bool, options: ServerOptions | None = None
) -> AsyncIterator[Target]:
    """Asistente on a migrated database: the whole app, its worker in the same event loop when `worker`."""
    token = secrets.token_hex(16)
    async with AsyncExitStack() as stack:
        db = open_database(db_url)
        stack.push_async_callback(db.close)
        await migrate(db)
        overrides = Overrides(business=example_business(), db=db, options=options or bench_options())
        settings = asistente_settings(db_url, doubles, token, spool)
        app = create_app(settings, overrides, with_agent=worker, run_worker=worker)
        served, client = await stack.enter_async_context(_serving(app))
        yield Target(ASISTENTE, db_url, client, token, doubles, prefix=new_prefix(), app=served)


def bare_config(db_url: str, doubles: Doubles, token: str, *, worker: bool, concurrency: int = 16) -> BareConfig:
    """The bare webhook's configuration against this run's doubles (its worker only with `worker`)."""
    return BareConfig(
        db_url=db_url,
        model_url=doubles.model_url,
        twilio_url=doubles.twilio_url,
        account_sid=TWILIO_ACCOUNT_SID,
        auth_token=token,
        public_url=PUBLIC_BASE,
        business_number=BUSINESS_NUMBER,
        model_api_key=MODEL_API_KEY,
        model=BARE_MODEL_NAME,
        worker=worker,
        concurrency=concurrency,
    )


@asynccontextmanager
async def open_bare(db_url: str, doubles: Doubles, *, worker: bool, concurrency: int = 16) -> AsyncIterator[Target]:
    """The bare webhook (and its worker when `worker`)."""
    token = secrets.token_hex(16)
    config = bare_config(db_url, doubles, token, worker=worker, concurrency=concurrency)
    async with _serving(bare_webhook_app(config)) as (served, client):
        yield Target(BARE, db_url, client, token, doubles, prefix=new_prefix(), app=served)
