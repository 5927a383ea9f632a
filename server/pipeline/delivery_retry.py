"""When a message whose send failed transiently is tried again, and when trying stops."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from server.options import ServerOptions

# A Retry-After beyond this is taken as this: a wrong or hostile header must not park messages for days.
MAX_RETRY_AFTER = timedelta(hours=1)


@dataclass(frozen=True)
class RetryPlan:
    """The next attempt, and the floor Twilio's Retry-After set under it (None: no Retry-After)."""

    at: datetime
    not_before: datetime | None


@dataclass(frozen=True)
class RetryPolicy:
    """Exponential backoff from `first_delay`, each wait at most `max_delay`, for as long as the message is younger
    than `give_up_after`: an outage of hours loses nothing, and a dead message ends in a day."""

    first_delay: timedelta = timedelta(seconds=2)
    max_delay: timedelta = timedelta(minutes=5)
    give_up_after: timedelta = timedelta(hours=24)

    def next_attempt(
        self, *, failed_attempts: int, created_at: datetime, now: datetime, retry_after: float | None = None
    ) -> RetryPlan | None:
        """When to try again after the `failed_attempts`-th failure; None once the message is too old to go on.

        The wait is never shorter than the provider's Retry-After (`retry_after` seconds).
        """
        if self.expired(created_at, now):
            return None
        # The exponent is bounded so that many hours of attempts never overflow before the cap applies.
        exponent = min(max(failed_attempts - 1, 0), 40)
        delay = min(self.first_delay.total_seconds() * 2.0**exponent, self.max_delay.total_seconds())
        at = now + timedelta(seconds=delay)
        if retry_after is None:
            return RetryPlan(at=at, not_before=None)
        not_before = now + min(timedelta(seconds=max(retry_after, 0.0)), MAX_RETRY_AFTER)
        return RetryPlan(at=max(at, not_before), not_before=not_before)

    @classmethod
    def from_options(cls, options: ServerOptions) -> RetryPolicy:
        """The schedule `ServerOptions` configures."""
        return cls(
            first_delay=timedelta(seconds=options.delivery_first_retry_seconds),
            max_delay=timedelta(seconds=options.delivery_max_retry_interval_seconds),
            give_up_after=timedelta(seconds=options.delivery_give_up_after_seconds),
        )

    def expired(self, created_at: datetime, now: datetime) -> bool:
        """Whether a message created at `created_at` is past trying."""
        return now - created_at >= self.give_up_after
