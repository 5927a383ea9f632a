"""The reliability suite (issue 10): real `asistente serve --no-worker` and `asistente worker` processes against
local doubles of Twilio, Calendly and the model and a PostgreSQL cluster of the suite's own, under crashes and
outages. Each scenario writes its figures to tests/reliability/results/ (or $RELIABILITY_RESULTS_DIR), and
`python -m tests.reliability.report` renders them as a Markdown table. `make reliability` runs the scenarios and
prints the table; the long variants (`reliability_long`, deselected by default) run with `make reliability-long`
or `pytest -m reliability_long tests/reliability`."""
