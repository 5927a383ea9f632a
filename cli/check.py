"""`asistente check`: settings and the business config, then whether each backend answers."""

from __future__ import annotations

import asyncio
from typing import Annotated

import httpx
import typer

from cli.config import load_configuration
from server.ops.probes import ProbeResult, probe_calendly, probe_database, probe_openai, probe_twilio
from store import open_database


def check(
    offline: Annotated[bool, typer.Option(help="Do not contact OpenAI, Twilio or Calendly.")] = False,
) -> None:
    """Load settings and the business config, then report each backend and whether it answers."""
    settings, business = load_configuration()
    typer.echo(f"business: {business.name} ({business.timezone}, {len(business.services)} services)")

    async def run() -> list[ProbeResult]:
        db = open_database(settings.database_url, open_timeout=3.0)
        try:
            results = [await probe_database(db)]
        finally:
            await db.close()
        if offline:
            return results
        async with httpx.AsyncClient(timeout=5.0) as client:
            results += await asyncio.gather(
                probe_openai(settings, client), probe_twilio(settings, client), probe_calendly(settings, client)
            )
        return results

    results = asyncio.run(run())
    for result in results:
        state = "ok" if result.ok else "FAILED"
        typer.echo(f"{result.name:9} {state:7} {result.detail}")
    if not all(r.ok for r in results):
        raise typer.Exit(code=1)
