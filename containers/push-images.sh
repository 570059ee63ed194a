#!/usr/bin/env bash
# `make push [STACK=genopipe]`: pushes the images `make images` built to the ECR repositories of
# the deployed stack STACK (template.yaml: <stack>/<step>), under their content tag
# (containers/image-tag.sh: <version>-<hash of the image ids>). The repositories are IMMUTABLE:
# a rebuilt image has a new tag, and a tag the repository already has holds these very images, so
# it is skipped. The stack creates the repositories: deploy it first. At the end it says whether
# the stack's job definitions run these images (its ImageTag parameter) or how to make them.
# Needs AWS credentials for the target account; not run in CI.
# Usage: AWS_REGION=eu-west-1 containers/push-images.sh [STACK]   (default: genopipe)
set -euo pipefail
cd "$(dirname "$0")/.."
STACK="${1:-genopipe}"
PYTHON="${PYTHON:-.venv/bin/python}"
AWS="${AWS:-aws}"
VERSION=$("$PYTHON" -c 'import importlib.metadata as m; print(m.version("genopipe"))')
TAG=$(containers/image-tag.sh)
REGION="${AWS_REGION:-${AWS_DEFAULT_REGION:?set AWS_REGION}}"
ACCOUNT=$($AWS sts get-caller-identity --query Account --output text)
REGISTRY="$ACCOUNT.dkr.ecr.$REGION.amazonaws.com"
STEPS=$("$PYTHON" -m genopipe.cli steps)  # the table of steps (genopipe/pipeline.py)
for step in $STEPS; do
  if ! $AWS ecr describe-repositories --region "$REGION" --repository-names "$STACK/$step" >/dev/null 2>&1; then
    echo "push-images: no ECR repository $STACK/$step in $REGION: deploy the stack $STACK first (sam deploy), then make push" >&2
    exit 1
  fi
done
logged_in=""
for step in $STEPS; do
  if $AWS ecr describe-images --region "$REGION" --repository-name "$STACK/$step" --image-ids "imageTag=$TAG" >/dev/null 2>&1; then
    echo "push-images: $STACK/$step:$TAG is already there"
    continue
  fi
  if [ -z "$logged_in" ]; then
    $AWS ecr get-login-password --region "$REGION" | docker login --username AWS --password-stdin "$REGISTRY"
    logged_in=1
  fi
  docker tag "genopipe/$step:$VERSION" "$REGISTRY/$STACK/$step:$TAG"
  docker push "$REGISTRY/$STACK/$step:$TAG"
done
running=$($AWS cloudformation describe-stacks --region "$REGION" --stack-name "$STACK" \
  --query "Stacks[0].Parameters[?ParameterKey=='ImageTag'].ParameterValue" --output text 2>/dev/null || true)
if [ "$running" = "$TAG" ]; then
  echo "push-images: the stack $STACK runs these images (ImageTag=$TAG)"
else
  echo "push-images: the stack $STACK runs ImageTag=${running:-?}; to run these images:" \
    "sam deploy --stack-name $STACK --parameter-overrides ImageTag=$TAG (the other parameters keep their values)" >&2
fi
