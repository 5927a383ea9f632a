"""Dockerfile, .dockerignore and compose.yaml, checked by parsing (no Docker engine needed).

Commands in the image and in compose are parsed by the real `asistente` CLI, so a renamed option fails here, not
at a salon's first `docker compose up`.
"""

from __future__ import annotations

import json
import re
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import typer
import yaml

from cli.main import app as cli_app

ROOT = Path(__file__).resolve().parent.parent
# The only password in compose.yaml: the `db` service's local development default, documented there as such.
LOCAL_DEV_PASSWORD = "asistente-local-dev"
# The postgres image's own settings (not Asistente's, hence not in .env.example).
POSTGRES_IMAGE_ENV = {"POSTGRES_USER", "POSTGRES_DB", "POSTGRES_PASSWORD"}
SECRET_NAME = re.compile(r"PASSWORD|SECRET|TOKEN|API_KEY|AUTH|SIGNING_KEY|PRIVATE", re.IGNORECASE)
# Shapes of real credentials: OpenAI keys, Twilio account SIDs, LangSmith keys, JWTs.
SECRET_VALUE = re.compile(r"sk-[A-Za-z0-9_-]{16,}|AC[0-9a-f]{32}|lsv2_[A-Za-z0-9_]{16,}|eyJ[A-Za-z0-9_-]{20,}\.")


@dataclass(frozen=True)
class Instruction:
    """One Dockerfile instruction, continuation lines joined."""

    keyword: str
    arguments: str
    line: int


def parse_dockerfile(text: str) -> list[Instruction]:
    """Instructions in order. Comments (and parser directives, which look like them) are dropped, also between
    continuation lines, as Docker does; a line ending in a backslash continues on the next."""
    instructions: list[Instruction] = []
    pending: list[str] = []
    start = 0
    for number, raw in enumerate(text.splitlines(), start=1):
        stripped = raw.strip()
        if not stripped or stripped.startswith("#"):
            continue
        if not pending:
            start = number
        if raw.rstrip().endswith("\\"):
            pending.append(raw.rstrip()[:-1])
            continue
        keyword, _, arguments = "".join([*pending, raw]).strip().partition(" ")
        instructions.append(Instruction(keyword.upper(), arguments.strip(), start))
        pending = []
    assert not pending, "the Dockerfile ends inside a continuation"
    return instructions


def final_stage(instructions: list[Instruction]) -> list[Instruction]:
    """The instructions of the last stage (the image that runs), from its FROM on."""
    froms = [i for i, instruction in enumerate(instructions) if instruction.keyword == "FROM"]
    return instructions[froms[-1] :]


def exec_form(arguments: str) -> list[str]:
    """A JSON-array command (the form that runs without a shell, so that signals reach the process)."""
    command = json.loads(arguments)
    assert isinstance(command, list) and all(isinstance(part, str) for part in command)
    return command


def cli_params(argv: list[str]) -> tuple[str, dict[str, Any]]:
    """The `asistente` subcommand and its parameters, as the real CLI parses `argv` (without running it)."""
    assert argv[0] == "asistente"
    group: Any = typer.main.get_command(cli_app)  # Typer's own Click: duck-typed, not isinstance-checked
    parent = group.context_class(group, info_name="asistente")
    command = group.get_command(parent, argv[1])
    assert command is not None, f"no such command: {argv[1]}"
    with command.make_context(argv[1], argv[2:], parent=parent) as context:
        return argv[1], dict(context.params)


def dockerignore_regex(pattern: str) -> re.Pattern[str]:
    """Docker's matching: Go's filepath.Match (`*` and `?` stay within a path segment) plus `**` across them."""
    out, i = "", 0
    while i < len(pattern):
        if pattern.startswith("**/", i):
            out, i = out + "(?:.*/)?", i + 3
        elif pattern.startswith("**", i):
            out, i = out + ".*", i + 2
        elif pattern[i] == "*":
            out, i = out + "[^/]*", i + 1
        elif pattern[i] == "?":
            out, i = out + "[^/]", i + 1
        else:
            assert pattern[i] != "[", "character classes are not handled by this checker"
            out, i = out + re.escape(pattern[i]), i + 1
    return re.compile(out)


def ignored(path: str, patterns: list[str]) -> bool:
    """Whether .dockerignore keeps `path` out of the build context: the last matching pattern decides, and a
    pattern matching a directory covers everything under it."""
    parents = ["/".join(path.split("/")[:n]) for n in range(1, path.count("/") + 2)]
    verdict = False
    for pattern in patterns:
        negated = pattern.startswith("!")
        regex = dockerignore_regex(pattern.removeprefix("!").strip().strip("/"))
        if any(regex.fullmatch(parent) for parent in parents):
            verdict = not negated
    return verdict


@pytest.fixture(scope="module")
def image() -> list[Instruction]:
    return final_stage(parse_dockerfile((ROOT / "Dockerfile").read_text()))


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    document = yaml.safe_load((ROOT / "compose.yaml").read_text())
    assert isinstance(document, dict)
    return document


def documented_keys() -> set[str]:
    """Every key .env.example documents, set or commented out."""
    pattern = re.compile(r"^#?\s*([A-Z][A-Z0-9_]*)=", re.MULTILINE)
    return set(pattern.findall((ROOT / ".env.example").read_text()))


def test_the_parser_joins_continuations_and_drops_comments() -> None:
    text = '# syntax=docker/dockerfile:1\nFROM a AS b\n\nRUN one \\\n# inside\n    two\nCMD ["x"]\n'
    assert parse_dockerfile(text) == [
        Instruction("FROM", "a AS b", 2),
        Instruction("RUN", "one     two", 4),
        Instruction("CMD", '["x"]', 7),
    ]


def test_every_stage_is_slim_python_311() -> None:
    froms = [i.arguments for i in parse_dockerfile((ROOT / "Dockerfile").read_text()) if i.keyword == "FROM"]
    assert froms and all(f.split()[0].startswith("python:3.11-slim") for f in froms)


def test_the_image_runs_as_a_non_root_user_set_before_cmd(image: list[Instruction]) -> None:
    keywords = [i.keyword for i in image]
    users = [i for i in image if i.keyword == "USER"]
    assert users and keywords.count("CMD") == 1
    assert users[-1].line < image[keywords.index("CMD")].line
    assert all(u.arguments.split(":")[0] not in {"root", "0"} for u in users)


def test_the_healthcheck_asks_health_with_urllib(image: list[Instruction]) -> None:
    (check,) = [i for i in image if i.keyword == "HEALTHCHECK"]
    match = re.fullmatch(r"((?:--\S+\s+)*)CMD\s+(.+)", check.arguments, re.DOTALL)
    assert match is not None
    assert "--timeout=" in match[1]
    command = exec_form(match[2])
    assert command[:2] == ["python", "-c"]
    compile(command[2], "HEALTHCHECK", "exec")
    assert "urllib.request" in command[2] and "http://127.0.0.1:8000/health" in command[2]


def test_the_image_exposes_8000_and_serves_on_all_interfaces(image: list[Instruction]) -> None:
    assert "8000" in [port for i in image if i.keyword == "EXPOSE" for port in i.arguments.split()]
    (cmd,) = [i for i in image if i.keyword == "CMD"]
    name, params = cli_params(exec_form(cmd.arguments))
    assert name == "serve"
    assert params["host"] == "0.0.0.0" and params["port"] == 8000
    assert params["migrate_first"] is True  # the schema is applied at start


def test_the_project_is_installed_without_the_dev_extra_nor_secrets() -> None:
    instructions = parse_dockerfile((ROOT / "Dockerfile").read_text())
    runs = " ".join(i.arguments for i in instructions if i.keyword == "RUN")
    assert "pip install --no-deps ." in runs
    assert "[dev]" not in runs and " -e " not in runs
    settings = [i.arguments for i in instructions if i.keyword in {"ENV", "ARG"}]
    assert not [s for s in settings if SECRET_NAME.search(s)]


def test_dockerignore_keeps_secrets_and_clutter_out_but_what_the_build_needs_in() -> None:
    patterns = [
        line.strip() for line in (ROOT / ".dockerignore").read_text().splitlines() if line.strip()[:1] not in ("", "#")
    ]
    for path in (".env", ".env.production", "business.yaml", "data/asistente.db", ".venv/bin/python", ".git/HEAD"):
        assert ignored(path, patterns), path
    for path in ("tests/cassettes/a.yaml", "core/__pycache__/x.pyc", ".mypy_cache/x", ".pytest_cache/v"):
        assert ignored(path, patterns), path
    hatch = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["hatch"]["build"]["targets"]["wheel"]
    needed = ["pyproject.toml", "README.md", *hatch["force-include"]]
    for package in hatch["packages"]:
        needed += [
            str(f.relative_to(ROOT))
            for f in (ROOT / package).rglob("*")
            if f.is_file() and "__pycache__" not in f.parts
        ]
    assert "evals/cassettes/demo_booking_es.yaml" in needed  # `asistente demo` replays it inside the image
    assert [path for path in needed if ignored(path, patterns)] == []


def test_compose_runs_the_app_a_scalable_worker_and_postgres(compose: dict[str, Any]) -> None:
    services = compose["services"]
    assert set(services) == {"app", "worker", "db"}
    assert services["app"]["build"] == "." and (ROOT / "Dockerfile").exists()

    name, app = cli_params(services["app"]["command"])
    assert name == "serve" and app["host"] == "0.0.0.0" and app["worker"] is False and app["migrate_first"] is True
    assert [str(p).rsplit(":", 1)[-1] for p in services["app"]["ports"]] == ["8000"]
    assert "http://127.0.0.1:8000/health" in " ".join(services["app"]["healthcheck"]["test"])

    name, worker = cli_params(services["worker"]["command"])
    assert name == "worker" and worker["agent"] is True
    assert worker["metrics_host"] == "0.0.0.0" and worker["metrics_port"] is not None
    # `--scale worker=3`: no fixed name, no host port that replicas would fight over.
    assert "ports" not in services["worker"] and "container_name" not in services["worker"]
    assert f"http://127.0.0.1:{worker['metrics_port']}/metrics" in " ".join(services["worker"]["healthcheck"]["test"])

    db = services["db"]
    assert db["image"] == "postgres:17" and "ports" not in db
    assert "pg_isready" in " ".join(db["healthcheck"]["test"])
    (volume,) = db["volumes"]
    source, target = volume.split(":")[:2]
    assert target == "/var/lib/postgresql/data" and source in compose["volumes"]


def test_app_and_worker_wait_for_a_healthy_database(compose: dict[str, Any]) -> None:
    services = compose["services"]
    assert services["app"]["depends_on"] == {"db": {"condition": "service_healthy"}}
    assert services["worker"]["depends_on"]["db"] == {"condition": "service_healthy"}
    # The app applies the schema at start; workers begin once it has.
    assert services["worker"]["depends_on"]["app"] == {"condition": "service_healthy"}


def test_compose_configuration_comes_from_env_documented_in_env_example(compose: dict[str, Any]) -> None:
    documented = documented_keys()
    assert {"DATABASE_URL", "OPENAI_API_KEY", "JWT_SECRET"} <= documented  # the reader works
    text = (ROOT / "compose.yaml").read_text()
    interpolated = set(re.findall(r"(?<!\$)\$\{?([A-Za-z_][A-Za-z0-9_]*)", text))
    assert interpolated <= documented
    for name in ("app", "worker"):
        service = compose["services"][name]
        assert service["env_file"] in (".env", [".env"])
        assert set(service["environment"]) <= documented, name
        url = urlsplit(service["environment"]["DATABASE_URL"])
        assert url.scheme == "postgresql" and url.hostname == "db"
    assert set(compose["services"]["db"]["environment"]) <= POSTGRES_IMAGE_ENV


def test_no_secret_is_hard_coded_but_the_documented_local_database_password(compose: dict[str, Any]) -> None:
    text = (ROOT / "compose.yaml").read_text()
    assert SECRET_VALUE.search(text) is None
    for service in compose["services"].values():
        for key, value in (service.get("environment") or {}).items():
            if SECRET_NAME.search(key):
                assert (key, value) == ("POSTGRES_PASSWORD", LOCAL_DEV_PASSWORD)
            password = urlsplit(str(value)).password if "://" in str(value) else None
            assert password in (None, LOCAL_DEV_PASSWORD), key
    assert "Local development default" in text
    # Asistente's own secrets only ever come from .env.
    secret_keys = {key for key in documented_keys() if SECRET_NAME.search(key)}
    assert not [k for s in compose["services"].values() for k in s.get("environment") or {} if k in secret_keys]
