"""The local stack fails where AWS's limits would: Lambda Timeout, Batch memory and attempt
duration, SubmitJob sizes, Step Functions payloads, single-request S3 copies; and the buckets are
versioned and have their lifecycle rules, as the template says."""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from boto3.s3.transfer import TransferConfig
from botocore.exceptions import ClientError

from genopipe.aws import s3
from genopipe.contracts import InputObject, Lane, PipelineInput, SubmitRequest
from genopipe.jobs.status import job_spec, pinned_reads, reads_uri
from genopipe.local import limits
from genopipe.local.batch import TIMED_OUT
from genopipe.local.executors import OUT_OF_MEMORY, JobLaunch, NativeRunner
from genopipe.local.server import free_port
from genopipe.local.stack import LocalStack, StackOptions
from genopipe.steps.cli import parse_params


class AllocatingRunner(NativeRunner):
    """The native runner (with its memory limit), running a job that holds `megabytes` of memory
    for `seconds` instead of `genopipe job`."""

    def argv(self, launch: JobLaunch) -> list[str]:
        megabytes, seconds = (int(part) for part in launch.command[:2])
        program = f"import time; block = bytearray({megabytes} * 1024 * 1024); time.sleep({seconds})"
        return [sys.executable, "-c", program]


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalStack]:
    reference = tmp_path_factory.mktemp("limits") / "ref.fa"
    reference.write_text(">chr\nACGT\n")
    running = LocalStack(StackOptions(port=free_port(), reference=reference, sweep_every=0))
    running.batch.runner = AllocatingRunner()
    with running:
        yield running


def job_definition(stack: LocalStack, name: str, memory_mib: int, timeout_s: int | None = None) -> str:
    job_role = stack.deployment.resources["JobRole"][1]
    properties: dict[str, Any] = {
        "jobDefinitionName": name,
        "type": "container",
        "containerProperties": {
            "image": "genopipe/test",
            "command": ["Ref::megabytes", "Ref::seconds"],
            "jobRoleArn": boto3.client("iam").get_role(RoleName=job_role)["Role"]["Arn"],
            "resourceRequirements": [
                {"type": "VCPU", "value": "1"},
                {"type": "MEMORY", "value": str(memory_mib)},
            ],
        },
    }
    if timeout_s is not None:
        properties["timeout"] = {"attemptDurationSeconds": timeout_s}
    return str(boto3.client("batch").register_job_definition(**properties)["jobDefinitionArn"])


def finished(job_id: str, within_s: float = 60.0) -> dict[str, Any]:
    batch = boto3.client("batch")
    deadline = time.monotonic() + within_s
    while time.monotonic() < deadline:
        job = batch.describe_jobs(jobs=[job_id])["jobs"][0]
        if job["status"] in {"SUCCEEDED", "FAILED"}:
            return dict(job)
        time.sleep(0.2)
    raise AssertionError(f"job {job_id} did not finish within {within_s} s")


def submit(stack: LocalStack, definition: str, megabytes: int, seconds: int) -> str:
    response = boto3.client("batch").submit_job(
        jobName="limits",
        jobQueue=stack.deployment.outputs["OnDemandJobQueueArn"],
        jobDefinition=definition,
        parameters={"megabytes": str(megabytes), "seconds": str(seconds)},
    )
    return str(response["jobId"])


def test_a_job_over_its_memory_is_killed_with_aws_reason(stack: LocalStack) -> None:
    definition = job_definition(stack, "limits-memory", memory_mib=64)
    job = finished(submit(stack, definition, megabytes=256, seconds=5))
    assert job["status"] == "FAILED"
    attempt = job["attempts"][-1]
    assert (
        attempt["container"]["reason"]
        == OUT_OF_MEMORY
        == "OutOfMemoryError: Container killed due to memory usage"
    )
    assert attempt["container"]["exitCode"] == 137
    within = finished(submit(stack, definition, megabytes=8, seconds=0))
    assert within["status"] == "SUCCEEDED"


def test_a_job_over_its_attempt_duration_is_terminated(stack: LocalStack) -> None:
    definition = job_definition(stack, "limits-timeout", memory_mib=256, timeout_s=1)
    job = finished(submit(stack, definition, megabytes=1, seconds=30))
    assert job["status"] == "FAILED"
    assert job["attempts"][-1]["statusReason"] == TIMED_OUT
    assert len(job["attempts"]) == 1  # Batch does not retry a timed-out attempt


def test_submit_job_over_the_container_overrides_limit_is_rejected(stack: LocalStack) -> None:
    definition = job_definition(stack, "limits-overrides", memory_mib=64)
    environment = [{"name": f"V{i}", "value": "x" * 100} for i in range(90)]  # ~10 KB
    with pytest.raises(ClientError) as raised:
        boto3.client("batch").submit_job(
            jobName="limits",
            jobQueue=stack.deployment.outputs["OnDemandJobQueueArn"],
            jobDefinition=definition,
            parameters={"megabytes": "1", "seconds": "0"},
            containerOverrides={"environment": environment},
        )
    assert "Container Overrides length must be at most 8192" in str(raised.value)


def test_an_array_size_outside_two_to_ten_thousand_is_refused_as_aws_does(stack: LocalStack) -> None:
    definition = job_definition(stack, "limits-array", memory_mib=64)
    for size in (1, 10_001):
        with pytest.raises(ClientError, match="Array properties size must be between 2 and 10000"):
            boto3.client("batch").submit_job(
                jobName="limits",
                jobQueue=stack.deployment.outputs["OnDemandJobQueueArn"],
                jobDefinition=definition,
                parameters={"megabytes": "1", "seconds": "0"},
                arrayProperties={"size": size},
            )


def test_array_children_run_with_their_index_and_a_failed_child_fails_the_parent(stack: LocalStack) -> None:
    """moto 5.2.5 sets no AWS_BATCH_JOB_ARRAY_INDEX and never fails the parent: the seam does."""
    definition = job_definition(stack, "limits-array-run", memory_mib=64)
    batch = boto3.client("batch")
    seen: list[str] = []
    runner = stack.batch.runner
    original = runner.argv

    def argv(launch: JobLaunch) -> list[str]:
        seen.append(launch.environment.get("AWS_BATCH_JOB_ARRAY_INDEX", "?"))
        if launch.environment.get("AWS_BATCH_JOB_ARRAY_INDEX") == "2":
            return [sys.executable, "-c", "import sys; sys.exit(3)"]
        return original(launch)

    runner.argv = argv  # type: ignore[method-assign]
    try:
        parent = batch.submit_job(
            jobName="limits",
            jobQueue=stack.deployment.outputs["OnDemandJobQueueArn"],
            jobDefinition=definition,
            parameters={"megabytes": "1", "seconds": "0"},
            arrayProperties={"size": 3},
        )["jobId"]
        job = finished(parent)
    finally:
        runner.argv = original  # type: ignore[method-assign]
    assert sorted(seen) == ["0", "1", "2"]
    assert job["status"] == "FAILED" and job["arrayProperties"]["size"] == 3
    assert job["statusReason"] == "Array Child Job failed: 1 of 3 children failed (index 2)"
    children = batch.describe_jobs(jobs=[f"{parent}:{index}" for index in range(3)])["jobs"]
    by_index = {child["arrayProperties"]["index"]: child for child in children}
    assert [by_index[index]["status"] for index in range(3)] == ["SUCCEEDED", "SUCCEEDED", "FAILED"]
    assert by_index[2]["attempts"][-1]["container"]["exitCode"] == 3
    # ListJobs by queue names the parent only (children are listed by arrayJobId), as on AWS
    queue = stack.deployment.outputs["OnDemandJobQueueArn"]
    listed = batch.list_jobs(jobQueue=queue, filters=[{"name": "JOB_NAME", "values": ["limits"]}])
    assert parent in {job["jobId"] for job in listed["jobSummaryList"]}
    assert not any(":" in job["jobId"] for job in listed["jobSummaryList"])
    assert len(batch.list_jobs(arrayJobId=parent)["jobSummaryList"]) == 3


def test_a_list_of_lanes_inline_breaks_the_overrides_limit_and_by_reference_fits(stack: LocalStack) -> None:
    """Batch hands the job's command, parameters substituted, to ECS as an override (8 KiB): 300
    lanes inline did not fit (~30 did); the submit Lambda's job spec passes reads.json's URI."""
    lanes = [
        Lane(
            r1=f"s3://in/run/S1_S1_L{n:03d}_R1_001.fastq.gz", r2=f"s3://in/run/S1_S1_L{n:03d}_R2_001.fastq.gz"
        )
        for n in range(1, 301)
    ]
    pipeline = PipelineInput(
        sample="S1",
        reads=lanes,
        reference="s3://r/g.fa",
        staging="s3://out/.staging/S1-x/",
        output_bucket="out",
        inputs=[
            InputObject(uri=str(uri), etag=f"e{i}")
            for i, lane in enumerate(lanes)
            for uri in (lane.r1, lane.r2)
        ],
        pipeline_version="0.1.0",
    )
    queue = stack.deployment.outputs["OnDemandJobQueueArn"]
    definition = stack.deployment.resources["AlignJobDefinition"][1]
    request = SubmitRequest(
        step="align", capacity="on-demand", job_queue=queue, job_definition=definition, input=pipeline
    )
    spec = job_spec(request)
    inline = {**spec.parameters, "reads": pinned_reads(pipeline).decode()}
    batch = boto3.client("batch")
    with pytest.raises(ClientError, match="exceeds the maximum job payload size"):
        batch.submit_job(jobName=spec.job_name, jobQueue=queue, jobDefinition=definition, parameters=inline)
    # 100 lanes fit the 30 KiB request, not the 8 KiB overrides
    hundred = {**spec.parameters, "reads": json.dumps(json.loads(inline["reads"])[:100])}
    with pytest.raises(ClientError, match="Container Overrides length must be at most 8192"):
        batch.submit_job(jobName=spec.job_name, jobQueue=queue, jobDefinition=definition, parameters=hundred)
    submitted = batch.submit_job(
        jobName=spec.job_name, jobQueue=queue, jobDefinition=definition, parameters=spec.parameters
    )
    batch.terminate_job(jobId=submitted["jobId"], reason="test: submission accepted")
    # a step reads the lanes back from the URI, each pinned to its admitted ETags
    staging = f"s3://{stack.deployment.outputs['OutputBucketName']}/.staging/S1-x/"
    s3.write_bytes(staging + "reads.json", pinned_reads(pipeline))
    arguments = {**spec.parameters, "reads": staging + "reads.json", "staging": staging}
    params = parse_params(argparse.Namespace(**arguments))
    assert len(params.reads) == 300 and params.reads[299].r2_etag == "e299"
    assert reads_uri(pipeline) == "s3://out/.staging/S1-x/reads.json" == spec.parameters["reads"]


def test_a_state_payload_over_256_kb_fails_the_execution(stack: LocalStack) -> None:
    sfn = boto3.client("stepfunctions")
    pipeline = stack.deployment.outputs["StateMachineArn"]
    role = sfn.describe_state_machine(stateMachineArn=pipeline)["roleArn"]
    definition = {
        "StartAt": "Double",
        "States": {"Double": {"Type": "Pass", "Parameters": {"a.$": "$.a", "b.$": "$.a"}, "End": True}},
    }
    machine = sfn.create_state_machine(name="limits-payload", definition=json.dumps(definition), roleArn=role)
    execution = sfn.start_execution(
        stateMachineArn=machine["stateMachineArn"], name="big", input=json.dumps({"a": "x" * 150_000})
    )["executionArn"]
    for _ in range(100):
        described = sfn.describe_execution(executionArn=execution)
        if described["status"] != "RUNNING":
            break
        time.sleep(0.1)
    assert described["status"] == "FAILED"
    assert described.get("error") == "States.DataLimitExceeded"


def test_a_single_copy_over_the_lowered_limit_is_rejected(
    stack: LocalStack, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(limits.LIMITS, "s3_single_copy_bytes", 10)
    source = s3.S3Uri(stack.output_bucket, ".staging/limits/big.bin")
    s3.write_bytes(source, b"x" * 20)
    with pytest.raises(s3.S3Error) as raised:
        s3.copy(source, s3.S3Uri(stack.output_bucket, "limits/big.bin"))
    assert "larger than the maximum allowable size for a copy source: 10" in str(raised.value)
    small = s3.S3Uri(stack.output_bucket, ".staging/limits/small.bin")
    s3.write_bytes(small, b"x" * 10)
    s3.copy(small, s3.S3Uri(stack.output_bucket, "limits/small.bin"))


def test_buckets_are_versioned_and_have_their_lifecycle(stack: LocalStack) -> None:
    client = boto3.client("s3")
    assert client.get_bucket_versioning(Bucket=stack.output_bucket)["Status"] == "Enabled"
    rules = {
        rule["ID"] for rule in client.get_bucket_lifecycle_configuration(Bucket=stack.output_bucket)["Rules"]
    }
    assert rules == {"AbortIncompleteMultipartUploads", "ExpireStaging", "ExpireOldVersions"}
    assert "Status" not in client.get_bucket_versioning(Bucket=stack.input_bucket)


def test_publishing_copies_an_object_over_the_single_copy_limit_in_parts(
    stack: LocalStack, monkeypatch: pytest.MonkeyPatch
) -> None:
    # as deployed: every copy above 64 MiB is multipart, far below S3's 5 GB single-copy limit
    assert s3._COPY.multipart_threshold < limits.ServiceLimits().s3_single_copy_bytes
    # lowered here to sizes a test can write: limit 8 MiB, copies multipart above 6 MiB in 5 MiB parts
    monkeypatch.setattr(limits.LIMITS, "s3_single_copy_bytes", 8 * 1024 * 1024)
    monkeypatch.setattr(
        s3, "_COPY", TransferConfig(multipart_threshold=6 * 1024 * 1024, multipart_chunksize=5 * 1024 * 1024)
    )
    source = s3.S3Uri(stack.output_bucket, ".staging/limits/bam.bin")
    body = bytes(range(256)) * (12 * 4096)  # 12 MiB
    s3.write_bytes(source, body)
    target = s3.copy(source, s3.S3Uri(stack.output_bucket, "limits/bam.bin"))
    assert s3.read_bytes(target) == body
    assert s3.head(target).etag.endswith("-3")  # three parts: a multipart copy, not CopyObject
