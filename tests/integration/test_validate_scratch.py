"""validate's scratch: one lane at a time. Each lane's copy leaves scratch once it is checked, so
the step's peak is its largest lane, not the whole sample (moto's S3, the real pigz and awk)."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import boto3
import pytest

from genopipe.aws import s3
from genopipe.cli import main
from genopipe.contracts import Lane
from genopipe.s3uri import S3Uri
from genopipe.steps.runner import Step

pytestmark = pytest.mark.tools

INPUT, OUTPUT = "genopipe-input", "genopipe-output"


def fastq_gz(path: Path, read: int, names: list[str]) -> Path:
    with gzip.open(path, "wt") as handle:
        for name in names:
            handle.write(f"@{name}/{read}\nACGTACGT\n+\nIIIIIIII\n")
    return path


def test_each_lane_leaves_scratch_once_checked(
    moto: None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for bucket in (INPUT, OUTPUT):
        boto3.client("s3").create_bucket(Bucket=bucket)
    reads = []
    for lane in (1, 2, 3):
        names = [f"L{lane}r{i}" for i in range(lane * 3)]
        pair = {}
        for read in (1, 2):
            uri = S3Uri(INPUT, f"run/S_L00{lane}_R{read}.fastq.gz")
            s3.upload(fastq_gz(tmp_path / uri.name, read, names), uri)
            pair[f"r{read}"] = str(uri)
        reads.append(pair)

    in_scratch: list[list[str]] = []  # the FASTQ files in scratch as each lane is fetched
    fetch = Step.fetch_lane

    def watched(step: Step, number: int, lane: Lane) -> tuple[Path, Path]:
        in_scratch.append(sorted(str(p.relative_to(step.scratch)) for p in step.scratch.rglob("*.fastq.gz")))
        return fetch(step, number, lane)

    monkeypatch.setattr(Step, "fetch_lane", watched)
    monkeypatch.setenv("GENOPIPE_SCRATCH", str(tmp_path / "scratch"))
    (tmp_path / "scratch").mkdir()
    staging = S3Uri(OUTPUT, ".staging/e/")
    argv = ["job", "validate", "--sample", "S", "--reads", json.dumps(reads)]
    assert main([*argv, "--reference", f"s3://{INPUT}/ref.fa", "--staging", str(staging)]) == 0

    assert in_scratch == [[], [], []]  # lanes 1 and 2 were gone before lanes 2 and 3 came
    checked = s3.read_json(staging.join("validate.json"))
    assert [lane["records"] for lane in checked["lanes"]] == [3, 6, 9] and checked["read_pairs"] == 18
    assert list((tmp_path / "scratch").iterdir()) == []
