"""The `asistente` command line: one Typer app, one module per command group."""

from __future__ import annotations

import typer

from cli import calendly, chat, check, db, recorded, serve

app = typer.Typer(help="Asistente: WhatsApp booking assistant.", no_args_is_help=True, add_completion=False)
app.add_typer(db.db_app, name="db")
app.command()(check.check)
app.command()(serve.serve)
app.command("worker")(serve.run_worker)
app.command()(recorded.demo)
app.command("eval")(recorded.evaluate)
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
