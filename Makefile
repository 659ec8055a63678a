# tracelab — the two commands a newcomer needs:
#   make demo   run the notebook pipeline end to end (local Kafka broker started if needed)
#   make test   run every test (unit, property, Kafka integration, notebooks)
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

# Parameters of the demo (override: make demo TRACES=100000 SEED=3)
TRACES ?= 2000
SEED ?= 42
PARAMS ?=

.PHONY: setup jars test test-fast lint demo lab bench clean

setup: $(STAMP)

$(STAMP): pyproject.toml constraints.txt
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -c constraints.txt -e '.[dev]'
	@touch $(STAMP)

jars: setup
	$(BIN)/python -m tracelab broker install

test: setup jars lint
	$(BIN)/python -m pytest tests
	$(BIN)/python -m pytest --nbval notebooks/03_traces.ipynb notebooks/04_failures.ipynb \
		notebooks/06_compare.ipynb \
		--nbval-sanitize-with tests/nbval_sanitize.cfg -p no:randomly

test-fast: setup
	$(BIN)/python -m pytest tests -m "not kafka and not slow"

lint: setup
	$(BIN)/ruff check tracelab tests bench
	$(BIN)/ruff format --check tracelab tests bench

demo: setup jars
	$(BIN)/python -m tracelab demo -p traces $(TRACES) -p seed $(SEED) $(PARAMS)

lab: setup
	$(BIN)/jupyter lab notebooks/

bench: setup jars
	$(BIN)/python bench/normalize.py
	$(BIN)/python bench/simulate.py
	$(BIN)/python bench/kafka_e2e.py
	$(BIN)/python bench/analysis.py

clean:
	-$(BIN)/python -m tracelab broker stop
	rm -rf reports data/processed .pytest_cache .ruff_cache
