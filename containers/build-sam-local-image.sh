#!/usr/bin/env bash
# `make sam-local-image`: builds genopipe/lambda-python:<python version>-<genopipe version>, the
# stand-in Lambda base image for `sam local invoke --invoke-image ... --skip-pull-image`
# (containers/lambda-python/Dockerfile), from:
#   - CPython 3.12, the template's runtime: a local build (pyenv's, or PYTHON312=/prefix) made on
#     Debian bookworm, so it links against the same libraries as the image. Without one, Debian's
#     own python3.11 is used and the mismatch is reported: handlers then run on 3.11.
#   - PyPI awslambdaric (the runtime interface client) at a pinned version,
#   - the runtime interface emulator binary shipped inside the aws-sam-cli package.
# Prints the image name as its last line.
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON="${PYTHON:-.venv/bin/python}"
AWSLAMBDARIC_VERSION=4.2.2
SAM_CLI_VERSION=1.170.0
CONTEXT=build/lambda-python
VERSION=$("$PYTHON" -c 'import importlib.metadata as m; print(m.version("genopipe"))')

containers/debian-base.sh >&2

# a self-contained CPython 3.12 installation (its own prefix, not /usr): $PYTHON312, else the
# python3.12 on PATH (pyenv's shim resolves to its build), else pyenv's (PYENV_ROOT)
prefix="${PYTHON312:-}"
if [ -z "$prefix" ] && command -v python3.12 >/dev/null 2>&1; then
  prefix=$(python3.12 -c 'import sys; print(sys.base_prefix)' 2>/dev/null || true)
fi
if [ -z "$prefix" ] && command -v pyenv >/dev/null 2>&1; then
  prefix=$(pyenv prefix 3.12 2>/dev/null | head -1 || true)
fi
if [ -z "$prefix" ]; then
  prefix=$(ls -d "${PYENV_ROOT:-$HOME/.pyenv}"/versions/3.12* 2>/dev/null | sort -V | tail -1 || true)
fi
case "$prefix" in /usr | /usr/local | /) prefix="" ;; esac
rm -rf "$CONTEXT" && mkdir -p "$CONTEXT/runtime"
cp containers/lambda-python/Dockerfile containers/lambda-python/lambda-entrypoint.sh "$CONTEXT/"
cp containers/lambda-python/bootstrap "$CONTEXT/runtime/bootstrap"

if [ -n "$prefix" ] && [ -x "$prefix/bin/python3.12" ]; then
  pyver=3.12
  # the interpreter and standard library, without its tests, pip or caches
  tar -C "$prefix" --exclude='lib/python3.12/test' --exclude='lib/python3.12/*/tests' \
    --exclude='lib/python3.12/idlelib' --exclude='lib/python3.12/tkinter' \
    --exclude='lib/python3.12/ensurepip' --exclude='lib/python3.12/site-packages/*' \
    --exclude='__pycache__' --exclude='*.a' --exclude='share' --exclude='include' \
    -cf - bin lib | (mkdir -p "$CONTEXT/python" && tar -C "$CONTEXT/python" -xf -)
  ln -sf python3.12 "$CONTEXT/python/bin/python3"
else
  pyver=3.11
  echo "sam-local-image: no CPython 3.12 build found (set PYTHON312=/its/prefix):" \
    "using Debian's python3.11, so handlers run on 3.11 while template.yaml says python3.12" >&2
  # an empty python/ and Debian's interpreter installed by a Dockerfile variant
  mkdir -p "$CONTEXT/python/bin"
  sed -i 's|^COPY python /var/lang$|RUN apt-get update \&\& apt-get install -y --no-install-recommends python3.11=3.11.2-6+deb12u9 \&\& rm -rf /var/lib/apt/lists/* \&\& mkdir -p /var/lang/bin \&\& ln -s /usr/bin/python3.11 /var/lang/bin/python3|' \
    "$CONTEXT/Dockerfile"
fi

# awslambdaric for the image's Python, into /var/runtime (on PYTHONPATH in bootstrap)
"$PYTHON" -m pip install -q --no-compile --target "$CONTEXT/runtime" --only-binary=:all: \
  --platform manylinux2014_x86_64 --python-version "$pyver" --implementation cp \
  "awslambdaric==$AWSLAMBDARIC_VERSION"

# the emulator from the aws-sam-cli package: the SAM virtualenv's copy, else the wheel's
rie=$(ls .venv-sam/lib/python3*/site-packages/samcli/local/rapid/aws-lambda-rie-x86_64 2>/dev/null | head -1 || true)
if [ -z "$rie" ]; then
  "$PYTHON" -m pip download -q --no-deps --only-binary=:all: -d build/wheels/sam "aws-sam-cli==$SAM_CLI_VERSION"
  "$PYTHON" -m zipfile -e build/wheels/sam/aws_sam_cli-"$SAM_CLI_VERSION"-*.whl build/wheels/sam/x >/dev/null
  rie=build/wheels/sam/x/samcli/local/rapid/aws-lambda-rie-x86_64
fi
cp "$rie" "$CONTEXT/aws-lambda-rie" && chmod +x "$CONTEXT/aws-lambda-rie"

image="genopipe/lambda-python:$pyver-$VERSION"
DOCKER_BUILDKIT=0 docker build -q --network host -t "$image" "$CONTEXT" >/dev/null \
  2> >(grep -v -e DEPRECATED -e "BuildKit is currently disabled" -e "environment-variable." -e "^$" >&2)
echo "sam-local-image: $image $(docker image inspect -f '{{.Size}}' "$image" | awk '{printf "%.0f MB", $1/1e6}')" >&2
echo "$image"
