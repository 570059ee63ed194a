"""containers/image-tag.sh: the images' content tag (ImageTag), with a stand-in `docker` on PATH."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from genopipe.pipeline import STEP_NAMES

ROOT = Path(__file__).resolve().parents[2]


def tag(tmp_path: Path, ids: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """Run the script with a `docker image inspect` that knows the images in `ids` (name -> id)."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    table = "\n".join(f'  "{name}") echo "{image_id}" ;;' for name, image_id in ids.items())
    docker = bin_dir / "docker"
    docker.write_text(f'#!/bin/sh\ncase "$5" in\n{table}\n  *) exit 1 ;;\nesac\n')
    docker.chmod(0o755)
    env = {**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}", "PYTHON": sys.executable}
    return subprocess.run(
        [str(ROOT / "containers" / "image-tag.sh")], env=env, capture_output=True, text=True, check=False
    )


def images(version: str, suffix: str = "") -> dict[str, str]:
    return {f"genopipe/{step}:{version}": f"sha256:{step}{suffix}" for step in STEP_NAMES}


def test_the_tag_follows_the_images_not_the_version_alone(tmp_path: Path) -> None:
    from importlib.metadata import version

    current = version("genopipe")
    first = tag(tmp_path, images(current))
    assert first.returncode == 0, first.stderr
    assert first.stdout.strip().startswith(f"{current}-") and len(first.stdout.strip()) == len(current) + 13
    assert tag(tmp_path, images(current)).stdout == first.stdout  # same images, same tag
    rebuilt = {**images(current), f"genopipe/{STEP_NAMES[0]}:{current}": "sha256:rebuilt"}
    assert tag(tmp_path, rebuilt).stdout != first.stdout  # one image rebuilt: a new tag
    missing = {name: image_id for name, image_id in images(current).items() if "report" not in name}
    failed = tag(tmp_path, missing)
    assert failed.returncode == 1 and f"no image genopipe/report:{current}: run make images" in failed.stderr
