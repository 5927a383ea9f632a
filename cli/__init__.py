"""The `asistente` command line: `main` assembles the Typer app; one module per command group."""
