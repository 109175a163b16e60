# Two commands for a newcomer:  `make run` (install + default workflow), `make test`.
PYTHON ?= python3
VENV ?= .venv
CORES ?= 2
BIN := $(VENV)/bin

.PHONY: run test install install-test lint format clean

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

lint: install-test
	$(BIN)/snakemake --lint
	$(BIN)/snakefmt --check Snakefile workflow/rules
	$(BIN)/ruff check src tests benchmarks

format: install-test
	$(BIN)/snakefmt Snakefile workflow/rules
	$(BIN)/ruff format src tests benchmarks

clean:
	rm -rf results logs .snakemake
