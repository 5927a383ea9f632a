"""The business description (services, opening hours, policies) loaded from a YAML file and validated."""

from __future__ import annotations

import unicodedata
from datetime import date, time, timedelta
from decimal import Decimal
from functools import cached_property
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

if TYPE_CHECKING:
    from core.settings import Settings

Weekday = Literal["monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday"]
WEEKDAYS: tuple[Weekday, ...] = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")


class BusinessConfigError(ValueError):
    """A business YAML that cannot be used; the message names the file and the offending field."""


def normalize_name(text: str) -> str:
    """Lower-case, accent-free, single-spaced form of a name, for lenient matching ("Córte  Y" == "corte y")."""
    decomposed = unicodedata.normalize("NFKD", text)
    stripped = "".join(ch for ch in decomposed if not unicodedata.combining(ch))
    return " ".join(stripped.casefold().split())


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Service(_Strict):
    """A bookable service."""

    name: str = Field(min_length=1)
    duration_minutes: int = Field(gt=0, le=8 * 60)
    price_eur: Decimal = Field(ge=0)
    aliases: tuple[str, ...] = ()
    calendly_event_type: str | None = None
    description: str = ""

    @property
    def names(self) -> tuple[str, ...]:
        """The normalized name and aliases the service answers to."""
        return tuple(normalize_name(n) for n in (self.name, *self.aliases))


class TimeRange(_Strict):
    """An interval within one day, e.g. 09:30-14:00."""

    start: time
    end: time

    @model_validator(mode="after")
    def _ordered(self) -> TimeRange:
        if self.end <= self.start:
            raise ValueError(f"end {self.end} must be after start {self.start}")
        return self


class DayHours(_Strict):
    """Opening hours for one weekday; an empty list of ranges means closed. Breaks are the gaps between ranges."""

    ranges: tuple[TimeRange, ...] = ()

    @model_validator(mode="after")
    def _not_overlapping(self) -> DayHours:
        ordered = sorted(self.ranges, key=lambda r: r.start)
        for before, after in zip(ordered, ordered[1:], strict=False):
            if after.start < before.end:
                raise ValueError(f"ranges {before.start}-{before.end} and {after.start}-{after.end} overlap")
        return self


class CancellationPolicy(_Strict):
    """How late a customer may still cancel or move an appointment without staff."""

    min_hours_before: float = Field(default=2, ge=0)
    text: str = ""


class Business(_Strict):
    """Everything the assistant knows about the business it works for."""

    name: str = Field(min_length=1)
    address: str = ""
    phone: str = ""
    phone_country_code: str | None = Field(
        default=None,
        pattern=r"^[1-9][0-9]{0,2}$",
        description="country calling code without '+' (e.g. '34'): how customers' national numbers are read",
    )
    timezone: str = "Europe/Madrid"
    language: str = "es"
    currency: str = "EUR"
    capacity: int = Field(default=1, ge=1, le=50, description="appointments that can run at the same time")
    slot_minutes: int = Field(default=15, ge=5, le=120, description="granularity of start times")
    booking_horizon_days: int = Field(
        default=60,
        ge=1,
        le=365,
        description="how many days ahead customers may book: up to and including the day this many days from today",
    )
    services: tuple[Service, ...] = Field(min_length=1)
    opening_hours: dict[Weekday, DayHours]
    closed_dates: tuple[date, ...] = ()
    cancellation_policy: CancellationPolicy = CancellationPolicy()

    @field_validator("timezone")
    @classmethod
    def _known_timezone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(f"unknown timezone {value!r}") from exc
        return value

    @field_validator("phone_country_code", mode="before")
    @classmethod
    def _code_as_text(cls, value: object) -> object:
        # YAML reads an unquoted `34` as a number; it is the same code. A leading "+" is tolerated too.
        if isinstance(value, int) and not isinstance(value, bool):
            return str(value)
        return value.removeprefix("+") if isinstance(value, str) else value

    @field_validator("opening_hours", mode="before")
    @classmethod
    def _ranges_shorthand(cls, value: object) -> object:
        # YAML writes a day as a list of "09:00-14:00" strings (or `closed`); expand that to DayHours.
        if not isinstance(value, dict):
            return value
        expanded: dict[str, object] = {}
        for day, spec in value.items():
            if spec in (None, "closed", "cerrado", []):
                expanded[day] = {"ranges": []}
            elif isinstance(spec, list):
                expanded[day] = {"ranges": [_parse_range(item) for item in spec]}
            else:
                expanded[day] = spec
        return expanded

    @model_validator(mode="after")
    def _unique_service_names(self) -> Business:
        seen: dict[str, str] = {}
        for service in self.services:
            for name in service.names:
                if name in seen and seen[name] != service.name:
                    raise ValueError(f"name {name!r} is used by both {seen[name]!r} and {service.name!r}")
                seen[name] = service.name
        return self

    @cached_property
    def tz(self) -> ZoneInfo:
        """The business timezone; every datetime shown to customers is in it."""
        return ZoneInfo(self.timezone)

    def hours_on(self, day: date) -> tuple[TimeRange, ...]:
        """Opening ranges on a calendar date (empty when closed)."""
        if day in self.closed_dates:
            return ()
        hours = self.opening_hours.get(WEEKDAYS[day.weekday()])
        return tuple(sorted(hours.ranges, key=lambda r: r.start)) if hours else ()

    def last_bookable_day(self, today: date) -> date:
        """The last day appointments may be booked on, seen from `today` (business timezone); whole days, so the
        limit can be told to a customer as a date."""
        return today + timedelta(days=self.booking_horizon_days)

    def find_service(self, name: str) -> Service | None:
        """The service a customer's wording refers to: exact name or alias, ignoring case and accents."""
        wanted = normalize_name(name)
        for service in self.services:
            if wanted in service.names:
                return service
        # A unique prefix or containment ("corte" -> "Corte y Peinado") is still unambiguous enough.
        partial = [s for s in self.services if any(wanted in n or n in wanted for n in s.names)]
        return partial[0] if len(partial) == 1 else None


def _parse_range(item: object) -> object:
    if isinstance(item, str) and "-" in item:
        start, end = (part.strip() for part in item.split("-", 1))
        return {"start": start, "end": end}
    return item


def _format_error(path: str, exc: ValidationError) -> str:
    lines = [f"{path}: invalid business configuration"]
    for error in exc.errors():
        location = ".".join(str(part) for part in error["loc"]) or "(root)"
        lines.append(f"  {location}: {error['msg']}")
    return "\n".join(lines)


def parse_business(text: str, source: str = "<string>") -> Business:
    """Parse and validate business YAML text; raise `BusinessConfigError` naming the field on any problem."""
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise BusinessConfigError(f"{source}: not valid YAML: {exc}") from exc
    if not isinstance(data, dict):
        raise BusinessConfigError(f"{source}: expected a mapping at the top level")
    try:
        return Business.model_validate(data)
    except ValidationError as exc:
        raise BusinessConfigError(_format_error(source, exc)) from exc


def example_business_text() -> str:
    """The shipped example configuration (a hair salon in Madrid)."""
    # In a checkout the file sits at the repository root; in a wheel it is packaged inside `core`.
    in_checkout = Path(__file__).resolve().parent.parent / "business.example.yaml"
    if in_checkout.exists():
        return in_checkout.read_text(encoding="utf-8")
    return resources.files("core").joinpath("business.example.yaml").read_text(encoding="utf-8")


# The default BUSINESS_CONFIG (core.settings). Unset, it is optional: a fresh clone has no business.yaml and runs the
# shipped example, which is what the quick start (`make demo`) relies on.
DEFAULT_BUSINESS_CONFIG = Path("business.yaml")
EXAMPLE_SOURCE = "business.example.yaml"


def example_business() -> Business:
    """The shipped example salon (Madrid): the embedded default, and the business tests and recordings are about."""
    return parse_business(example_business_text(), EXAMPLE_SOURCE)


def _read(path: Path, what: str) -> str:
    # `what` says how the operator named the file (the key, or the path itself), so the one-line error points at the
    # setting to fix rather than only at a path the operator may not recognise.
    try:
        return path.read_text(encoding="utf-8")
    except FileNotFoundError:
        where = f" (looked in {path.resolve()})" if not path.is_absolute() else ""
        raise BusinessConfigError(
            f"{what}: no such file{where}; fix the path (a business YAML starts as a copy of {EXAMPLE_SOURCE})"
        ) from None
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise BusinessConfigError(f"{what}: cannot read the business configuration: {reason}") from None


def load_business(path: Path) -> Business:
    """The business described by the YAML file at `path`.

    A missing file is a `BusinessConfigError` naming it, never the sample salon in its place (its services, prices
    and address would be offered to real customers). The one exception is the default `business.yaml`, which is
    optional: missing, the example runs. Callers holding `Settings` use `configured_business`, which also refuses
    a `business.yaml` that BUSINESS_CONFIG names explicitly. Tests wanting the example call `example_business`.
    """
    if path == DEFAULT_BUSINESS_CONFIG and not path.exists():
        return example_business()
    return parse_business(_read(path, str(path)), str(path))


def configured_business(settings: Settings) -> Business:
    """The business BUSINESS_CONFIG names; the example only when BUSINESS_CONFIG is unset and `business.yaml` is absent.

    Whether the key was set comes from pydantic's `model_fields_set` (environment or `.env`), not from comparing
    the value with the default: `BUSINESS_CONFIG=business.yaml` is a promise that the file exists.
    """
    path = settings.business_config
    if "business_config" not in settings.model_fields_set:
        return load_business(path)
    return parse_business(_read(path, f"BUSINESS_CONFIG={path}"), str(path))
