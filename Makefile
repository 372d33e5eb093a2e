# songrec: `make run` trains, evaluates and registers on the shipped data; `make test` tests.
SHELL := /bin/bash
.DEFAULT_GOAL := help
VENV ?= .venv
BIN := $(CURDIR)/$(VENV)/bin
export PATH := $(BIN):$(PATH)
# This machine sets PYTHONDONTWRITEBYTECODE, which makes every stage recompile what it imports.
unexport PYTHONDONTWRITEBYTECODE
export MLFLOW_DISABLE_TELEMETRY ?= true
PYTEST_ARGS ?=
UI_ARGS ?=
SERVE_ARGS ?=
# Two workers, one test file each at a time: most tests wait on a server or one busy core.
TEST_WORKERS ?= 2

.PHONY: help setup run repro metrics ui test lint format serve airflow bench clean

help:  ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-8s %s\n", $$1, $$2}'

$(BIN)/songrec: pyproject.toml requirements.lock
	test -x $(BIN)/python || python3 -m venv $(VENV)
	$(BIN)/python -m pip install -q --disable-pip-version-check uv
	$(BIN)/uv pip install -q --python $(BIN)/python -r requirements.lock
	$(BIN)/uv pip install -q --python $(BIN)/python --no-deps -e .
	touch $@

setup: $(BIN)/songrec  ## create .venv from the lock file (once)

run: setup  ## the main job: the whole pipeline on the shipped data, then its key metrics
	dvc repro
	songrec summary

repro: setup  ## dvc repro (only what changed reruns)
	dvc repro

metrics: setup  ## the pipeline's metrics (dvc metrics show)
	dvc metrics show

ui: setup  ## the MLflow UI on the configured store (http://127.0.0.1:5000; UI_ARGS="--port N")
	songrec ui $(UI_ARGS)

test: setup  ## the test suite (real MLflow, DVC, S3 and database services; see docs/development.md)
	pytest -n $(TEST_WORKERS) --dist loadfile $(PYTEST_ARGS)

lint: setup  ## ruff, formatting and mypy
	ruff check .
	ruff format --check .
	mypy

format: setup  ## format the code
	ruff format .
	ruff check --fix .

serve: setup  ## the API and web page on the champion (http://127.0.0.1:8000; SERVE_ARGS="--port N")
	songrec serve $(SERVE_ARGS)

airflow: setup  ## Airflow standalone on songrec's DAGs (http://127.0.0.1:8080; Ctrl-C stops)
	songrec airflow

bench: setup  ## the benchmarks (pipeline, serving, slow clients, faults, monitoring, quality, batch, stream): they measure, print and write bench/RESULTS.md
	python bench/pipeline.py
	python bench/serving.py
	python bench/slow_clients.py
	python bench/faults.py
	python bench/monitoring.py
	python bench/quality.py
	python bench/batch.py
	python bench/stream.py

clean:  ## remove pipeline outputs and the local MLflow store (not the venv)
	rm -rf data/raw data/validated data/processed models plots reports mlruns var
