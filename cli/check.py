"""`asistente check`: every problem in the settings, the business YAML and each backend, in one table."""

from __future__ import annotations

import asyncio
from typing import Annotated

import httpx
import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from server.ops.config_check import CheckRow, check_configuration
from server.ops.service_check import check_services

_STYLES = {"ok": "green", "off": "dim", "skipped": "yellow", "warning": "yellow", "FAILED": "bold red"}
# Wide enough for a log or a pipe; a terminal uses its own width.
_PIPE_WIDTH = 200


def check(
    offline: Annotated[bool, typer.Option(help="Do not contact OpenAI, Twilio or Calendly.")] = False,
) -> None:
    """Check settings, business YAML and backends, listing every problem at once; exit 1 if any check failed."""
    config = check_configuration()

    async def run() -> list[CheckRow]:
        if offline:
            return await check_services(config, None, offline=True)
        async with httpx.AsyncClient(timeout=5.0) as http:
            return await check_services(config, http, offline=False)

    rows = asyncio.run(run())
    console = Console(highlight=False)
    if not console.is_terminal:
        console.width = _PIPE_WIDTH
    console.print(render(rows))
    failed = sum(row.failed for row in rows)
    warnings = sum(row.status == "warning" for row in rows)
    if failed:
        console.print(f"{failed} problem(s) to fix, {warnings} warning(s).", style="bold red")
        raise typer.Exit(code=1)
    console.print(f"check passed, {warnings} warning(s).", style="green")


def render(rows: list[CheckRow]) -> Table:
    """The rows as a borderless table: area, status, item, detail (only the detail wraps)."""
    table = Table(box=None, pad_edge=False, header_style="bold")
    table.add_column("area", no_wrap=True)
    table.add_column("status", no_wrap=True)
    table.add_column("item", no_wrap=True)
    table.add_column("detail", overflow="fold")
    for row in rows:
        # Items and details quote URLs, YAML paths, service names and template variables: never rich markup.
        table.add_row(row.area, f"[{_STYLES[row.status]}]{row.status}[/]", escape(row.item), escape(row.detail))
    return table
