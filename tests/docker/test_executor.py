"""`genopipe local run --executor docker` (every job in its step image) against `--executor native`."""

from __future__ import annotations

import gzip
import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

from genopipe.local.demo import DEMO_LENGTH
from genopipe.local.server import free_port
from genopipe.pipeline import STEP_NAMES
from genopipe.truth.simulate import SimulatedSample, simulate_sample

pytestmark = [pytest.mark.docker, pytest.mark.e2e, pytest.mark.tools]

GENOPIPE = str(Path(sys.executable).with_name("genopipe"))
STEPS = STEP_NAMES  # the table of steps, genopipe/pipeline.py


@pytest.fixture(scope="module")
def demo_sample(tmp_path_factory: pytest.TempPathFactory) -> SimulatedSample:
    return simulate_sample(tmp_path_factory.mktemp("demo"), seed=11, length=DEMO_LENGTH, sample="demo")


def local_run(sample: SimulatedSample, executor: str, out: Path) -> tuple[dict[str, object], float]:
    """One `genopipe local run`; returns its final event (the last stdout line) and its duration."""
    started = time.monotonic()
    argv = [GENOPIPE, "local", "run", "--executor", executor, "--port", str(free_port())]
    argv += ["--r1", str(sample.r1), "--r2", str(sample.r2), "--reference", str(sample.reference)]
    argv += ["--sample", "demo", "--out", str(out), "--timeout", "600"]
    done = subprocess.run(
        argv,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert done.returncode == 0, f"--executor {executor} exited {done.returncode}:\n{done.stderr[-3000:]}"
    return json.loads(done.stdout.strip().splitlines()[-1]), time.monotonic() - started


def vcf_records(vcf: Path) -> list[tuple[str, ...]]:
    """CHROM, POS, REF, ALT, FILTER and the sample's genotype of every record."""
    records = []
    with gzip.open(vcf, "rt") as lines:
        for line in lines:
            if line.startswith("#"):
                continue
            fields = line.rstrip("\n").split("\t")
            genotype = dict(zip(fields[8].split(":"), fields[9].split(":"), strict=True))["GT"]
            records.append((fields[0], fields[1], fields[3], fields[4], fields[6], genotype))
    return records


def test_docker_executor_gives_the_native_records_and_tool_versions(
    step_images: None, demo_sample: SimulatedSample, tmp_path: Path
) -> None:
    native_event, native_s = local_run(demo_sample, "native", tmp_path / "native")
    docker_event, docker_s = local_run(demo_sample, "docker", tmp_path / "docker")
    print(f"\nlocal run on the demo sample: native {native_s:.0f} s, docker {docker_s:.0f} s")

    assert native_event["detail-type"] == docker_event["detail-type"] == "Sample Completed"
    native = vcf_records(tmp_path / "native" / "demo" / "demo.vcf.gz")
    docker = vcf_records(tmp_path / "docker" / "demo" / "demo.vcf.gz")
    assert len(native) >= 100, "the demo sample should give a few hundred variants"
    assert docker == native
    # the images' Debian tools are the versions this machine's tools are (containers/check-pins.sh),
    # and each job recorded what it ran: the manifests agree tool by tool
    manifests = [
        json.loads((tmp_path / run / "demo" / "manifest.json").read_text()) for run in ("native", "docker")
    ]
    assert manifests[0]["tool_versions"] == manifests[1]["tool_versions"]
    assert set(manifests[1]["tool_versions"]) == set(STEPS)
    assert "samtools" in manifests[1]["tool_versions"]["align"]
