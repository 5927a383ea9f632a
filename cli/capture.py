"""`asistente eval capture TARGET`: a real conversation from the database, masked, as a scenario to correct."""

from __future__ import annotations

import asyncio
import sqlite3
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated
from zoneinfo import ZoneInfo

import psycopg
import typer

from cli.config import fail, load_configuration, one_line
from cli.db import CONNECT_TIMEOUT_SECONDS, DatabaseUnavailable, check_database, describe_database
from core.timeutil import localize
from store import open_database
from store.sqlite import sqlite_path

if TYPE_CHECKING:
    from evals.capture import Captured, Window


def _moment(value: str | None, option: str, tz: ZoneInfo) -> datetime | None:
    if value is None:
        return None
    try:
        return localize(datetime.fromisoformat(value), tz)
    except ValueError:
        raise fail(f"{option} {value}: not a date or time (e.g. 2026-11-24 or 2026-11-24T18:30)") from None


async def _capture(url: str, target: str, tz: ZoneInfo, window: Window) -> Captured:
    from evals.capture import capture as capture_conversation

    await check_database(url)
    db = open_database(url, open_timeout=CONNECT_TIMEOUT_SECONDS)
    try:
        return await capture_conversation(db, target, tz=tz, window=window)
    finally:
        await db.close()


def capture(
    target: Annotated[
        str, typer.Argument(help="The customer (whatsapp:+34…, +34… or 34…) or a LangSmith run id of one of its turns.")
    ],
    since: Annotated[
        str | None, typer.Option(help="Start of the window (ISO date/time; business timezone unless it has one).")
    ] = None,
    until: Annotated[
        str | None, typer.Option(help="End of the window (default: the customer's last message, or the run's turn).")
    ] = None,
    last: Annotated[int | None, typer.Option(min=1, help="Only the last N turns (no 24-hour limit then).")] = None,
    out: Annotated[
        Path | None, typer.Option(help="File to write (default: evals/scenarios/captured_<hash>.yaml).")
    ] = None,
    force: Annotated[bool, typer.Option("--force", help="Overwrite the file if it exists.")] = False,
) -> None:
    """Turn a real conversation from DATABASE_URL into an evaluation scenario (masked), to correct.

    Its expectations are what happened; correct them into what should have happened, then record its cassette
    (`asistente eval --live --record NAME`, or `asistente eval author NAME`).
    Default window: the 24 hours before the customer's last message (or up to the run's turn).
    """
    from evals import scenario
    from evals.capture import CaptureError, Window

    settings, business = load_configuration()
    url = settings.database_url
    window = Window(_moment(since, "--since", business.tz), _moment(until, "--until", business.tz), last)
    where = describe_database(url)
    if url.startswith("sqlite://") and not Path(sqlite_path(url)).is_file():
        # Opening it would create an empty database: there is nothing to capture from a file that is not there.
        raise fail(f"DATABASE_URL ({where}) does not exist: nothing to capture")
    try:
        captured = asyncio.run(_capture(url, target, business.tz, window))
    except (CaptureError, DatabaseUnavailable) as exc:
        raise fail(str(exc)) from None
    except (psycopg.Error, sqlite3.Error, OSError) as exc:
        raise fail(
            f"capture could not read {where}: {one_line(exc)} (is its schema up to date? `asistente db migrate`)"
        ) from None
    path = out or scenario.SCENARIOS_DIR / f"{captured.name}.yaml"
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("w" if force else "x", encoding="utf-8") as file:
            file.write(captured.text)
    except FileExistsError:
        raise fail(f"{path} exists; pass --force to overwrite it") from None
    except OSError as exc:
        raise fail(f"cannot write {path}: {one_line(exc)}") from None
    turns = len(captured.scenario.script or ())
    typer.echo(f"captured {turns} turn(s) to {path}; its expectations are what happened: review and correct them")
