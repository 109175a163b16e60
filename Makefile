# Two commands for a newcomer:  `make run` (install + default workflow), `make test`.
PYTHON ?= python3
VENV ?= .venv
CORES ?= 2
BIN := $(VENV)/bin

.PHONY: run test test-fast install install-test lint format clean

LINT_PY := src tests benchmarks workflow/scripts

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install -e ".[workflow]"
	touch $@

$(VENV)/.installed-test: pyproject.toml $(VENV)/.installed
	$(BIN)/python -m pip install -e ".[workflow,test,slurm]"
	touch $@

install: $(VENV)/.installed

install-test: $(VENV)/.installed-test

## Install everything and run the default workflow (config/config.yaml).
run: install
	$(BIN)/snakemake --cores $(CORES)

## Install the test dependencies and run the test suite.
test: install-test
	$(BIN)/python -m pytest

## The inner loop: every test that runs neither the workflow nor SLURM nor a browser.
test-fast: install-test
	$(BIN)/python -m pytest -m "not workflow and not slurm and not browser"

## What CI checks besides the tests: ruff (lint and format), snakefmt, snakemake --lint.
lint: install-test
	$(BIN)/ruff check $(LINT_PY)
	$(BIN)/ruff format --check $(LINT_PY)
	$(BIN)/snakefmt --check Snakefile workflow/rules
	$(BIN)/snakemake --lint

format: install-test
	$(BIN)/snakefmt Snakefile workflow/rules
	$(BIN)/ruff format $(LINT_PY)
	$(BIN)/ruff check --fix $(LINT_PY)

clean:
	rm -rf results logs .snakemake
