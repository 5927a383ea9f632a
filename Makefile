# The targets CI and the README run. VENV can point at an existing virtualenv.
VENV ?= .venv
PY := $(VENV)/bin/python
BIN := $(VENV)/bin

.PHONY: install lint typecheck test demo bench check clean

$(PY):
	python3 -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip

install: $(PY)
	$(PY) -m pip install --quiet -e '.[dev]'

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: install
	$(BIN)/mypy

# Lint and type checks are part of the test command, as CI runs it.
test: install lint typecheck
	$(BIN)/pytest -q

demo: install
	$(BIN)/asistente demo

bench: install
	$(BIN)/python -m bench

check: install
	$(BIN)/asistente check

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache
