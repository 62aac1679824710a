# hookshift: every target installs what it needs first (Debian packages and a local venv).
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: all system-deps venv demo check test lint typecheck pytest bench clean

all: test

system-deps:
	@bash .ci/system-deps

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

venv: $(STAMP)

## make demo: the whole migration rehearsed on this machine (real nginx, stage emulator, SQS on moto)
demo: system-deps venv
	$(BIN)/hookshift rehearse

## make check: lint, types and the fast tests (no test here starts a process), on every core
check: venv lint typecheck
	$(BIN)/pytest -q -m "not e2e" -n auto

## make test: lint, types and every test (real nginx, real TLS/DNS/SQS on loopback, the wheel)
test: system-deps venv lint typecheck pytest

lint: venv
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: venv
	$(BIN)/mypy

pytest: venv
	$(BIN)/pytest -q

## make bench: the benchmarks in bench/, figures written to bench/RESULTS.md
bench: system-deps venv
	$(BIN)/python -m bench

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache .mypy_cache .ruff_cache
