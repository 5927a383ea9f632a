"""All evaluators of one run, in report order. Decisive checks (the end state, the run itself, the customer's yes,
grounded claims, nothing forbidden sent) decide pass/fail, as in tau-bench; the rest are diagnostics beside them."""

from __future__ import annotations

from evals.cassette import STALE
from evals.record import ScenarioRun
from evals.reply_checks import facts_conveyed, nothing_invented, reply_language
from evals.results import Check
from evals.safety_checks import completed, confirmed_first, grounded_claims
from evals.session import TIMED_OUT
from evals.state_checks import (
    absent_appointments,
    final_appointments,
    handoff,
    nothing_forbidden_sent,
    remembered_clients,
    system_messages,
)
from evals.trajectory import tool_trajectory


def score(run: ScenarioRun) -> list[Check]:
    """Every applicable check of `run` (trajectory strict when its answers were replayed, superset otherwise)."""
    checks: list[Check | None] = [
        completed(run),
        final_appointments(run),
        absent_appointments(run),
        handoff(run),
        nothing_forbidden_sent(run),
        remembered_clients(run),
        system_messages(run),
        confirmed_first(run),
        grounded_claims(run),
        reply_language(run),
        facts_conveyed(run),
        nothing_invented(run),
        tool_trajectory(run, strict=run.mode in ("replay", "author")),
    ]
    return [check for check in checks if check is not None]


# Which failure explains a case best: a stale cassette or a timeout first, then a write
# without a yes (it explains the end state), then the end state, and the run's own breakage last (often a symptom).
_HEADLINE = (
    "confirmed_first",
    "final_state",
    "absent",
    "handoff",
    "clients",
    "not_sent",
    "system_messages",
    "grounded",
)


def _rank(check: Check) -> int:
    if check.name == "completed" and (check.reason.startswith(STALE) or TIMED_OUT in check.reason):
        return -1  # nothing after a stale cassette or a timeout means anything
    return _HEADLINE.index(check.name) if check.name in _HEADLINE else len(_HEADLINE)


def verdict(checks: list[Check]) -> tuple[bool, str]:
    """Passed when every decisive check passed; the reason is the most telling decisive failure (or a summary)."""
    failed = sorted((c for c in checks if c.decisive and not c.passed), key=_rank)
    if failed:
        return False, f"{failed[0].name}: {failed[0].reason}"
    diagnostics = [c for c in checks if not c.decisive and not c.passed]
    note = (
        f" ({len(diagnostics)} diagnostic(s) failed: {', '.join(c.name for c in diagnostics)})" if diagnostics else ""
    )
    return True, "end state as expected" + note
