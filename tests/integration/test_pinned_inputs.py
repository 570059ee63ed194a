"""Issue 15, case 2: every step reads exactly the bytes the intake admitted (a conditional GET on
each file's ETag); a file replaced during a run fails that run with one line naming it, and the
manifest records the ETags that were read. On moto's in-process S3 (which answers `If-Match`
with 412 PreconditionFailed, as S3 does)."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import boto3
import pytest
from boto3.s3.transfer import TransferConfig

from genopipe.aws import s3
from genopipe.aws.s3 import S3Changed
from genopipe.cli import main
from genopipe.contracts import Lane
from genopipe.pipeline import STEP_NAMES
from genopipe.s3uri import S3Uri
from genopipe.steps import report
from genopipe.steps.params import StepParams
from genopipe.steps.reference import ReferenceIndex
from genopipe.steps.runner import Step

BUCKET = "genopipe-pinned"
STAGING = S3Uri(BUCKET, ".staging/exec-pinned/")
R1, R2 = S3Uri(BUCKET, "run/S1_R1.fastq.gz"), S3Uri(BUCKET, "run/S1_R2.fastq.gz")


def fastq(mate: int, reads: int = 3) -> bytes:
    text = "".join(f"@read{i}/{mate}\nACGTN\n+\nIIII#\n" for i in range(1, reads + 1))
    return gzip.compress(text.encode(), mtime=0)


@pytest.fixture
def bucket(moto: None, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GENOPIPE_THREADS", "1")
    boto3.client("s3").create_bucket(Bucket=BUCKET)


def admitted() -> Lane:
    """Upload a pair and pin it to the ETags it has now, as the submit Lambda does."""
    s3.write_bytes(R1, fastq(1))
    s3.write_bytes(R2, fastq(2))
    return Lane(r1=R1, r2=R2).pinned({str(uri): s3.head(uri).etag for uri in (R1, R2)})


def job(step: str, lane: Lane) -> int:
    reads = json.dumps([lane.model_dump(mode="json", exclude_none=True)])
    argv = ["job", step, "--sample", "S1", "--reads", reads, "--reference", f"s3://{BUCKET}/ref.fa"]
    return main([*argv, "--staging", str(STAGING)])


def test_a_pinned_download_reads_the_admitted_version(bucket: None, tmp_path: Path) -> None:
    lane = admitted()
    assert lane.r1_etag is not None
    assert s3.download(R1, tmp_path / "r1.gz", etag=lane.r1_etag).read_bytes() == fastq(1)
    s3.write_bytes(R1, fastq(1, reads=4))
    with pytest.raises(S3Changed) as raised:
        s3.download(R1, tmp_path / "again.gz", etag=lane.r1_etag)
    now = s3.head(R1).etag
    assert str(raised.value) == (
        f"{R1}: changed since it was admitted (ETag {lane.r1_etag}, now {now}): this run stops; "
        "the new upload starts its own run"
    )
    assert not (tmp_path / "again.gz").exists()
    boto3.client("s3").delete_object(Bucket=BUCKET, Key=R1.key)
    with pytest.raises(S3Changed, match="now deleted"):
        s3.download(R1, tmp_path / "gone.gz", etag=lane.r1_etag)


def test_a_pinned_multipart_download_sends_if_match_on_every_part(
    bucket: None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    small = TransferConfig(multipart_threshold=1024 * 1024, multipart_chunksize=1024 * 1024)
    monkeypatch.setattr(s3, "_TRANSFER", small)
    body = bytes(range(256)) * (3 * 4096 + 7)  # ~3 MiB: four ranged GETs
    uri = S3Uri(BUCKET, "run/big.bin")
    s3.write_bytes(uri, body)
    seen: list[str | None] = []
    s3.client().meta.events.register(
        "before-call.s3.GetObject", lambda params, **_: seen.append(params["headers"].get("If-Match"))
    )
    etag = s3.head(uri).etag
    assert s3.download(uri, tmp_path / "big.bin", etag=etag).read_bytes() == body
    assert len(seen) == 4 and set(seen) == {f'"{etag}"'}


@pytest.mark.parametrize("step", ["validate", "qc"])
def test_a_file_replaced_during_the_run_fails_the_step_naming_it(
    bucket: None, step: str, capsys: pytest.CaptureFixture[str]
) -> None:
    lane = admitted()
    s3.write_bytes(R1, fastq(1, reads=4))  # the user uploads new bytes under the same key
    assert job(step, lane) == 1
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert line == (
        f"genopipe {step}: {R1}: changed since it was admitted (ETag {lane.r1_etag}, "
        f"now {s3.head(R1).etag}): this run stops; the new upload starts its own run"
    )


def test_validate_records_the_etags_it_read_for_the_manifest(bucket: None) -> None:
    lane = admitted()
    assert job("validate", lane) == 0
    validated = s3.read_json(STAGING.join("validate.json"))
    assert validated["inputs"] == [
        {"uri": str(R1), "etag": lane.r1_etag, "size": len(fastq(1))},
        {"uri": str(R2), "etag": lane.r2_etag, "size": len(fastq(2))},
    ]


def test_the_manifest_records_the_etags_read_not_a_later_head(bucket: None, tmp_path: Path) -> None:
    lane = admitted()
    assert job("validate", lane) == 0
    s3.write_bytes(R1, fastq(1, reads=4))  # replaced after the run read it
    fasta = S3Uri(BUCKET, "ref.fa")
    s3.write_bytes(fasta, b">c\nACGT\n")
    for name in STEP_NAMES:
        s3.write_json(STAGING.join(f"versions/{name}.json"), {"tool": "1"})
    s3.write_json(STAGING.join("shards/align.json"), {"shards": [{"parts": []}, {"parts": []}]})
    s3.write_json(STAGING.join("shards/call.json"), {"shards": [{"regions": []}] * 3})
    params = StepParams(sample="S1", reads=[lane], reference=fasta, staging=STAGING)
    step = Step(name="report", params=params, scratch=tmp_path, threads=1)
    ref = ReferenceIndex(fasta=fasta, sha256="x", cache=fasta, bgzf=fasta, fai=fasta, gzi=fasta, mmi=fasta)
    read = s3.read_json(STAGING.join("validate.json"))["inputs"]
    inputs = report.manifest(step, ref, {}, read)["inputs"]
    assert inputs[0] == {"uri": str(R1), "etag": lane.r1_etag, "size": len(fastq(1))}
    assert inputs[0]["etag"] != s3.head(R1).etag
    # Batch jobs per step: the align shard plan's entries, one for the steps that are not scattered
    assert report.manifest(step, ref, {}, read)["shards"]["align"] == 2
    assert report.manifest(step, ref, {}, read)["shards"]["call"] == 3
