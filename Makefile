# `make run` and `make test` bootstrap .venv from requirements.txt on a fresh machine.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.requirements.stamp
CONFIG ?= configs/config.yaml

.PHONY: run daemon test lint format bench clean-logs

$(STAMP): requirements.txt
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements.txt
	@touch $(STAMP)

venv: $(STAMP)

run: $(STAMP)
	$(PY) main.py --config $(CONFIG)

daemon: $(STAMP)
	$(PY) main.py --config $(CONFIG)

test: $(STAMP)
	$(PY) -m ruff format --check .
	$(PY) -m ruff check .
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
