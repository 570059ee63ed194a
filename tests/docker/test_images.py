"""What every step image promises: non-root, `genopipe job` entrypoint, its step's tools."""

from __future__ import annotations

import json
import subprocess

import pytest

from genopipe import __version__

pytestmark = [pytest.mark.docker]

# each step's programs (genopipe/steps/<step>.py), all of them runnable as the image's user
TOOLS = {
    "validate": ["pigz", "fold", "awk"],
    "reference": ["pigz", "bgzip", "samtools", "minimap2", "bwa"],
    "qc": ["fastp", "seqkit"],
    "align": ["minimap2", "bwa", "samtools"],
    "markdup": ["samtools"],
    "call": ["bcftools", "bgzip", "tabix"],
    "concat": ["bcftools", "bgzip", "tabix"],
    "report": ["samtools", "bcftools", "multiqc"],
}


@pytest.mark.parametrize("step", sorted(TOOLS))
def test_step_image_is_non_root_with_the_job_entrypoint_and_its_tools(step_images: None, step: str) -> None:
    image = f"genopipe/{step}:{__version__}"
    config = json.loads(
        subprocess.run(
            ["docker", "image", "inspect", "-f", "{{json .Config}}", image],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
    )
    assert config["User"] not in ("", "root", "0")
    assert config["Entrypoint"] == ["genopipe", "job"]
    which = f"for tool in {' '.join(TOOLS[step])}; do command -v $tool; done"
    found = subprocess.run(
        ["docker", "run", "--rm", "--entrypoint", "sh", image, "-c", which], capture_output=True, text=True
    )
    assert len(found.stdout.split()) == len(TOOLS[step]), f"{image}: {found.stdout} {found.stderr}"


def test_the_job_entrypoint_reports_a_bad_argument_in_one_line(step_images: None) -> None:
    done = subprocess.run(
        ["docker", "run", "--rm", f"genopipe/validate:{__version__}", "validate", "--sample", "bad name!"],
        capture_output=True,
        text=True,
    )
    assert done.returncode == 2, done.stderr
