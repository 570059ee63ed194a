"""The Docker tier: real images, a real daemon. Skipped, saying why, when no daemon answers."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from genopipe.local.docker import daemon_problem

REPO = Path(__file__).resolve().parents[2]


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    problem = daemon_problem()
    if problem is None:
        return
    skip = pytest.mark.skip(reason=f"Docker tier: {problem}")
    for item in items:
        if "docker" in item.keywords:
            item.add_marker(skip)


def build(script: str) -> str:
    """Run one of containers/build-*.sh (idempotent: cached layers make a rebuild quick)."""
    started = time.monotonic()
    done = subprocess.run(
        [str(REPO / "containers" / script)],
        cwd=REPO,
        env={**os.environ, "PYTHON": sys.executable},
        capture_output=True,
        text=True,
    )
    if done.returncode != 0:
        pytest.fail(f"containers/{script} failed:\n{done.stderr[-3000:]}")
    print(f"\n{script}: {time.monotonic() - started:.0f} s\n{done.stdout.strip()}")
    return done.stdout.strip().splitlines()[-1] if done.stdout.strip() else ""


@pytest.fixture(scope="session")
def step_images() -> None:
    """genopipe/base and genopipe/<step>:<version>, built from this work tree."""
    build("build-images.sh")


@pytest.fixture(scope="session")
def lambda_image() -> str:
    """The stand-in Lambda base image for `sam local invoke`; returns its name."""
    image = build("build-sam-local-image.sh")
    if not image.split(":")[-1].startswith("3.12-"):
        pytest.skip(f"{image}: no CPython 3.12 build here for the template's python3.12 runtime")
    return image
