#!/usr/bin/env bash
# `make push`: tags the images `make images` built and pushes them to the stack's ECR
# repositories (template.yaml: genopipe/<step>, tag = the package version = ImageTag).
# Needs AWS credentials for the target account; not run in CI. Repositories are IMMUTABLE:
# bump the package version (and ImageTag) to push changed images.
# Usage: AWS_REGION=eu-west-1 containers/push-images.sh
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON="${PYTHON:-.venv/bin/python}"
VERSION=$("$PYTHON" -c 'import importlib.metadata as m; print(m.version("genopipe"))')
REGION="${AWS_REGION:-${AWS_DEFAULT_REGION:?set AWS_REGION}}"
ACCOUNT=$(aws sts get-caller-identity --query Account --output text)
REGISTRY="$ACCOUNT.dkr.ecr.$REGION.amazonaws.com"
aws ecr get-login-password --region "$REGION" | docker login --username AWS --password-stdin "$REGISTRY"
STEPS=$("$PYTHON" -m genopipe.cli steps)  # the table of steps (genopipe/pipeline.py)
for step in $STEPS; do
  docker tag "genopipe/$step:$VERSION" "$REGISTRY/genopipe/$step:$VERSION"
  docker push "$REGISTRY/genopipe/$step:$VERSION"
done
