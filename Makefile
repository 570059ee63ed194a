# The README's two commands: `make demo` and `make test`. Both install what they need.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test lint unit tools venv clean

tools:
	@scripts/install-tools.sh

$(STAMP): pyproject.toml | tools
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip==26.3
	$(BIN)/pip install -q -e '.[local,dev]'
	touch $(STAMP)

venv: tools $(STAMP)

demo: venv
	$(BIN)/genopipe demo

lint: venv
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

test: venv lint
	$(BIN)/pytest

clean:
	rm -rf $(VENV) .aws-sam node_modules
