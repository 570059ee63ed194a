"""The whole pipeline on the local stack: real template, state machine, handlers and tools."""

from __future__ import annotations

import gzip
import json
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest

from genopipe.aws import s3
from genopipe.local.batch import JobUpdate
from genopipe.local.demo import DEMO_LENGTH
from genopipe.local.sample_run import EventWaiter, download_outputs, upload_sample
from genopipe.local.server import free_port
from genopipe.local.stack import LocalStack, StackOptions
from genopipe.pipeline import STEP_NAMES, step
from genopipe.s3uri import S3Uri
from genopipe.truth.evaluate import evaluate
from genopipe.truth.simulate import SimulatedSample, simulate_sample

pytestmark = [pytest.mark.e2e, pytest.mark.tools]

GENOPIPE = [str(Path(sys.executable).with_name("genopipe"))]
PIPELINE_TIMEOUT_S = 300.0


@pytest.fixture(scope="module")
def demo_sample(tmp_path_factory: pytest.TempPathFactory) -> SimulatedSample:
    return simulate_sample(tmp_path_factory.mktemp("demo"), seed=11, length=DEMO_LENGTH, sample="demo")


@pytest.fixture(scope="module")
def stack(demo_sample: SimulatedSample) -> Iterator[LocalStack]:
    with LocalStack(StackOptions(port=free_port(), reference=demo_sample.reference)) as running:
        yield running


def overall(tp: int, fp: int, fn: int) -> tuple[float, float]:
    return tp / (tp + fp), tp / (tp + fn)


def test_demo_sample_completes_with_accurate_calls(
    stack: LocalStack, demo_sample: SimulatedSample, tmp_path: Path
) -> None:
    waiter = EventWaiter(stack, "demo")
    upload_sample(stack, demo_sample.r1, demo_sample.r2, "demo", ploidy=2)
    event = waiter.wait(PIPELINE_TIMEOUT_S)

    assert event["source"] == "genopipe"
    assert event["detail-type"] == "Sample Completed", event["detail"].get("error")
    assert event["detail"]["qc"]["read_pairs"] == demo_sample.read_pairs
    # outputs sit under the folder the reads were uploaded to (upload_sample: `demo/`)
    assert event["detail"]["outputs"]["bam"] == f"s3://{stack.output_bucket}/demo/demo/demo.bam"
    files = {path.relative_to(tmp_path / "demo").as_posix() for path in download_outputs(event, tmp_path)}
    assert {"demo.bam", "demo.bam.bai", "demo.vcf.gz", "demo.vcf.gz.tbi", "manifest.json"} <= files
    assert "qc/multiqc_report.html" in files
    evaluation = evaluate(tmp_path / "demo" / "demo.vcf.gz", demo_sample.truth_vcf, demo_sample.reference)
    precision, recall = overall(
        evaluation.snp.tp + evaluation.indel.tp,
        evaluation.snp.fp + evaluation.indel.fp,
        evaluation.snp.fn + evaluation.indel.fn,
    )
    assert recall >= 0.95, evaluation.summary()
    assert precision >= 0.98, evaluation.summary()
    # every Batch job left its log stream, and the jobs ran through the real job definitions
    streams = boto3.client("logs").describe_log_streams(logGroupName="/aws/batch/job")["logStreams"]
    steps = {stream["logStreamName"].split("/")[0] for stream in streams}
    assert steps == {f"genopipe-{step}" for step in STEP_NAMES}


def test_same_pair_uploaded_twice_starts_one_execution(
    stack: LocalStack, demo_sample: SimulatedSample
) -> None:
    waiter = EventWaiter(stack, "twice")
    upload_sample(stack, demo_sample.r1, demo_sample.r2, "twice")
    upload_sample(stack, demo_sample.r1, demo_sample.r2, "twice")  # while the first one runs
    event = waiter.wait(PIPELINE_TIMEOUT_S)
    upload_sample(stack, demo_sample.r1, demo_sample.r2, "twice")  # after it finished
    time.sleep(2)

    stepfunctions = boto3.client("stepfunctions")
    executions = stepfunctions.list_executions(stateMachineArn=stack.deployment.outputs["StateMachineArn"])
    mine = [e for e in executions["executions"] if e["name"].startswith("twice-")]
    assert [e["executionArn"] for e in mine] == [event["detail"]["execution_arn"]]
    assert [e["detail"]["sample"] for e in stack.events.received].count("twice") == 1


def write_fastq_gz(path: Path, count: int, length: int = 100) -> None:
    with gzip.open(path, "wt") as out:
        for n in range(count):
            out.write(f"@read{n}\n{'ACGT' * (length // 4)}\n+\n{'I' * length}\n")


def run_cli(*args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*GENOPIPE, "local", "run", "--port", str(free_port()), *map(str, args)],
        capture_output=True,
        text=True,
        timeout=PIPELINE_TIMEOUT_S + 60,
        check=False,
    )


def test_malformed_pair_fails_the_sample_and_leaves_no_outputs(
    demo_sample: SimulatedSample, tmp_path: Path
) -> None:
    r1, r2 = tmp_path / "broken_R1.fastq.gz", tmp_path / "broken_R2.fastq.gz"
    write_fastq_gz(r1, 50)
    write_fastq_gz(r2, 49)  # a mate missing: R2 is one record short
    out = tmp_path / "out"

    result = run_cli("--r1", r1, "--r2", r2, "--reference", demo_sample.reference, "--out", out)

    assert result.returncode == 1, result.stderr
    event = json.loads(result.stdout.strip().splitlines()[-1])
    assert event["detail-type"] == "Sample Failed"
    error = event["detail"]["error"]
    assert error["step"] == "validate"
    assert "exit code 1" in error["message"], error
    assert not (out / "broken").exists()  # nothing was under s3://<output>/broken/ to download


def test_malformed_pair_names_the_problem_and_leaves_nothing_in_the_output_bucket(
    stack: LocalStack, tmp_path: Path
) -> None:
    r1, r2 = tmp_path / "mangled_R1.fastq.gz", tmp_path / "mangled_R2.fastq.gz"
    write_fastq_gz(r1, 50)
    write_fastq_gz(r2, 49)
    waiter = EventWaiter(stack, "mangled")
    upload_sample(stack, r1, r2, "mangled")
    event = waiter.wait(PIPELINE_TIMEOUT_S)

    assert event["detail-type"] == "Sample Failed"
    stream = event["detail"]["error"]["message"].rsplit(" stream ", 1)[1]
    lines = boto3.client("logs").get_log_events(logGroupName="/aws/batch/job", logStreamName=stream)["events"]
    last = lines[-1]["message"]
    assert last.startswith("genopipe validate: ") and "mangled_R2.fastq.gz" in last, last
    listed = boto3.client("s3").list_objects_v2(Bucket=stack.output_bucket)
    keys = [item["Key"] for item in listed.get("Contents", [])]
    assert not [key for key in keys if key.startswith("mangled/")]
    assert not [key for key in keys if key.startswith(".staging/mangled-")]


def test_a_file_replaced_during_its_run_fails_that_run_and_starts_its_own(
    stack: LocalStack, demo_sample: SimulatedSample
) -> None:
    """Issue 15, case 2: R1 is overwritten once validate has read it; qc must not read the new
    bytes. The old run fails naming the file; the upload starts a run of its own, which completes."""
    replaced = gzip.compress(gzip.decompress(demo_sample.r1.read_bytes()), compresslevel=1, mtime=0)
    assert replaced != demo_sample.r1.read_bytes()  # same reads, new bytes: a new ETag
    r1_uri = S3Uri(stack.input_bucket, "swapped/swapped_R1.fastq.gz")
    events: list[dict[str, Any]] = []
    arrived = threading.Semaphore(0)

    def hear(event: dict[str, Any]) -> None:
        if event.get("detail", {}).get("sample") == "swapped":
            events.append(event)
            arrived.release()

    overwritten = threading.Event()

    def overwrite_after_validate(update: JobUpdate) -> None:
        validated = update.sample == "swapped" and update.step == "validate" and update.status == "SUCCEEDED"
        if validated and not overwritten.is_set():  # the first run's validate: the new run's comes later
            overwritten.set()
            s3.write_bytes(r1_uri, replaced)

    stack.events.listeners.append(hear)
    stack.batch.listeners.append(overwrite_after_validate)
    try:
        upload_sample(stack, demo_sample.r1, demo_sample.r2, "swapped")
        for _ in range(2):
            assert arrived.acquire(timeout=PIPELINE_TIMEOUT_S), [e["detail-type"] for e in events]
    finally:
        stack.batch.listeners.remove(overwrite_after_validate)
        stack.events.listeners.remove(hear)

    failed, completed = sorted(events, key=lambda e: e["detail-type"] != "Sample Failed")
    assert failed["detail-type"] == "Sample Failed" and completed["detail-type"] == "Sample Completed"
    error = failed["detail"]["error"]
    assert error["step"] == "qc", error
    expected = f"genopipe qc: {r1_uri}: changed since it was admitted (ETag "
    assert expected in error["message"] and "the new upload starts its own run" in error["message"], error
    manifest = json.loads(s3.read_bytes(completed["detail"]["outputs"]["manifest"]))
    etags = {item["uri"]: item["etag"] for item in manifest["inputs"]}
    assert etags[str(r1_uri)] == s3.head(r1_uri).etag  # the run that completed read the new bytes


def test_same_sample_name_in_two_folders_publishes_two_sets(
    stack: LocalStack, demo_sample: SimulatedSample
) -> None:
    """Issue 15, case 3: `runA/twin_R1...` and `runB/twin_R1...` publish to `runA/twin/` and
    `runB/twin/`, each set made from its own inputs."""
    outputs = {}
    for folder in ("runA/", "runB/"):
        waiter = EventWaiter(stack, "twin")
        for read, path in (("1", demo_sample.r1), ("2", demo_sample.r2)):
            s3.upload(path, S3Uri(stack.input_bucket, f"{folder}twin_R{read}.fastq.gz"))
        event = waiter.wait(PIPELINE_TIMEOUT_S)
        assert event["detail-type"] == "Sample Completed", event["detail"].get("error")
        outputs[folder] = event["detail"]["outputs"]
        stack.events.received.remove(event)  # so the next folder's waiter hears its own event

    for folder, published in outputs.items():
        assert published["bam"] == f"s3://{stack.output_bucket}/{folder}twin/twin.bam"
        manifest = json.loads(s3.read_bytes(published["manifest"]))
        assert {item["uri"] for item in manifest["inputs"]} >= {
            f"s3://{stack.input_bucket}/{folder}twin_R1.fastq.gz",
            f"s3://{stack.input_bucket}/{folder}twin_R2.fastq.gz",
        }


EBOV = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "ebov"


@pytest.mark.realdata
@pytest.mark.skipif(not EBOV.is_dir(), reason=f"real data not present: {EBOV}")
def test_ebov_haploid_run_finds_all_truth_variants(tmp_path: Path) -> None:
    out = tmp_path / "out"
    result = run_cli(
        "--r1", EBOV / "G5012.3_R1.fastq.gz", "--r2", EBOV / "G5012.3_R2.fastq.gz",
        "--reference", EBOV / "KJ660346.2.fasta", "--ploidy", "1", "--out", out,
    )  # fmt: skip

    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    event = json.loads(result.stdout.strip().splitlines()[-1])
    assert event["detail-type"] == "Sample Completed"
    assert event["detail"]["sample"] == "G5012.3"
    evaluation = evaluate(
        out / "G5012.3" / "G5012.3.vcf.gz",
        EBOV / "EBOV_G5012.3_vs_KJ660346.2.vcf.gz",
        EBOV / "KJ660346.2.fasta",
    )
    assert evaluation.snp.truth + evaluation.indel.truth == 15
    assert evaluation.snp.fn == 0 and evaluation.indel.fn == 0, evaluation.summary()


def records(vcf: Path) -> list[str]:
    """The VCF's records (no header: it names the run's commands)."""
    with gzip.open(vcf, "rt") as handle:
        return [line for line in handle if not line.startswith("#")]


def sharded_and_default_runs(
    tmp_path: Path, r1: Path, r2: Path, reference: Path, sample: str, overrides: list[str], *extra: str
) -> tuple[Path, Path]:
    """The sample run twice on fresh local stacks, with and without the parameter overrides;
    returns both output folders."""
    outs = []
    for name, parameters in (("default", []), ("sharded", ["--parameter-overrides", *overrides])):
        out = tmp_path / name
        inputs: list[str | Path] = [
            "--r1",
            r1,
            "--r2",
            r2,
            "--reference",
            reference,
            "--sample",
            sample,
            *extra,
        ]
        result = run_cli(*inputs, "--out", out, *parameters)
        assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
        assert json.loads(result.stdout.strip().splitlines()[-1])["detail-type"] == "Sample Completed"
        outs.append(out / sample)
    return outs[0], outs[1]


def expected_call_shards(regions: int) -> int:
    """The call step runs one job per region group once it is scattered (the call-region planning)."""
    return regions if step("call").scatter else 1


@pytest.mark.realdata
@pytest.mark.skipif(not EBOV.is_dir(), reason=f"real data not present: {EBOV}")
def test_ebov_in_4_align_shards_and_4_call_regions_gives_the_same_vcf_records(tmp_path: Path) -> None:
    """Issue 13's done-when: AlignShardReadPairs=2500 (9,355 pairs, 9,308 after trimming: 4 shards)
    and CallShardBases=5000 (18,959 bp: 4 regions)."""
    default, sharded = sharded_and_default_runs(
        tmp_path,
        EBOV / "G5012.3_R1.fastq.gz",
        EBOV / "G5012.3_R2.fastq.gz",
        EBOV / "KJ660346.2.fasta",
        "G5012.3",
        ["AlignShardReadPairs=2500", "CallShardBases=5000"],
        "--ploidy",
        "1",
    )
    assert json.loads((default / "manifest.json").read_text())["shards"] == dict.fromkeys(STEP_NAMES, 1)
    shards = json.loads((sharded / "manifest.json").read_text())["shards"]
    assert shards == dict.fromkeys(STEP_NAMES, 1) | {"align": 4, "call": expected_call_shards(4)}
    assert len(records(default / "G5012.3.vcf.gz")) >= 15
    assert records(sharded / "G5012.3.vcf.gz") == records(default / "G5012.3.vcf.gz")


def test_a_simulated_diploid_sample_in_4_shards_gives_the_same_vcf_records(
    demo_sample: SimulatedSample, tmp_path: Path
) -> None:
    pairs_per_shard = -(-demo_sample.read_pairs // 4)  # ceil: fastp drops few simulated pairs
    bases_per_region = -(-DEMO_LENGTH // 4)
    default, sharded = sharded_and_default_runs(
        tmp_path,
        demo_sample.r1,
        demo_sample.r2,
        demo_sample.reference,
        "demo",
        [f"AlignShardReadPairs={pairs_per_shard}", f"CallShardBases={bases_per_region}"],
    )
    shards = json.loads((sharded / "manifest.json").read_text())["shards"]
    assert shards == dict.fromkeys(STEP_NAMES, 1) | {"align": 4, "call": expected_call_shards(4)}
    assert len(records(default / "demo.vcf.gz")) >= 100
    assert records(sharded / "demo.vcf.gz") == records(default / "demo.vcf.gz")
    # duplicates are marked across the shards: the same reads as in the one-shard BAM
    flags = [
        subprocess.run(["samtools", "flagstat", str(out / "demo.bam")], capture_output=True, text=True).stdout
        for out in (default, sharded)
    ]
    assert flags[0] == flags[1]
