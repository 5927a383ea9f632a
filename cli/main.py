"""The `asistente` command line: one Typer app, one module per command group."""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version
from typing import Annotated

import typer

from cli import calendly, chat, check, db, evals, recorded, serve

app = typer.Typer(help="Asistente: WhatsApp booking assistant.", no_args_is_help=True, add_completion=False)


def installed_version() -> str:
    """The version pip installed (the distribution's metadata, i.e. pyproject.toml when it was installed)."""
    try:
        return version("asistente")
    except PackageNotFoundError:
        # Imported from a checkout that was never installed (`python -m cli.main`): there is no version to report.
        return "unknown (not installed)"


def _print_version(value: bool) -> None:
    if value:
        typer.echo(f"asistente {installed_version()}")
        raise typer.Exit


@app.callback()
def _options(
    _version: Annotated[
        bool,
        typer.Option("--version", callback=_print_version, is_eager=True, help="Print the installed version and exit."),
    ] = False,
) -> None:
    """Asistente: WhatsApp booking assistant."""


app.add_typer(db.db_app, name="db")
app.command()(check.check)
app.command()(serve.serve)
app.command("worker")(serve.run_worker)
app.command()(recorded.demo)
app.add_typer(evals.eval_app, name="eval")  # `eval [NAMES]...` still runs the suite; also `eval capture`
app.command()(chat.chat)

calendly_app = typer.Typer(help="Calendly integration.", no_args_is_help=True)
calendly_app.command("subscribe")(calendly.calendly_subscribe)
app.add_typer(calendly_app, name="calendly")

admin_app = typer.Typer(help="Admin API.", no_args_is_help=True)
admin_app.command("token")(serve.admin_token)
app.add_typer(admin_app, name="admin")


def main() -> None:
    """Console-script entry point."""
    app(prog_name="asistente")


if __name__ == "__main__":
    main()
