"""One scenario's world: the doubles, the database, the processes and the customers, and the environment the
`asistente` processes get (every address points at a double on this machine; short timings where a scenario is not
about them)."""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass

from core.settings import Settings
from server.options import ENV_PREFIX, ServerOptions
from tests.reliability.calendly_double import CalendlyDouble
from tests.reliability.customers import Customers
from tests.reliability.figures import Figures, measure
from tests.reliability.model_double import ModelDouble
from tests.reliability.postgres import PgCluster
from tests.reliability.processes import ROOT, Stack
from tests.reliability.twilio_double import TwilioDouble

BUSINESS_NUMBER = "+14155238886"
# Short timings where the scenario is not about them; the lease (15 s) and the holding message (after 60 s) keep
# their production values, since scenarios measure them.
FAST_OPTIONS = {
    "fold_quiet_seconds": "0.3",
    "poll_seconds": "0.2",
    "reminder_interval_seconds": "1",
    "delivery_backoff_seconds": "0.5",
    "calendar_retry_after_seconds": "5",
    "holding_check_seconds": "2",
    "shutdown_grace_seconds": "2",
}


@dataclass
class World:
    """Everything one scenario drives and observes."""

    cluster: PgCluster
    database_url: str
    twilio: TwilioDouble
    calendly: CalendlyDouble
    model: ModelDouble
    stack: Stack
    customers: Customers
    env: dict[str, str]
    jwt_secret: str

    def measure(self, name: str, fault: str, started: float, *, calendly: bool = False) -> Figures:
        """This scenario's figures (`figures.measure`), bookings included with `calendly`."""
        return measure(
            name,
            fault,
            customers=self.customers,
            twilio=self.twilio,
            database_url=self.database_url,
            calendly=self.calendly if calendly else None,
            started=started,
        )


def environment(
    database_url: str, twilio: TwilioDouble, calendly: CalendlyDouble, model: ModelDouble, port: int, jwt: str
) -> dict[str, str]:
    # Nothing of the developer's configuration leaks in: no settings keys, no option overrides.
    env = {
        k: v for k, v in os.environ.items() if k.lower() not in Settings.model_fields and not k.startswith(ENV_PREFIX)
    }
    env |= {
        "PYTHONPATH": str(ROOT),
        "PYTHONUNBUFFERED": "1",
        "DATABASE_URL": database_url,
        "BUSINESS_CONFIG": str(ROOT / "business.example.yaml"),
        "OPENAI_API_KEY": model.api_key,
        "OPENAI_BASE_URL": model.base_url,
        # A name no provider prefers the Responses API for: the double speaks chat completions.
        "OPENAI_MODEL": "reliability-double",
        "OPENAI_TIMEOUT_SECONDS": "20",
        "OPENAI_MAX_RETRIES": "0",
        "TWILIO_ACCOUNT_SID": twilio.account_sid,
        "TWILIO_AUTH_TOKEN": twilio.auth_token,
        "TWILIO_WHATSAPP_NUMBER": BUSINESS_NUMBER,
        "TWILIO_API_BASE_URL": twilio.server.base_url,
        "CALENDLY_ACCESS_TOKEN": calendly.token,
        "CALENDLY_API_BASE_URL": calendly.server.base_url,
        "CALENDLY_USER_URI": calendly.user,
        "PUBLIC_BASE_URL": f"http://127.0.0.1:{port}",
        "JWT_SECRET": jwt,
        "LANGSMITH_TRACING": "false",
        "LOG_LEVEL": "INFO",
    }
    known = {f.name for f in dataclasses.fields(ServerOptions)}
    env |= {ENV_PREFIX + name.upper(): value for name, value in FAST_OPTIONS.items() if name in known}
    return env
