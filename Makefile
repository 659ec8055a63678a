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

# The live system (make live): traces per second, JupyterLab port
LIVE_RATE ?= 50
LIVE_PORT ?= 8890
LIVE_CURRENT := reports/live-current

.PHONY: setup jars test test-fast lint demo lab live live-stop bench clean

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

# simulate --rate and consume in the background (pids and logs in reports/live-<time>/), then
# JupyterLab on notebooks/05_live.ipynb; `make live-stop` stops all three (not the broker).
live: setup jars
	@set -e; test ! -e $(LIVE_CURRENT)/lab.pid || { echo "a live run is up ($$(readlink $(LIVE_CURRENT))): make live-stop first"; exit 1; }; \
	run=$$(date -u +%Y%m%d-%H%M%S); dir=reports/live-$$run; mkdir -p $$dir; \
	boot=$${TRACELAB_BOOTSTRAP:-$$($(BIN)/python -c 'from tracelab.kafka.broker import ensure_broker; print(ensure_broker())')}; \
	topic=raw-logs-live-$$run; group=tracelab-live-$$run; db=$$(pwd)/$$dir/live.db; \
	nohup $(BIN)/python -m tracelab simulate --rate $(LIVE_RATE) --bootstrap $$boot --topic $$topic \
		--truth $$dir/truth.jsonl --no-progress --missing-detail 0.02 --malformed 0.002 \
		> $$dir/simulate.log 2>&1 & echo $$! > $$dir/simulate.pid; \
	sleep 2; \
	nohup $(BIN)/python -m tracelab consume --bootstrap $$boot --topic $$topic --group $$group \
		--db $$db --no-progress > $$dir/consume.log 2>&1 & echo $$! > $$dir/consume.pid; \
	token=$$($(BIN)/python -c 'import secrets; print(secrets.token_hex(16))'); \
	mkdir -p "$$dir/lab-settings/@jupyterlab/notebook-extension"; \
	echo '{"windowingMode": "none"}' > "$$dir/lab-settings/@jupyterlab/notebook-extension/tracker.jupyterlab-settings"; \
	TRACELAB_LIVE_DB=$$db TRACELAB_BOOTSTRAP=$$boot TRACELAB_LIVE_TOPIC=$$topic TRACELAB_LIVE_GROUP=$$group \
		nohup $(BIN)/jupyter lab --no-browser --ip 127.0.0.1 --port $(LIVE_PORT) --allow-root \
		--IdentityProvider.token=$$token --ServerApp.root_dir=notebooks \
		--LabApp.user_settings_dir=$$dir/lab-settings > $$dir/lab.log 2>&1 & echo $$! > $$dir/lab.pid; \
	ln -sfn live-$$run $(LIVE_CURRENT); \
	echo "live run in $$dir: $(LIVE_RATE) traces/s to $$boot topic $$topic, consume -> $$db"; \
	echo "http://127.0.0.1:$(LIVE_PORT)/lab/tree/05_live.ipynb?token=$$token" > $$dir/url; \
	echo "open $$(cat $$dir/url)"; \
	echo "stop with: make live-stop"

live-stop:
	@test -e $(LIVE_CURRENT) || { echo "no live run (reports/live-current)"; exit 0; }; \
	for name in lab consume simulate; do \
		f=$(LIVE_CURRENT)/$$name.pid; test -f $$f || continue; pid=$$(cat $$f); \
		if kill -TERM $$pid 2>/dev/null; then \
			for i in $$(seq 60); do kill -0 $$pid 2>/dev/null || break; sleep 0.5; done; \
			kill -0 $$pid 2>/dev/null && kill -KILL $$pid; echo "stopped $$name ($$pid)"; fi; \
		rm -f $$f; \
	done; echo "logs and truth kept in $$(readlink -f $(LIVE_CURRENT))"; rm -f $(LIVE_CURRENT)

bench: setup jars
	$(BIN)/python bench/normalize.py
	$(BIN)/python bench/simulate.py
	$(BIN)/python bench/kafka_e2e.py
	$(BIN)/python bench/analysis.py

clean:
	-$(BIN)/python -m tracelab broker stop
	rm -rf reports data/processed .pytest_cache .ruff_cache
