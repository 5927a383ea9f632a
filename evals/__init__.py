"""Evaluations over recorded conversations: YAML datasets, OpenAI HTTP cassettes, typed evaluators, a runner.

`asistente eval` runs every conversation in `evals/conversations/` through the real graph, tools and database with
the model replayed from `evals/cassettes/`; `asistente demo` replays `demo_booking_es`. See `evals/replay.py` for how
to re-record a cassette against the real API.
"""

# Set to 1 (with a real OPENAI_API_KEY) to re-record cassettes instead of replaying them; see evals/replay.py.
RECORD_ENV = "ASISTENTE_RECORD"
