"""Each Lambda handler on moto, driven by the same events/ files `sam local invoke` takes."""

from __future__ import annotations

import importlib.util
import io
import json
import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from types import ModuleType
from typing import Any
from urllib.parse import quote_plus

import boto3
import pytest
from moto.batch.models import Job

from genopipe.aws import s3
from genopipe.local.lambdas import LambdaContext
from genopipe.s3uri import S3Uri

ROOT = Path(__file__).resolve().parents[2]
EVENTS = ROOT / "events"
INPUT = "genopipe-input-123456789012-us-east-1"
OUTPUT = "genopipe-output-123456789012-us-east-1"
CONTEXT = LambdaContext(
    "fn", "$LATEST", "arn:aws:lambda:us-east-1:123456789012:function:fn", 512, "g", "s", 60
)


def _event(name: str) -> dict[str, Any]:
    return dict(json.loads((EVENTS / name).read_text()))


def _load(function: str) -> ModuleType:
    path = ROOT / "functions" / function / "app.py"
    spec = importlib.util.spec_from_file_location(f"test_handler_{function}", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def aws(moto: None, monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[[str], ModuleType]]:
    environment = {
        "POWERTOOLS_METRICS_NAMESPACE": "genopipe",
        "OUTPUT_BUCKET": OUTPUT,
        "REFERENCE_URI": "s3://genopipe-reference/genome.fa",
        "SPOT_PRICE_PER_VCPU_HOUR": "0.015",
        "ON_DEMAND_PRICE_PER_VCPU_HOUR": "0.0425",
        "POLL_INITIAL_SECONDS": "10",
        "POLL_MAX_SECONDS": "5120",
        "INTAKE_TABLE": "genopipe-intake",
    }
    for name, value in environment.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setattr(Job, "run", lambda self: None)  # jobs stay SUBMITTED: no container runs
    for bucket in (INPUT, OUTPUT):
        boto3.client("s3").create_bucket(Bucket=bucket)
    boto3.client("dynamodb").create_table(
        TableName="genopipe-intake",
        AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
        BillingMode="PAY_PER_REQUEST",
    )
    machine = boto3.client("stepfunctions").create_state_machine(
        name="genopipe",
        definition=json.dumps({"StartAt": "P", "States": {"P": {"Type": "Pass", "End": True}}}),
        roleArn="arn:aws:iam::123456789012:role/sfn",
    )
    monkeypatch.setenv("STATE_MACHINE_ARN", machine["stateMachineArn"])
    yield _load


def test_intake_waits_for_the_mate_then_starts_once(aws: Callable[[str], ModuleType]) -> None:
    intake = aws("intake")
    client = boto3.client("s3")
    client.put_object(Bucket=INPUT, Key="runs/run 1/NA12878_R1.fastq.gz", Body=b"r1")
    first = intake.handler(_event("s3_put_r1.json"), CONTEXT)
    assert first["started"] == [] and "sample 'NA12878' waits" in first["waiting"][0]
    client.put_object(Bucket=INPUT, Key="runs/run 1/NA12878_R2.fastq.gz", Body=b"r2")
    second = intake.handler(_event("s3_put_r2.json"), CONTEXT)
    (name,) = second["started"]
    sfn = boto3.client("stepfunctions")
    machine = sfn.list_state_machines()["stateMachines"][0]["stateMachineArn"]
    (execution,) = sfn.list_executions(stateMachineArn=machine)["executions"]
    assert execution["name"] == name
    # S3 re-delivers the event: while the execution runs, StartExecution is idempotent (same
    # name, same input); once it has ended, it answers ExecutionAlreadyExists = a duplicate
    sfn.stop_execution(executionArn=execution["executionArn"])
    again = intake.handler(_event("s3_put_r2.json"), CONTEXT)
    assert again["started"] == [] and again["duplicates"] == [name]
    assert len(sfn.list_executions(stateMachineArn=machine)["executions"]) == 1
    started = json.loads(sfn.describe_execution(executionArn=execution["executionArn"])["input"])
    assert started["reads"] == [
        {
            "r1": f"s3://{INPUT}/runs/run 1/NA12878_R1.fastq.gz",
            "r2": f"s3://{INPUT}/runs/run 1/NA12878_R2.fastq.gz",
        }
    ]
    assert started["staging"] == f"s3://{OUTPUT}/.staging/{name}/"


def test_intake_rejects_a_bad_samplesheet_naming_the_row(aws: Callable[[str], ModuleType]) -> None:
    intake = aws("intake")
    sheet = "sample,fastq_1,fastq_2\nA,A_1.fq.gz,A_2.fq.gz\nB,B_1.fq.gz,\n"
    boto3.client("s3").put_object(Bucket=INPUT, Key="sheets/samplesheet.csv", Body=sheet.encode())
    result = intake.handler(_event("s3_put_samplesheet.json"), CONTEXT)
    assert result["rejected"] == [
        f"s3://{INPUT}/sheets/samplesheet.csv: row 3: fastq_2 is empty (genopipe needs paired-end reads)"
    ]
    assert result["started"] == []


def _batch_queue_and_definition() -> tuple[str, str]:
    batch = boto3.client("batch")
    iam = boto3.client("iam")
    role = iam.create_role(RoleName="batch", AssumeRolePolicyDocument="{}")["Role"]["Arn"]
    environment = batch.create_compute_environment(
        computeEnvironmentName="genopipe-ce", type="UNMANAGED", serviceRole=role
    )
    queue = batch.create_job_queue(
        jobQueueName="genopipe-spot",
        state="ENABLED",
        priority=1,
        computeEnvironmentOrder=[{"order": 1, "computeEnvironment": environment["computeEnvironmentArn"]}],
    )
    definition = batch.register_job_definition(
        jobDefinitionName="genopipe-align",
        type="container",
        parameters={"aligner": "minimap2", "ploidy": "2"},
        containerProperties={
            "image": "genopipe/align:0.1.0",
            "command": ["align", "--sample", "Ref::sample", "--reads", "Ref::reads"],
            "resourceRequirements": [{"type": "VCPU", "value": "8"}, {"type": "MEMORY", "value": "2048"}],
        },
    )
    return queue["jobQueueArn"], definition["jobDefinitionArn"]


def _shard_plan(request: dict[str, Any], shards: int) -> None:
    """What qc leaves for align: `shards/align.json` in the run's staging."""
    uri = request["input"]["staging"] + "shards/align.json"
    s3.write_json(uri, {"shards": [{"read_pairs": 1, "parts": []} for _ in range(shards)]})


def test_submit_then_check_follow_the_batch_job(aws: Callable[[str], ModuleType]) -> None:
    queue, definition = _batch_queue_and_definition()
    request = _event("submit_job.json") | {"job_queue": queue, "job_definition": definition, "step": "align"}
    _shard_plan(request, 1)
    state = aws("submit_job").handler(request, CONTEXT)
    assert (
        state["status"] == "SUBMITTED"
        and state["wait_seconds"] == 10
        and state["job_name"] == "NA12878-align"
        and state["shards"] == 1
    )
    (job,) = boto3.client("batch").describe_jobs(jobs=[state["job_id"]])["jobs"]
    assert job["parameters"]["reference"] == request["input"]["reference"]
    assert "arrayProperties" not in job  # one shard: a plain job
    reads = job["parameters"]["reads"]  # by reference: the submit Lambda staged the pinned lanes
    assert reads == request["input"]["staging"] + "reads.json"
    assert json.loads(s3.read_bytes(reads))[0]["r1"].endswith("runs/run 1/NA12878_R1.fastq.gz")
    checked = aws("check_job").handler(_event("check_job.json") | {"job_id": state["job_id"]}, CONTEXT)
    assert checked["status"] in {"SUBMITTED", "PENDING", "RUNNABLE"} and checked["wait_seconds"] == 20


def test_submit_of_a_scattered_step_with_several_shards_is_an_array_job(
    aws: Callable[[str], ModuleType],
) -> None:
    queue, definition = _batch_queue_and_definition()
    request = _event("submit_job.json") | {"job_queue": queue, "job_definition": definition, "step": "align"}
    _shard_plan(request, 3)
    state = aws("submit_job").handler(request, CONTEXT)
    assert state["shards"] == 3
    (job,) = boto3.client("batch").describe_jobs(jobs=[state["job_id"]])["jobs"]
    assert job["arrayProperties"]["size"] == 3
    # a plain step ignores plans; a scattered one without its plan fails naming it
    assert aws("submit_job").handler(request | {"step": "markdup"}, CONTEXT)["shards"] == 1
    s3.delete([request["input"]["staging"] + "shards/align.json"])
    with pytest.raises(Exception, match=r"shards/align\.json: no such object"):
        aws("submit_job").handler(request | {"capacity": "on-demand", "replaces": state}, CONTEXT)


@contextmanager
def _log_lines(module: ModuleType) -> Iterator[list[dict[str, Any]]]:
    """The JSON log lines a handler module's Powertools logger writes while the block runs."""
    handlers = logging.getLogger(module.logger.service).handlers
    streams = [h for h in handlers if isinstance(h, logging.StreamHandler)]
    buffer, lines = io.StringIO(), []
    saved = [h.setStream(buffer) for h in streams]
    try:
        yield lines
    finally:
        for handler, stream in zip(streams, saved, strict=True):
            handler.setStream(stream)
        lines.extend(json.loads(line) for line in buffer.getvalue().splitlines() if line.startswith("{"))


def test_log_keys_of_one_invocation_do_not_reach_the_next(
    aws: Callable[[str], ModuleType], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Issue 15, case 10: every function logs as service `genopipe` (template Globals), so their
    Powertools loggers share one formatter in a process (the local stack's, or a warm Lambda's)."""
    monkeypatch.setenv("POWERTOOLS_SERVICE_NAME", "genopipe")
    queue, definition = _batch_queue_and_definition()
    submit, check, intake = aws("submit_job"), aws("check_job"), aws("intake")
    request = _event("submit_job.json") | {"job_queue": queue, "job_definition": definition, "step": "align"}
    _shard_plan(request, 1)
    state = submit.handler(request, CONTEXT)
    check.handler(_event("check_job.json") | {"job_id": state["job_id"]}, CONTEXT)
    boto3.client("s3").put_object(Bucket=INPUT, Key="runs/run 1/NA12878_R1.fastq.gz", Body=b"r1")
    with _log_lines(intake) as lines:
        intake.handler(_event("s3_put_r1.json"), CONTEXT)
    assert lines and all(line["function_name"] == CONTEXT.function_name for line in lines)
    leftovers = [sorted({"sample", "step", "job_id", "capacity"} & set(line)) for line in lines]
    assert leftovers == [[] for _ in lines], lines


def test_check_of_an_unknown_job_raises(aws: Callable[[str], ModuleType]) -> None:
    _batch_queue_and_definition()
    with pytest.raises(Exception, match="Batch does not know job 2b3c1f6e"):
        aws("check_job").handler(_event("check_job.json"), CONTEXT)


def test_notify_failure_drops_staging_and_puts_sample_failed(aws: Callable[[str], ModuleType]) -> None:
    request = _event("submit_job.json")["input"]
    staging = request["staging"]
    s3.write_bytes(staging + "NA12878.bam", b"partial")
    sqs = boto3.client("sqs")
    queue_url = sqs.create_queue(QueueName="events")["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    events = boto3.client("events")
    events.put_rule(Name="all", EventPattern=json.dumps({"source": ["genopipe"]}))
    events.put_targets(Rule="all", Targets=[{"Id": "q", "Arn": arn}])
    cause = json.dumps(
        {"errorType": "JobFailed", "errorMessage": "qc job NA12878-qc (j) failed: exit code 1"}
    )
    payload = {
        "outcome": "FAILED",
        "execution_arn": "arn:aws:states:us-east-1:123456789012:execution:genopipe:x",
        "input": request,
        "jobs": {},
        "failure": {"step": "qc", "error": "JobFailed", "cause": cause},
    }
    returned = aws("notify").handler(payload, CONTEXT)
    assert returned["detail_type"] == "Sample Failed"
    assert list(s3.list_prefix(f"s3://{OUTPUT}/")) == []
    (message,) = sqs.receive_message(QueueUrl=queue_url)["Messages"]
    event = json.loads(message["Body"])
    assert event["source"] == "genopipe" and event["detail-type"] == "Sample Failed"
    assert event["detail"]["error"] == {
        "step": "qc",
        "type": "JobFailed",
        "message": "qc job NA12878-qc (j) failed: exit code 1",
    }


def test_notify_success_replaces_the_earlier_set_which_stays_as_noncurrent_versions(
    aws: Callable[[str], ModuleType],
) -> None:
    """Issue 15, case 3: on the versioned output bucket (template.yaml), under the input's folder."""
    boto3.client("s3").put_bucket_versioning(Bucket=OUTPUT, VersioningConfiguration={"Status": "Enabled"})
    request = _event("submit_job.json")["input"]
    published = f"s3://{OUTPUT}/runs/run 1/NA12878/"
    outputs = ["NA12878.bam", "NA12878.bam.bai", "NA12878.vcf.gz", "NA12878.vcf.gz.tbi", "manifest.json"]
    outputs += ["qc/multiqc_report.html", "summary.json"]

    def publish(run: str, fastp: list[str]) -> None:
        staging = request["staging"].replace("0123456789abcdef", run)
        for key in [*outputs, *fastp]:
            body = json.dumps({"read_pairs": 1}) if key == "summary.json" else f"{run} {key}"
            s3.write_bytes(staging + key, body.encode())
        payload = {"outcome": "SUCCEEDED", "execution_arn": "arn:x", "input": request | {"staging": staging}}
        returned = aws("notify").handler(payload, CONTEXT)
        assert returned["detail"]["outputs"]["bam"] == published + "NA12878.bam"

    publish("first-run-2lanes", [f"qc/NA12878_L{n}.fastp.{ext}" for n in (1, 2) for ext in ("json", "html")])
    publish("second-run-1lane", ["qc/NA12878.fastp.json", "qc/NA12878.fastp.html"])
    current = sorted(item.uri.relative_to(S3Uri.parse(published)) for item in s3.list_prefix(published))
    assert "qc/NA12878_L1.fastp.json" not in current and "qc/NA12878.fastp.json" in current
    assert len(current) == 9
    assert s3.read_bytes(published + "NA12878.bam") == b"second-run-1lane NA12878.bam"
    versions = boto3.client("s3").list_object_versions(
        Bucket=OUTPUT, Prefix="runs/run 1/NA12878/qc/NA12878_L1"
    )
    assert [v["IsLatest"] for v in versions["Versions"]] == [False, False]  # json and html, recoverable
    assert list(s3.list_prefix(f"s3://{OUTPUT}/.staging/")) == []


def _batch_jobs(queue: str) -> list[dict[str, Any]]:
    batch = boto3.client("batch")
    statuses = ("SUBMITTED", "PENDING", "RUNNABLE", "STARTING", "RUNNING", "SUCCEEDED", "FAILED")
    return [j for s in statuses for j in batch.list_jobs(jobQueue=queue, jobStatus=s)["jobSummaryList"]]


def test_a_retried_submit_creates_no_second_batch_job(aws: Callable[[str], ModuleType]) -> None:
    queue, definition = _batch_queue_and_definition()
    submit = aws("submit_job")
    request = _event("submit_job.json") | {"job_queue": queue, "job_definition": definition, "step": "align"}
    _shard_plan(request, 1)
    first = submit.handler(request, CONTEXT)
    again = submit.handler(json.loads(json.dumps(request)), CONTEXT)  # the state machine's retry
    assert again == first
    assert [j["jobId"] for j in _batch_jobs(queue)] == [first["job_id"]]
    # another step, or the On-Demand resubmission that replaces this job, is a submission of its own
    qc = submit.handler(request | {"step": "qc"}, CONTEXT)
    replacement = submit.handler(request | {"capacity": "on-demand", "replaces": first}, CONTEXT)
    ids = {j["jobId"] for j in _batch_jobs(queue)}
    assert ids == {first["job_id"], qc["job_id"], replacement["job_id"]} and len(ids) == 3


def test_a_submit_that_failed_after_submitjob_is_adopted_by_its_retry(
    aws: Callable[[str], ModuleType], monkeypatch: pytest.MonkeyPatch
) -> None:
    queue, definition = _batch_queue_and_definition()
    submit = aws("submit_job")
    request = _event("submit_job.json") | {"job_queue": queue, "job_definition": definition, "step": "report"}

    def lost(token: str, job_id: str) -> None:
        raise ConnectionError("the invocation died after SubmitJob")

    with monkeypatch.context() as patched:
        patched.setattr(submit.SUBMISSIONS, "record_submission", lost)
        with pytest.raises(ConnectionError):
            submit.handler(request, CONTEXT)
    (orphan,) = _batch_jobs(queue)
    retried = submit.handler(request, CONTEXT)
    assert retried["job_id"] == orphan["jobId"]
    assert [j["jobId"] for j in _batch_jobs(queue)] == [orphan["jobId"]]
    # another execution's job of the same sample and step is not mistaken for it
    other = request | {"input": request["input"] | {"staging": request["input"]["staging"] + "other/"}}
    assert submit.handler(other, CONTEXT)["job_id"] != orphan["jobId"]
    assert len(_batch_jobs(queue)) == 2


def test_the_intake_and_sweep_handlers_wait_for_a_lane_still_uploading(
    aws: Callable[[str], ModuleType], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The Lambdas as deployed (functions/intake, functions/sweep, their environment): a sample
    whose second lane is still uploading starts with both lanes, not with the first alone."""
    monkeypatch.setenv("LANE_SETTLE_SECONDS", "0")  # no settling: only the upload holds it
    queue = boto3.client("sqs").create_queue(QueueName="intake-failures")["QueueUrl"]
    monkeypatch.setenv("INTAKE_FAILURE_QUEUE_URL", queue)
    intake, sweep = aws("intake"), aws("sweep")
    client = boto3.client("s3")
    part = b"A" * (5 * 1024 * 1024)
    lane = "run/L_S1_L00{}_R{}_001.fastq.gz"
    client.put_object(Bucket=INPUT, Key=lane.format(1, 1), Body=b"r1")
    client.put_object(Bucket=INPUT, Key=lane.format(1, 2), Body=b"r2")
    upload_id = client.create_multipart_upload(Bucket=INPUT, Key=lane.format(2, 1))["UploadId"]
    client.upload_part(Bucket=INPUT, Key=lane.format(2, 1), UploadId=upload_id, PartNumber=1, Body=part)

    held = intake.handler(put_event(lane.format(1, 2)), CONTEXT)
    assert held["started"] == [] and "L_S1_L002_R1_001.fastq.gz (still uploading)" in held["waiting"][0]
    swept = sweep.handler({"mate_timeout_seconds": 60}, CONTEXT)  # its part is seconds old: live
    assert swept["started"] == [] and swept["rejected"] == []

    parts = client.list_parts(Bucket=INPUT, Key=lane.format(2, 1), UploadId=upload_id)["Parts"]
    client.complete_multipart_upload(
        Bucket=INPUT,
        Key=lane.format(2, 1),
        UploadId=upload_id,
        MultipartUpload={"Parts": [{"PartNumber": p["PartNumber"], "ETag": p["ETag"]} for p in parts]},
    )
    assert intake.handler(put_event(lane.format(2, 1)), CONTEXT)["started"] == []  # its R2
    client.put_object(Bucket=INPUT, Key=lane.format(2, 2), Body=b"r2")
    (name,) = intake.handler(put_event(lane.format(2, 2)), CONTEXT)["started"]
    assert name.startswith("L-")


def put_event(key: str) -> dict[str, Any]:
    event = _event("s3_put_r2.json")
    event["Records"][0]["s3"]["object"]["key"] = quote_plus(key, safe="/")
    return event
