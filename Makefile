# The targets CI and the README run. VENV can point at an existing virtualenv (CI: a fresh one per run).
VENV ?= .venv
PY := $(VENV)/bin/python
BIN := $(VENV)/bin
# Touched after a successful install: pip runs again only when pyproject.toml (dependencies, entry points) is newer,
# or the stamp is missing (a fresh VENV). Code changes need no reinstall: the project is installed editable.
INSTALLED := $(VENV)/.installed

.PHONY: install lint typecheck test reliability reliability-long demo bench check clean

$(PY):
	python3 -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip

# The interpreter only has to exist (order-only): its timestamp is the system Python's, through the venv's symlink,
# and says nothing about what is installed.
$(INSTALLED): pyproject.toml | $(PY)
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $@

install: $(INSTALLED)

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: install
	$(BIN)/mypy

# Lint and type checks are part of the test command, as CI runs it.
test: install lint typecheck
	$(BIN)/pytest -q

# The reliability scenarios alone (also part of `test`), then their figures as a Markdown table; the long variants
# (minutes of outage each) only with reliability-long. The table is printed even when a scenario failed.
reliability: install
	$(BIN)/pytest -q tests/reliability; status=$$?; $(PY) -m tests.reliability.report; exit $$status

reliability-long: install
	$(BIN)/pytest -q -m reliability_long tests/reliability; status=$$?; $(PY) -m tests.reliability.report; exit $$status

demo: install
	$(BIN)/asistente demo

# Asistente beside a bare LangGraph loop, in one run; rewrites the tables of BENCHMARKS.md. Exits 0 when a target is
# missed (benchmarks report, they do not fail on noise): only a crash fails. BENCH_ARGS=--quick: a smoke run.
bench: install
	$(BIN)/python -m bench $(BENCH_ARGS)

check: install
	$(BIN)/asistente check

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache
