# The README's two commands: `make demo` and `make test`. Both install what they need.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test lint unit tools venv clean bench build-GenopipeLayer

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

# not part of `make test`: minutes of real work on ../shared/data; writes bench/results/step_chain.json
bench: venv
	$(BIN)/python bench/step_chain.py

clean:
	rm -rf $(VENV) .aws-sam node_modules

# `sam build` builds the Lambda layer through this target (template.yaml: BuildMethod makefile):
# the pinned runtime dependencies of pyproject.toml as Lambda (manylinux, CPython 3.12) wheels,
# then the genopipe package itself
build-GenopipeLayer:
	$(PYTHON) -c 'import tomllib; print("\n".join(tomllib.load(open("pyproject.toml", "rb"))["project"]["dependencies"]))' > "$(ARTIFACTS_DIR)/requirements.txt"
	$(PYTHON) -m pip install -q --no-compile --target "$(ARTIFACTS_DIR)/python" --platform manylinux2014_x86_64 \
		--python-version 3.12 --implementation cp --only-binary=:all: -r "$(ARTIFACTS_DIR)/requirements.txt"
	$(PYTHON) -m pip install -q --no-compile --no-deps --target "$(ARTIFACTS_DIR)/python" .
	rm -f "$(ARTIFACTS_DIR)/requirements.txt"
