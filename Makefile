# The README's two commands: `make demo` and `make test`. Both install what they need.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test lint unit tools venv clean asl bench bench-smoke build-GenopipeLayer sam-validate cfn-lint asl-validate deploy-rehearsal
.PHONY: images image-tag push check-pins sam-local-image checkov docker-daemon

# template and state machine linters: SAM CLI + cfn-lint in their own venv (they pin boto3 etc.),
# asl-validator from package-lock.json
SAM_PYTHON ?= $(PYTHON)
SAM_VENV := .venv-sam
SAM_STAMP := $(SAM_VENV)/.installed
NODE_STAMP := node_modules/.installed
ASL := statemachine/pipeline.asl.json

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

test: venv lint sam-validate cfn-lint asl-validate checkov
	$(BIN)/pytest

# the state machine from genopipe/pipeline.py (the table of steps and the plan); commit the result.
# `make test` fails while the committed file differs (tests/unit/test_asl_builder.py)
asl: venv
	$(BIN)/python statemachine/build.py

# not part of `make test` (tests/integration/test_bench_smoke.py runs the same code on tiny inputs):
# minutes of real work on ../shared/data; writes bench/results/*.json, BENCHMARKS.md, docs/img/bench-*.png
bench: venv
	$(BIN)/python bench/step_chain.py
	$(BIN)/python bench/local_run.py
	$(BIN)/python bench/accuracy.py
	$(BIN)/python bench/orchestration.py
	$(BIN)/python bench/scale.py
	$(BIN)/python bench/fleet.py
	$(BIN)/python bench/report.py

bench-smoke: venv
	$(BIN)/pytest -q tests/integration/test_bench_smoke.py tests/unit/test_bench_orchestration.py

clean:
	rm -rf $(VENV) $(SAM_VENV) $(CHECKOV_VENV) .aws-sam node_modules build

# `sam build` builds the Lambda layer through this target (template.yaml: BuildMethod makefile):
# the pinned runtime dependencies of pyproject.toml as Lambda (manylinux, CPython 3.12) wheels,
# then the genopipe package itself. No Python 3.12 is needed: pip fetches 3.12 wheels for any
# Python >= 3.11, that of .venv-sam (which has pip) when it exists. The functions need none either:
# they have no requirements.txt (their dependencies are the layer), so SAM only copies them.
LAYER_PYTHON ?= $(if $(wildcard $(SAM_VENV)/bin/python),$(SAM_VENV)/bin/python,$(PYTHON))
build-GenopipeLayer:
	$(LAYER_PYTHON) -c 'import tomllib; print("\n".join(tomllib.load(open("pyproject.toml", "rb"))["project"]["dependencies"]))' > "$(ARTIFACTS_DIR)/requirements.txt"
	$(LAYER_PYTHON) -m pip install -q --no-compile --target "$(ARTIFACTS_DIR)/python" --platform manylinux2014_x86_64 \
		--python-version 3.12 --implementation cp --only-binary=:all: -r "$(ARTIFACTS_DIR)/requirements.txt"
	$(LAYER_PYTHON) -m pip install -q --no-compile --no-deps --target "$(ARTIFACTS_DIR)/python" .
	rm -f "$(ARTIFACTS_DIR)/requirements.txt"

$(SAM_STAMP):
	$(SAM_PYTHON) -m venv $(SAM_VENV)
	$(SAM_VENV)/bin/pip install -q aws-sam-cli==1.170.0 cfn-lint==1.58.0
	touch $@

$(NODE_STAMP): package.json package-lock.json
	npm ci --no-audit --no-fund --loglevel=error
	touch $@

sam-validate: $(SAM_STAMP)
	AWS_DEFAULT_REGION=us-east-1 SAM_CLI_TELEMETRY=0 $(SAM_VENV)/bin/sam validate --lint --template template.yaml

# cfn-lint does not look inside AWS::Serverless::StateMachine: lint the ASL wrapped in a plain one too
cfn-lint: $(SAM_STAMP)
	AWS_DEFAULT_REGION=us-east-1 $(SAM_VENV)/bin/cfn-lint template.yaml
	wrapped=$$(mktemp --suffix=.json) && $(PYTHON) scripts/asl_stack.py $(ASL) > $$wrapped \
		&& AWS_DEFAULT_REGION=us-east-1 $(SAM_VENV)/bin/cfn-lint $$wrapped; status=$$?; rm -f $$wrapped; exit $$status

# the README's deploy section with the real SAM CLI against a moto server (about a minute; not in
# `make test`: sam build fetches the layer's wheels): bench/results/deploy_rehearsal.json says what
# moto's CloudFormation cannot take (README, "Deploy rehearsal")
deploy-rehearsal: venv $(SAM_STAMP)
	$(BIN)/python scripts/deploy_rehearsal.py

asl-validate: $(NODE_STAMP)
	node_modules/.bin/asl-validator --json-path $(ASL)

# ---------------------------------------------------------------- images (containers/README.md)
CHECKOV_VENV := .venv-checkov
CHECKOV_STAMP := $(CHECKOV_VENV)/.installed

# a Docker daemon if this machine allows one (root: installs docker.io, starts dockerd); never fails
docker-daemon:
	@scripts/start-dockerd.sh

# base + one image per step, tagged genopipe/<step>:<package version>; no image registry needed
# (debian:bookworm-slim is debootstrapped when missing); pushes nothing
images: venv docker-daemon
	containers/build-images.sh

# the content tag of the built images (containers/image-tag.sh): sam deploy's ImageTag
image-tag:
	@containers/image-tag.sh

# push to the ECR repositories of the deployed stack STACK under the content tag (AWS_REGION,
# credentials; a tag already there is skipped); says whether the stack runs them; not run in CI
STACK ?= genopipe
push: images
	containers/push-images.sh $(STACK)

# the Debian versions pinned in containers/*/Dockerfile are the ones apt offers
check-pins:
	containers/check-pins.sh

# stand-in Lambda Python base image for `sam local invoke --invoke-image ... --skip-pull-image`
sam-local-image: venv docker-daemon
	containers/build-sam-local-image.sh

$(CHECKOV_STAMP):
	$(PYTHON) -m venv $(CHECKOV_VENV)
	$(CHECKOV_VENV)/bin/pip install -q checkov==3.3.30
	touch $@

# Dockerfiles and the template; every skip is in .checkov.yaml with its reason
checkov: $(CHECKOV_STAMP)
	$(CHECKOV_VENV)/bin/checkov --config-file .checkov.yaml -d containers --framework dockerfile
	$(CHECKOV_VENV)/bin/checkov --config-file .checkov.yaml -f template.yaml --framework cloudformation
