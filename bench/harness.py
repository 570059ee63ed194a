"""What the benchmark scripts share: data sets, a moto server process, VCF records, provenance.

The scripts run as `python bench/<script>.py`, so this folder is on their path; the tests reach
it through pytest's `pythonpath` (pyproject.toml).
"""

from __future__ import annotations

import gzip
import json
import os
import platform
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from genopipe.local.server import free_port

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"


@dataclass(frozen=True)
class Dataset:
    """A pair of FASTQ files on a reference, with its truth set when it has one."""

    name: str
    r1: Path
    r2: Path
    reference: Path
    read_pairs: int
    truth: Path | None = None
    ploidy: int = 2
    regions: Path | None = None  # where the truth set is scored (BED), if not everywhere
    description: str = ""


def count_records(fastq: Path) -> int:
    with gzip.open(fastq, "rb") as handle:
        return sum(1 for _ in handle) // 4


# ---------------------------------------------------------------------------------------------
# moto server


@dataclass(frozen=True)
class MotoServer:
    env: dict[str, str]  # os.environ pointed at the server
    pid: int


@contextmanager
def moto_server() -> Iterator[MotoServer]:
    """A `python -m moto.server` process; yields the environment that points the SDK at it."""
    port = free_port()
    log = Path(tempfile.mkdtemp(prefix="bench-moto-")) / "moto.log"
    with log.open("wb") as log_file:
        proc = subprocess.Popen(
            [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
            stdout=log_file,
            stderr=subprocess.STDOUT,
        )
    endpoint = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                with urllib.request.urlopen(f"{endpoint}/moto-api/", timeout=2):
                    break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    sys.exit(f"bench: moto server did not start (see {log})")
                time.sleep(0.2)
        env = dict(os.environ)
        env.update(
            AWS_ENDPOINT_URL=endpoint,
            AWS_DEFAULT_REGION="us-east-1",
            AWS_REGION="us-east-1",
            AWS_ACCESS_KEY_ID="testing",
            AWS_SECRET_ACCESS_KEY="testing",
        )
        env.pop("AWS_PROFILE", None)
        yield MotoServer(env, proc.pid)
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        shutil.rmtree(log.parent, ignore_errors=True)


def reset_moto(env: dict[str, str]) -> None:
    """Forget every bucket, so one run's objects do not sit in the server's memory for the next."""
    request = urllib.request.Request(f"{env['AWS_ENDPOINT_URL']}/moto-api/reset", method="POST")
    with urllib.request.urlopen(request, timeout=30):
        pass


def vcf_records(vcf: Path) -> list[str]:
    """The VCF's records reduced to what both pipelines must agree on (site, alleles, filter, GT)."""
    query = ["bcftools", "query", "-f", "%CHROM:%POS:%REF:%ALT:%FILTER[:%GT]\\n", str(vcf)]
    return subprocess.run(query, capture_output=True, text=True, check=True).stdout.splitlines()


# ---------------------------------------------------------------------------------------------
# provenance


def tool_versions() -> dict[str, str]:
    def first_line(argv: list[str]) -> str:
        try:
            done = subprocess.run(argv, capture_output=True, text=True, errors="replace", timeout=60)
        except OSError as error:
            return f"unavailable ({error})"
        for line in (done.stdout + done.stderr).splitlines():
            if any(ch.isdigit() for ch in line):
                return line.replace("Version:", "").strip()
        return "unknown"

    versions = {
        "minimap2": first_line(["minimap2", "--version"]),
        "samtools": first_line(["samtools", "--version"]),
        "bcftools": first_line(["bcftools", "--version"]),
        "fastp": first_line(["fastp", "--version"]),
        "pigz": first_line(["pigz", "--version"]),
        "awk": first_line(["awk", "-W", "version"]),
        "multiqc": first_line([str(Path(sys.executable).parent / "multiqc"), "--version"]),
        "python": platform.python_version(),
    }
    from importlib.metadata import version

    for package in ("genopipe", "moto", "boto3"):
        versions[package] = version(package)
    return versions


def machine() -> dict[str, object]:
    cpu = "unknown"
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            cpu = line.split(":", 1)[1].strip()
            break
    mem_kib = next(
        int(line.split()[1])
        for line in Path("/proc/meminfo").read_text().splitlines()
        if line.startswith("MemTotal")
    )
    return {
        "hostname": platform.node(),
        "kernel": platform.release(),
        "os": platform.freedesktop_os_release().get("PRETTY_NAME", "unknown"),
        "cpu": cpu,
        "cpus": len(os.sched_getaffinity(0)),
        "memory_gib": round(mem_kib / 1024 / 1024, 1),
        "load_average_at_start": list(os.getloadavg()),
    }


def write_results(path: Path, results: dict[str, Any]) -> None:
    """Write a benchmark's results as JSON, with the host's load average at the end of the run
    (these machines are shared: the load says how far to trust the wall times)."""
    results["load_average_at_end"] = list(os.getloadavg())
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(results, indent=2) + "\n")
    print(f"wrote {path}")
