#!/usr/bin/env bash
# `make push [STACK=genopipe]`: tags the images `make images` built and pushes them to the ECR
# repositories of the deployed stack STACK (template.yaml: <stack>/<step>, tag = the package
# version = ImageTag). The stack creates the repositories: deploy it first.
# Needs AWS credentials for the target account; not run in CI. Repositories are IMMUTABLE:
# bump the package version (and ImageTag) to push changed images.
# Usage: AWS_REGION=eu-west-1 containers/push-images.sh [STACK]   (default: genopipe)
set -euo pipefail
cd "$(dirname "$0")/.."
STACK="${1:-genopipe}"
PYTHON="${PYTHON:-.venv/bin/python}"
VERSION=$("$PYTHON" -c 'import importlib.metadata as m; print(m.version("genopipe"))')
REGION="${AWS_REGION:-${AWS_DEFAULT_REGION:?set AWS_REGION}}"
ACCOUNT=$(aws sts get-caller-identity --query Account --output text)
REGISTRY="$ACCOUNT.dkr.ecr.$REGION.amazonaws.com"
STEPS=$("$PYTHON" -m genopipe.cli steps)  # the table of steps (genopipe/pipeline.py)
for step in $STEPS; do
  if ! aws ecr describe-repositories --region "$REGION" --repository-names "$STACK/$step" >/dev/null 2>&1; then
    echo "push-images: no ECR repository $STACK/$step in $REGION: deploy the stack $STACK first (sam deploy), then make push" >&2
    exit 1
  fi
done
aws ecr get-login-password --region "$REGION" | docker login --username AWS --password-stdin "$REGISTRY"
for step in $STEPS; do
  docker tag "genopipe/$step:$VERSION" "$REGISTRY/$STACK/$step:$VERSION"
  docker push "$REGISTRY/$STACK/$step:$VERSION"
done
