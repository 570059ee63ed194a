#!/usr/bin/env bash
# `make images`: builds genopipe/base and one image per job step, tagged with the package
# version (what the local stack runs) and with their content tag (containers/image-tag.sh: what
# ECR gets and the template's ImageTag names), without reaching any image registry:
#   1. debian:bookworm-slim is created from Debian packages when missing (debian-base.sh);
#   2. the genopipe wheel is built from the work tree and, with its dependencies at the versions
#      of the tested virtualenv (pip freeze as constraints), collected into build/wheels/;
#   3. docker build base, then each step FROM it. Pushes nothing (see `make push`).
# Usage: containers/build-images.sh [step ...]   (default: every step)
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON="${PYTHON:-.venv/bin/python}"
STEPS=$("$PYTHON" -m genopipe.cli steps)  # the table of steps (genopipe/pipeline.py)
mapfile -t STEPS <<<"$STEPS"
[ $# -gt 0 ] && STEPS=("$@")
VERSION=$("$PYTHON" -c 'import importlib.metadata as m; print(m.version("genopipe"))')
MULTIQC_VERSION=1.35
WHEELS=build/wheels

docker info >/dev/null 2>&1 || {
  echo "make images: no Docker daemon answers (scripts/start-dockerd.sh starts one as root)" >&2
  exit 1
}
containers/debian-base.sh

start=$(date +%s)
mkdir -p "$WHEELS"
"$PYTHON" -m pip freeze --exclude-editable | grep -v '^genopipe' >"$WHEELS/constraints.txt"
rm -rf "$WHEELS/base" "$WHEELS/report" "$WHEELS/all"
# the genopipe wheel from the work tree + its runtime dependencies (not the local/dev extras);
# a fixed zip timestamp: an unchanged tree gives the same wheel bytes, so docker reuses layers
SOURCE_DATE_EPOCH=315532800 "$PYTHON" -m pip wheel -q --wheel-dir "$WHEELS/all" -c "$WHEELS/constraints.txt" . \
  2> >(grep -v "^WARNING: Location" >&2)
mkdir -p "$WHEELS/base/app" "$WHEELS/base/deps" "$WHEELS/report/multiqc"
mv "$WHEELS"/all/genopipe-*.whl "$WHEELS/base/app/"
mv "$WHEELS"/all/*.whl "$WHEELS/base/deps/"
cp -r "$WHEELS/base/deps" "$WHEELS/report/deps"
"$PYTHON" -m pip wheel -q --wheel-dir "$WHEELS/report/multiqc" -c "$WHEELS/constraints.txt" "multiqc==$MULTIQC_VERSION" \
  2> >(grep -v "^WARNING: Location" >&2)
echo "images: wheels collected in $(($(date +%s) - start)) s"

build() { # image-name dockerfile context
  local t0=$(date +%s)
  docker build -q --network host --build-arg "GENOPIPE_VERSION=$VERSION" -t "$1:$VERSION" -f "$2" "$3" >/dev/null 2> >(grep -v -e DEPRECATED -e "BuildKit is currently disabled" -e "environment-variable." -e "^$" >&2)
  printf 'images: %-22s %4s s  %s\n' "$1:$VERSION" "$(($(date +%s) - t0))" \
    "$(docker image inspect -f '{{.Size}}' "$1:$VERSION" | awk '{printf "%.0f MB", $1/1e6}')"
}
# legacy builder: what every daemon here has (no buildx plugin needed); host network: with
# --iptables=false the default bridge has no route out, and apt must reach the Debian mirror
export DOCKER_BUILDKIT=0
build genopipe/base containers/base/Dockerfile "$WHEELS/base"
for step in "${STEPS[@]}"; do
  context="containers/$step"
  [ "$step" = report ] && context="$WHEELS/report"
  build "genopipe/$step" "containers/$step/Dockerfile" "$context"
done
# the content tag ECR gets (containers/image-tag.sh); the local stack's docker executor runs :$VERSION
if TAG=$(containers/image-tag.sh); then
  for step in $("$PYTHON" -m genopipe.cli steps); do docker tag "genopipe/$step:$VERSION" "genopipe/$step:$TAG"; done
  echo "images: tagged $TAG (sam deploy --parameter-overrides ImageTag=$TAG; make push)"
fi
echo "images: built in $(($(date +%s) - start)) s"
