"""`asistente eval capture`: a conversation stored like production stores it becomes a masked dataset file that
`evals.dataset` loads, with the calendar before it as seed and the calendar it left as the expected state."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from typer.testing import CliRunner

import evals.dataset
from cli.main import app
from core.business import example_business
from core.masking import Masker
from core.settings import get_settings
from evals.capture import CaptureError, Window, capture
from evals.capture_file import fake_address
from evals.dataset import Conversation, ExpectedAppointment, SeedAppointment, Turn, load_conversation
from store import Database, open_database
from store.appointments import AppointmentRepository
from store.clients import ClientRepository
from store.inbound import InboundRepository
from store.migrate import migrate
from store.outbox_insert import insert_outbox
from store.system_events import SystemEventRepository
from store.turn_runs import TurnRun, TurnRunRepository

WA_ID = "whatsapp:+34611222333"
T0 = datetime(2026, 11, 24, 18, 0, tzinfo=UTC)  # 19:00 in Madrid: the first message of the conversation
TZ = example_business().tz
RUN_ID = "3f2b8c1e-5d4a-4e6b-9c7d-0a1b2c3d4e5f"
# What must never reach the file, in every spelling the conversation uses.
PERSONAL = ("611222333", "611 222 333", "lucia.fernandez", "example.com", "lucía", "lucia", "fernández", "fernandez")


async def store_conversation(db: Database) -> dict[str, str]:
    """A customer's evening as production stores it; returns the appointment ids by role."""
    clients, appointments = ClientRepository(db), AppointmentRepository(db)
    inbound, events = InboundRepository(db), SystemEventRepository(db)
    client = await clients.ensure(WA_ID, now=T0 - timedelta(days=30), profile_name="Lucía")
    await clients.update_profile(
        WA_ID, now=T0 - timedelta(days=30), name="Lucía Fernández", email="lucia.fernandez@example.com", language="es"
    )

    async def book(service: str, local_start: str, created: datetime, source: str = "agent") -> str:
        start = datetime.fromisoformat(local_start).replace(tzinfo=TZ)
        row = await appointments.create(
            client_id=client.id,
            service=service,
            start_at=start,
            end_at=start + timedelta(minutes=45),
            source=source,  # type: ignore[arg-type]
            calendar="local",
            now=created,
        )
        return row.id

    ids = {
        "past": await book("Corte y Peinado", "2026-11-20T10:00", T0 - timedelta(days=10)),
        "mechas": await book("Mechas", "2026-11-26T10:00", T0 - timedelta(days=5), source="calendly"),
        "friday": await book("Tinte", "2026-11-27T16:30", T0 - timedelta(days=2)),
    }
    await appointments.cancel(ids["past"], now=T0 - timedelta(days=8), reason="Lucía está enferma, llamar al 611222333")
    # An id from before the dataset's pattern: the file gets a stand-in, in the seed and in the event's text alike.
    await db.execute("UPDATE appointments SET id = 'legacy-7' WHERE id = :id", {"id": ids["mechas"]})
    ids["mechas"] = "legacy-7"

    async def message(
        sid: str, body: str, at: datetime, *, status: str = "processed", button_payload: str | None = None
    ) -> int:
        stored = await inbound.receive(
            message_sid=sid,
            wa_id=WA_ID,
            body=body,
            received_at=at,
            profile_name="Lucía",
            button_payload=button_payload,
            status=status,
        )
        assert stored is not None
        return stored.id

    await message("SM-old", "¿Abrís el sábado?", T0 - timedelta(days=3))  # outside the default 24 hours
    first = await message(
        "SM1",
        "Hola, soy Lucía Fernández. Mi móvil es 611 222 333 y mi correo lucia.fernandez@example.com",
        T0,
    )
    async with db.transaction() as conn:
        await insert_outbox(
            conn, wa_id=WA_ID, parts=["¡Hola, Lucía! ¿En qué te ayudo?"], kind="reply", now=T0 + timedelta(seconds=10)
        )
    await message("SM-flood", "??", T0 + timedelta(seconds=30), status="rate_limited")  # the agent never read it
    await events.enqueue(
        wa_id=WA_ID,
        source="calendly",
        description="Calendly: Lucía Fernández (lucia.fernandez@example.com) ha cancelado la cita legacy-7 (Mechas).",
        dedupe_key="calendly:1",
        now=T0 + timedelta(seconds=90),
    )
    await appointments.cancel("legacy-7", now=T0 + timedelta(seconds=90), reason="Cancelada en Calendly")
    await message(
        "SM2", "Quiero anular la cita del viernes y coger corte el jueves a las 10", T0 + timedelta(minutes=2)
    )
    await message("SM3", "Confirmar", T0 + timedelta(minutes=3), button_payload="confirm:call_0123abcd")
    await TurnRunRepository(db).record(
        TurnRun(
            run_id=RUN_ID,
            trace_id=RUN_ID,
            wa_id=WA_ID,
            kind="customer",
            turn_ref=first + 3,
            outcome="ok",
            created_at=T0 + timedelta(minutes=3, seconds=5),
        )
    )
    await appointments.cancel(ids["friday"], now=T0 + timedelta(minutes=3, seconds=20))
    ids["thursday"] = await book("Corte y Peinado", "2026-11-26T10:00", T0 + timedelta(minutes=3, seconds=30))
    await message("SM4", "Gracias. Por si acaso: 34611222333", T0 + timedelta(hours=2))
    ids["later"] = await book("Tinte", "2026-12-04T11:00", T0 + timedelta(hours=2, minutes=1))
    return ids


def assert_masked(text: str) -> None:
    folded = text.casefold()
    assert [p for p in PERSONAL if p in folded] == []
    assert WA_ID not in text and "34611222333" not in text


async def test_capture_writes_a_masked_scenario_that_the_dataset_loads(db: Database, tmp_path: Path) -> None:
    ids = await store_conversation(db)
    captured = await capture(db, "+34611222333", tz=TZ)
    assert_masked(captured.text)
    path = tmp_path / f"{captured.name}.yaml"
    path.write_text(captured.text, encoding="utf-8")
    loaded = load_conversation(path)  # what `asistente eval` reads, validated strictly
    assert loaded == captured.conversation
    assert loaded.customer.wa_id == fake_address(WA_ID) != WA_ID and loaded.customer.profile_name == "Cliente"
    assert loaded.now == T0 and loaded.now.utcoffset() == timedelta(hours=1)  # the first message, in Madrid time
    stand_in = loaded.seed[1].id
    assert stand_in.startswith("apt_") and stand_in != "legacy-7"
    assert loaded.seed == [
        SeedAppointment(
            id=ids["past"],
            service="Corte y Peinado",
            start=datetime(2026, 11, 20, 10, 0),
            status="cancelled",
            cancel_reason="[name] está enferma, llamar al +***333",
        ),
        # Cancelled during the conversation, so confirmed before it.
        SeedAppointment(id=stand_in, service="Mechas", start=datetime(2026, 11, 26, 10, 0), source="calendly"),
        SeedAppointment(id=ids["friday"], service="Tinte", start=datetime(2026, 11, 27, 16, 30)),
    ]
    assert loaded.turns == [
        Turn(customer="Hola, soy [name]. Mi móvil es +***333 y mi correo ***@***"),
        Turn(system=f"Calendly: [name] (***@***) ha cancelado la cita {stand_in} (Mechas)."),
        Turn(customer="Quiero anular la cita del viernes y coger corte el jueves a las 10"),
        Turn(customer="Confirmar", button="confirm:call_0123abcd"),
        Turn(customer="Gracias. Por si acaso: +***333"),
    ]
    # Booked during the conversation (new ids at replay): no id; the seeded ones are named.
    assert loaded.expect.confirmed == [
        ExpectedAppointment(service="Corte y Peinado", start=datetime(2026, 11, 26, 10, 0)),
        ExpectedAppointment(service="Tinte", start=datetime(2026, 12, 4, 11, 0)),
    ]
    assert sorted(loaded.expect.cancelled or []) == sorted([ids["past"], stand_in, ids["friday"]])
    assert loaded.expect.language == "es" and loaded.expect.tool_calls is None
    # The notes a developer needs, as comments: what is only what happened, what the database cannot tell.
    assert captured.text.startswith("# Captured from the database")
    assert "expected state = what happened; correct it to what SHOULD have happened" in captured.text
    assert "#   sent (reply): ¡Hola, [name]! ¿En qué te ayudo?" in captured.text
    assert "TODO: this button confirms a production question" in captured.text
    assert "# TODO: tool_calls" in captured.text


async def test_a_run_id_captures_up_to_that_turn_and_the_state_it_left(db: Database) -> None:
    ids = await store_conversation(db)
    loaded = (await capture(db, RUN_ID.upper(), tz=TZ)).conversation
    assert [t.text for t in loaded.turns][-1] == "Confirmar" and len(loaded.turns) == 4
    # The booking made after the customer's next message is not this conversation's doing.
    assert loaded.expect.confirmed == [
        ExpectedAppointment(service="Corte y Peinado", start=datetime(2026, 11, 26, 10, 0))
    ]
    assert ids["past"] in (loaded.expect.cancelled or [])


async def test_last_turns_start_the_clock_and_the_seed_later(db: Database) -> None:
    ids = await store_conversation(db)
    loaded = (await capture(db, "34611222333", tz=TZ, window=Window(last=1))).conversation
    assert loaded.turns == [Turn(customer="Gracias. Por si acaso: +***333")]
    assert loaded.now == T0 + timedelta(hours=2)
    seeded = {s.id: s.status for s in loaded.seed}
    assert seeded[ids["friday"]] == "cancelled" and seeded[ids["thursday"]] == "confirmed"
    assert ids["later"] not in seeded


async def test_the_window_bounds_what_is_captured(db: Database) -> None:
    await store_conversation(db)
    window = Window(since=T0 - timedelta(days=4), until=T0 + timedelta(seconds=100))
    loaded = (await capture(db, WA_ID, tz=TZ, window=window)).conversation
    assert [t.text for t in loaded.turns][0] == "¿Abrís el sábado?" and len(loaded.turns) == 3
    with pytest.raises(CaptureError, match="no messages from that customer in the window"):
        await capture(db, WA_ID, tz=TZ, window=Window(until=T0 - timedelta(days=5)))


async def test_personal_data_that_escapes_masking_stops_the_capture(
    db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The file check is real: with masking switched off, the customer's number is in the text, and nothing is made.
    await store_conversation(db)
    monkeypatch.setattr(Masker, "mask_text", lambda self, text: text)
    with pytest.raises(CaptureError, match="survived masking"):
        await capture(db, WA_ID, tz=TZ)


@pytest.mark.parametrize(
    ("target", "message"),
    [
        ("+34699999999", "no customer with that WhatsApp number in the database"),
        ("0b5c6e2a-1111-4222-8333-944455556666", "no turn with run id 0b5c6e2a-1111-4222-8333-944455556666"),
        ("Lucía", "TARGET must be a customer's WhatsApp number"),
    ],
)
async def test_an_unknown_target_fails_clearly(db: Database, target: str, message: str) -> None:
    await store_conversation(db)
    with pytest.raises(CaptureError, match=message):
        await capture(db, target, tz=TZ)


# --- the command --------------------------------------------------------------------------------------------------


async def _prepare(url: str) -> None:
    database = open_database(url)
    try:
        await migrate(database)
        await store_conversation(database)
    finally:
        await database.close()


@pytest.fixture
def cli(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, database_url: str) -> Iterator[CliRunner]:
    """The CLI in an empty directory, DATABASE_URL holding the stored conversation (each engine)."""
    asyncio.run(_prepare(database_url))
    monkeypatch.chdir(tmp_path)
    for key in ("OPENAI_BASE_URL", "BUSINESS_CONFIG", "ASISTENTE_RECORD"):
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("DATABASE_URL", database_url)
    get_settings.cache_clear()
    yield CliRunner()
    get_settings.cache_clear()


def test_cli_capture_writes_the_file_once_and_says_to_review_it(cli: CliRunner, tmp_path: Path) -> None:
    out = tmp_path / "bad_friday.yaml"
    result = cli.invoke(app, ["eval", "capture", "whatsapp:+34611222333", "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert result.output.strip().splitlines() == [
        f"captured 5 turn(s) to {out}; its expected state is what happened: review and correct it"
    ]
    loaded: Conversation = load_conversation(out)
    assert loaded.name == "bad_friday" and loaded.customer.wa_id == fake_address(WA_ID)
    assert_masked(out.read_text(encoding="utf-8"))
    out.write_text("corrected by hand\n", encoding="utf-8")
    again = cli.invoke(app, ["eval", "capture", "+34611222333", "--out", str(out)])
    assert again.exit_code == 1 and "exists; pass --force to overwrite it" in again.output
    assert out.read_text(encoding="utf-8") == "corrected by hand\n"
    forced = cli.invoke(app, ["eval", "capture", "+34611222333", "--out", str(out), "--force", "--last", "2"])
    assert forced.exit_code == 0 and len(load_conversation(out).turns) == 2


def test_cli_capture_defaults_to_a_hashed_name_among_the_conversations(
    cli: CliRunner, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(evals.dataset, "CONVERSATIONS_DIR", tmp_path / "conversations")
    result = cli.invoke(app, ["eval", "capture", RUN_ID, "--since", "2026-11-24"])
    assert result.exit_code == 0, result.output
    [path] = (tmp_path / "conversations").glob("captured_*.yaml")
    assert str(path) in result.output and "611" not in path.name
    assert f"asistente eval {path.stem} --record" in path.read_text(encoding="utf-8")
    assert len(load_conversation(path).turns) == 4


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["+34699999999"], "no customer with that WhatsApp number in the database"),
        ([str(uuid.UUID(int=7))], "no turn with run id"),
        (["+34611222333", "--until", "2026-11-01"], "no messages from that customer in the window"),
        (["+34611222333", "--since", "yesterday"], "--since yesterday: not a date or time"),
    ],
)
def test_cli_capture_failures_are_one_line(cli: CliRunner, args: list[str], message: str) -> None:
    result = cli.invoke(app, ["eval", "capture", *args])
    assert result.exit_code == 1 and message in result.output, result.output
    assert len(result.output.strip().splitlines()) == 1 and "Traceback" not in result.output
    assert "699999999" not in result.output  # the number is not echoed back


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("sqlite:///{tmp}/nope.db", "does not exist: nothing to capture"),
        ("sqlite:///{tmp}/empty.db", "capture could not read SQLite file"),
        ("postgresql://postgres@127.0.0.1:1/asistente", "cannot connect to DATABASE_URL (PostgreSQL at 127.0.0.1:1"),
    ],
)
def test_cli_capture_without_a_readable_database_fails_in_one_line(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, url: str, message: str
) -> None:
    (tmp_path / "empty.db").touch()  # a file, but no schema
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("DATABASE_URL", url.format(tmp=tmp_path))
    get_settings.cache_clear()
    try:
        result = CliRunner().invoke(app, ["eval", "capture", "+34611222333"])
    finally:
        get_settings.cache_clear()
    assert result.exit_code == 1 and message in result.output, result.output
    assert len(result.output.strip().splitlines()) == 1 and not (tmp_path / "nope.db").exists()


@pytest.mark.parametrize("args", [["no_such"], ["run", "no_such"], ["--threshold", "0.5", "no_such"]])
def test_eval_still_takes_names_and_options_without_run(args: list[str]) -> None:
    # Routed to the suite (which refuses the unknown name before running anything), not taken for a subcommand.
    result = CliRunner().invoke(app, ["eval", *args])
    assert result.exit_code == 1 and "unknown conversation(s): no_such" in result.output, result.output


def test_eval_help_lists_run_and_capture() -> None:
    result = CliRunner().invoke(app, ["eval", "--help"])
    assert result.exit_code == 0 and "capture" in result.output and "run" in result.output
