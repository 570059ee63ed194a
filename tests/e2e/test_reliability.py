"""Issue 6 on the local stack (real template, state machine, handlers, tools): bad input fails the
sample cleanly, S3 events are admitted exactly once, a missing mate is reported by the sweep, and
Spot reclaims change nothing in the results."""

from __future__ import annotations

import gzip
import json
import subprocess
import sys
import threading
import time
from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote_plus

import boto3
import pytest

from genopipe.aws import s3
from genopipe.local.batch import JobUpdate, SpotReclaims
from genopipe.local.sample_run import EventWaiter, upload_sample
from genopipe.local.server import free_port
from genopipe.local.stack import LocalStack, StackOptions
from genopipe.local.sweep import run_sweep
from genopipe.pipeline import STEP_NAMES
from genopipe.s3uri import S3Uri
from genopipe.truth.simulate import SimulatedSample, simulate_sample

pytestmark = [pytest.mark.e2e, pytest.mark.tools]

TIMEOUT_S = 300.0
LENGTH = 40_000
STEPS = STEP_NAMES  # the table of steps, genopipe/pipeline.py
SPOT_SAMPLES = ("spot0", "spot1", "spot2")
RETRY_ATTEMPTS = 3  # the job definitions' RetryStrategy
GENOPIPE = [str(Path(sys.executable).with_name("genopipe")), "local", "sweep"]


@pytest.fixture(scope="module")
def samples(tmp_path_factory: pytest.TempPathFactory) -> dict[str, SimulatedSample]:
    folder = tmp_path_factory.mktemp("reliability")
    first = simulate_sample(folder / "spot0", seed=21, length=LENGTH, sample="spot0")
    made = {"spot0": first}
    for n, name in enumerate(SPOT_SAMPLES[1:], start=1):
        made[name] = simulate_sample(folder / name, seed=21 + n, reference=first.reference, sample=name)
    return made


@pytest.fixture(scope="module")
def stack(samples: dict[str, SimulatedSample]) -> Iterator[LocalStack]:
    with LocalStack(StackOptions(port=free_port(), reference=samples["spot0"].reference)) as running:
        yield running


def put(stack: LocalStack, key: str, body: bytes) -> None:
    s3.write_bytes(S3Uri(stack.input_bucket, key), body)


def output_keys(stack: LocalStack, prefix: str) -> list[str]:
    return [item.uri.key for item in s3.list_prefix(S3Uri(stack.output_bucket, prefix))]


def executions_of(stack: LocalStack, sample: str) -> list[dict[str, Any]]:
    sfn = boto3.client("stepfunctions")
    listed = sfn.list_executions(stateMachineArn=stack.deployment.outputs["StateMachineArn"])["executions"]
    return [e for e in listed if e["name"].startswith(f"{sample}-")]


def fastq_gz(mate: int, n: int = 4, header: str = "") -> bytes:
    text = "".join(f"@r{i}/{mate}\nACGTACGTAC\n+{header}\nIIIIIIIIII\n" for i in range(1, n + 1))
    return gzip.compress(text.encode(), mtime=0)


def test_a_bad_fastq_fails_the_sample_naming_file_record_and_problem(stack: LocalStack) -> None:
    folder = "run 1+ü/"  # a key with a space, `+` and unicode: URL-encoded in the S3 event
    waiter = EventWaiter(stack, "plusbad")
    r2 = gzip.compress(
        gzip.decompress(fastq_gz(2)).replace(b"@r3/2\nACGTACGTAC\n+\n", b"@r3/2\nACGTACGTAC\n+r9/2\n")
    )
    put(stack, folder + "plusbad_R1.fastq.gz", fastq_gz(1))
    put(stack, folder + "plusbad_R2.fastq.gz", r2)
    event = waiter.wait(TIMEOUT_S)

    assert event["detail-type"] == "Sample Failed"
    error = event["detail"]["error"]
    assert error["step"] == "validate"
    # the job's last log line, quoted in the message: file, record number, problem
    expected = (
        f"genopipe validate: s3://{stack.input_bucket}/{folder}plusbad_R2.fastq.gz: "
        "record 3: '+' line 'r9/2' differs from the header 'r3/2'"
    )
    assert expected in error["message"], error["message"]
    assert "Traceback" not in error["message"]
    assert not [key for key in output_keys(stack, "") if "plusbad" in key]  # wherever its folder


def test_a_bad_samplesheet_fails_at_intake(stack: LocalStack) -> None:
    key = "sheets/run 2/samplesheet.csv"
    waiter = EventWaiter(stack, key)
    put(stack, key, b"sample,fastq_1,fastq_2\nX,X_1.fq.gz,X_2.fq.gz\nX,X_1.fq.gz,X_2.fq.gz\n")
    event = waiter.wait(30)

    assert event["detail-type"] == "Sample Failed"
    assert event["detail"]["error"] == {
        "step": "intake",
        "type": "InvalidSamplesheet",
        "message": f"s3://{stack.input_bucket}/{key}: row 3: 'X_1.fq.gz' is already listed in row 2",
    }
    assert executions_of(stack, "X") == []


def test_racing_mates_and_a_thrice_delivered_event_start_one_execution(
    stack: LocalStack, samples: dict[str, SimulatedSample]
) -> None:
    sample, folder = samples["spot0"], "lab run+1/ü/"
    keys = [f"{folder}once_R1.fastq.gz", f"{folder}once_R2.fastq.gz"]
    waiter = EventWaiter(stack, "once")
    barrier = threading.Barrier(2)

    def upload(path: Path, key: str) -> None:
        barrier.wait()
        s3.upload(path, S3Uri(stack.input_bucket, key))

    threads = [
        threading.Thread(target=upload, args=pair) for pair in zip((sample.r1, sample.r2), keys, strict=True)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    # S3 delivers the R2 event three more times (at-least-once delivery)
    intake = next(
        f["FunctionName"]
        for f in boto3.client("lambda").list_functions()["Functions"]
        if "IntakeFunction" in f["FunctionName"]
    )
    record = {
        "eventName": "ObjectCreated:Put",
        "s3": {"bucket": {"name": stack.input_bucket}, "object": {"key": quote_plus(keys[1])}},
    }
    replies = [
        json.loads(
            boto3.client("lambda")
            .invoke(FunctionName=intake, Payload=json.dumps({"Records": [record]}))["Payload"]
            .read()
        )
        for _ in range(3)
    ]
    event = waiter.wait(TIMEOUT_S)

    assert event["detail-type"] == "Sample Completed", event["detail"].get("error")
    assert [len(r["started"]) for r in replies] == [0, 0, 0] and [len(r["duplicates"]) for r in replies] == [
        1,
        1,
        1,
    ]
    assert [e["executionArn"] for e in executions_of(stack, "once")] == [event["detail"]["execution_arn"]]
    assert [e["detail"]["sample"] for e in stack.events.received].count("once") == 1
    published = set(output_keys(stack, f"{folder}once/"))  # under the folder of the inputs
    assert {f"{folder}once/once.vcf.gz", f"{folder}once/once.bam"} <= published


def test_a_missing_mate_is_reported_by_the_sweep(stack: LocalStack) -> None:
    waiter = EventWaiter(stack, "lonely")
    put(stack, "solo/lonely_R1.fastq.gz", fastq_gz(1))
    time.sleep(0.5)
    assert run_sweep()["rejected"] == []  # the default timeout (1 hour) has not passed
    swept = run_sweep(mate_timeout_seconds=0)
    event = waiter.wait(10)

    assert event["detail-type"] == "Sample Failed"
    error = event["detail"]["error"]
    assert error["type"] == "MateMissing" and "mate missing" in error["message"]
    assert f"s3://{stack.input_bucket}/solo/lonely_R1.fastq.gz" in error["message"]
    assert swept["rejected"] == [error["message"]]
    assert executions_of(stack, "lonely") == [] and not [k for k in output_keys(stack, "") if "lonely" in k]


def test_lanes_by_name_wait_for_the_sweep_and_run_once(stack: LocalStack) -> None:
    folder = "lanes/"
    for lane in (1, 2):
        for read in (1, 2):
            put(stack, f"{folder}multi_S1_L00{lane}_R{read}_001.fastq.gz", fastq_gz(read))
    time.sleep(0.5)
    assert executions_of(stack, "multi") == []  # waits for the quiet period
    swept = run_sweep(lane_settle_seconds=0)
    (execution,) = executions_of(stack, "multi")
    assert swept["started"] == [execution["name"]]
    described = boto3.client("stepfunctions").describe_execution(executionArn=execution["executionArn"])
    assert len(json.loads(described["input"])["reads"]) == 2


def test_the_stack_runs_the_sweep_schedule_so_lanes_start_once_quiet(stack: LocalStack) -> None:
    # the template's rate(5 minutes) and LaneSettleSeconds 300, at the default wait scale 0.05
    assert stack.sweeper is not None and stack.sweeper.interval_s == 15.0
    for lane in (1, 2):
        for read in (1, 2):
            put(stack, f"timed/settled_S1_L00{lane}_R{read}_001.fastq.gz", fastq_gz(read))
    assert executions_of(stack, "settled") == []
    deadline = time.monotonic() + 60
    while not executions_of(stack, "settled") and time.monotonic() < deadline:
        time.sleep(1)
    (execution,) = executions_of(stack, "settled")  # no manual sweep: the timer started it
    described = boto3.client("stepfunctions").describe_execution(executionArn=execution["executionArn"])
    assert len(json.loads(described["input"])["reads"]) == 2


def test_genopipe_local_sweep_reports_a_missing_mate_on_demand(stack: LocalStack) -> None:
    waiter = EventWaiter(stack, "alone")
    put(stack, "cli/alone_R2.fastq.gz", fastq_gz(2))
    done = subprocess.run(
        [*GENOPIPE, "--port", str(stack.options.port), "--mate-timeout-seconds", "0"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    outcome = json.loads(done.stdout)
    event = waiter.wait(10)
    assert event["detail"]["error"]["type"] == "MateMissing"
    assert outcome["rejected"] == [event["detail"]["error"]["message"]]
    assert f"s3://{stack.input_bucket}/cli/alone_R2.fastq.gz" in outcome["rejected"][0]


def test_genopipe_local_sweep_names_a_port_with_no_stack() -> None:
    done = subprocess.run(
        [*GENOPIPE, "--port", str(free_port())],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 2
    assert done.stderr.startswith("genopipe local sweep: no local stack answers on http://127.0.0.1:")


def vcf_records(path: Path) -> list[str]:
    done = subprocess.run(["bcftools", "view", "-H", str(path)], capture_output=True, text=True, check=True)
    return done.stdout.splitlines()


def spot_seed() -> int:
    """The first seed with which at least one job is reclaimed on all its Spot attempts."""
    for seed in range(200):
        draws = SpotReclaims(0.3, seed)
        for sample in SPOT_SAMPLES:
            for step in STEPS:
                name = f"{sample}-{step}"
                if all(draws.plan(name, attempt) for attempt in range(1, RETRY_ATTEMPTS + 1)):
                    return seed
    raise AssertionError("no seed reclaims a job past its retries")


def run_samples(
    stack: LocalStack, samples: dict[str, SimulatedSample], out: Path
) -> dict[str, dict[str, Any]]:
    waiters = {name: EventWaiter(stack, name) for name in SPOT_SAMPLES}
    for name in SPOT_SAMPLES:
        upload_sample(stack, samples[name].r1, samples[name].r2, name)
    events = {name: waiter.wait(TIMEOUT_S * 2) for name, waiter in waiters.items()}
    for name in SPOT_SAMPLES:  # published under the folder the reads were uploaded to
        s3.download(events[name]["detail"]["outputs"]["vcf"], out / f"{name}.vcf.gz")
    return events


# last in the module: stopping its second stack resets moto's backends, which the module's stack shares
def test_spot_reclaims_retry_fall_back_and_change_no_call(
    stack: LocalStack, samples: dict[str, SimulatedSample], tmp_path: Path
) -> None:
    baseline = run_samples(stack, samples, tmp_path / "clean")
    seed = spot_seed()
    updates: list[JobUpdate] = []
    options = StackOptions(
        port=free_port(), reference=samples["spot0"].reference, reclaim_rate=0.3, seed=seed
    )
    with LocalStack(options) as faulty:
        faulty.batch.listeners.append(updates.append)
        events = run_samples(faulty, samples, tmp_path / "faulty")
        ids = sorted({update.job_id for update in updates})
        jobs = [
            job
            for i in range(0, len(ids), 100)
            for job in boto3.client("batch").describe_jobs(jobs=ids[i : i + 100])["jobs"]
        ]

    for name in SPOT_SAMPLES:
        assert baseline[name]["detail-type"] == "Sample Completed"
        assert events[name]["detail-type"] == "Sample Completed", events[name]["detail"].get("error")
        assert vcf_records(tmp_path / "faulty" / f"{name}.vcf.gz") == vcf_records(
            tmp_path / "clean" / f"{name}.vcf.gz"
        )
    assert len(jobs) == len(ids)
    by_name: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for job in jobs:
        reasons = [attempt.get("statusReason", "") for attempt in job["attempts"]]
        by_name[job["jobName"]].append(job)
        assert 1 <= len(reasons) <= RETRY_ATTEMPTS, (job["jobName"], reasons)  # RetryStrategy.Attempts
        # only a reclaim is retried (EvaluateOnExit: Host EC2* -> RETRY)
        assert all(reason.startswith("Host EC2") for reason in reasons[:-1]), (job["jobName"], reasons)
        if job["status"] == "FAILED":  # reclaimed on every attempt: replaced On-Demand
            assert len(reasons) == RETRY_ATTEMPTS and reasons[-1].startswith("Host EC2"), reasons
            assert "spot" in job["jobQueue"]
    assert any(len(job["attempts"]) > 1 for job in jobs), "no attempt was reclaimed and retried"
    fell_back = [name for name, named in by_name.items() if len(named) == 2]
    assert fell_back, "no job was reclaimed past its retries"
    for name in fell_back:
        statuses = sorted((job["status"], "on-demand" in job["jobQueue"]) for job in by_name[name])
        assert statuses == [("FAILED", False), ("SUCCEEDED", True)], (name, statuses)
