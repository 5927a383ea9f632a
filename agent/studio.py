"""Entry point for LangGraph Studio / `langgraph dev` (see langgraph.json): the graph on the configured model,
the configured database and the local calendar; WhatsApp messages are only logged.

The platform supplies the checkpointer. The run context is a `TurnContext` given as JSON, e.g.
`{"wa_id": "whatsapp:+34600123456", "language": "es"}`; run `asistente db migrate` first.
"""

from __future__ import annotations

from agent.graph import Graph, build_graph
from agent.model import build_chat_model
from booking.local_calendar import LocalCalendar
from core.business import configured_business
from core.clock import SystemClock
from core.settings import Settings, get_settings
from store import Database, open_database
from store.appointments import AppointmentRepository
from store.clients import ClientRepository
from tools.context import ToolServices
from tools.whatsapp import RecordingSender


def studio_services(settings: Settings, db: Database) -> ToolServices:
    """The services a Studio session runs on: `db`, the configured business, the local calendar."""
    business = configured_business(settings)
    clock = SystemClock()
    appointments = AppointmentRepository(db)
    calendar = LocalCalendar(business, appointments, clock)
    return ToolServices(business, clock, calendar, ClientRepository(db), appointments, RecordingSender())


def make_graph() -> Graph:
    """Build the conversation graph around the model and services from settings."""
    settings = get_settings()
    # Opened for the life of the Studio process (it connects on first use).
    db = open_database(settings.database_url)
    return build_graph(build_chat_model(settings), studio_services(settings, db))
