#!/usr/bin/env bash
# The tag of the step images `make images` built: <package version>-<12 hex digits of the SHA-256
# of every step image's id>. The same images always get the same tag and any rebuilt image a new
# one, so a push never meets an existing IMMUTABLE tag with other content (push-images.sh skips a
# tag the repository already has: it holds these very images). Job definitions take it through the
# template's ImageTag parameter (`sam deploy --parameter-overrides ImageTag=$(make -s image-tag)`).
# Usage: containers/image-tag.sh   (stops, naming it, if a step image was not built)
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON="${PYTHON:-.venv/bin/python}"
VERSION=$("$PYTHON" -c 'import importlib.metadata as m; print(m.version("genopipe"))')
STEPS=$("$PYTHON" -m genopipe.cli steps)  # the table of steps (genopipe/pipeline.py)
ids=""
for step in $STEPS; do
  id=$(docker image inspect -f '{{.Id}}' "genopipe/$step:$VERSION" 2>/dev/null) || {
    echo "image-tag: no image genopipe/$step:$VERSION: run make images first" >&2
    exit 1
  }
  ids+="$step $id"$'\n'
done
echo "$VERSION-$(printf '%s' "$ids" | sha256sum | cut -c1-12)"
