# `make run` and `make test` bootstrap .venv from requirements.txt on a fresh machine.
# `make run` starts the daemon and the control room together; `make daemon` only the daemon.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.requirements.stamp
CONFIG ?= configs/config.yaml

.PHONY: venv run daemon test lint format bench clean-logs

$(STAMP): requirements.txt
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements.txt
	@touch $(STAMP)

venv: $(STAMP)

run: $(STAMP)
	scripts/run_desk.sh --config $(CONFIG)

daemon: $(STAMP)
	$(PY) main.py --config $(CONFIG)

# The browser test drives Debian's chromium: install it (a no-op when present) rather than assume it.
test: $(STAMP)
	$(PY) -m ruff format --check .
	$(PY) -m ruff check .
	scripts/ensure_chromium.sh
	$(PY) -m pytest

lint: $(STAMP)
	$(PY) -m ruff format --check .
	$(PY) -m ruff check .

format: $(STAMP)
	$(PY) -m ruff format .
	$(PY) -m ruff check --fix .

bench: $(STAMP)
	$(PY) bench/runtime_speed.py

clean-logs:
	rm -rf logs/journal logs/desk.db logs/desk.db-wal logs/desk.db-shm
