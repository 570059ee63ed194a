"""The local stack fails where AWS's limits would: Lambda Timeout, Batch memory and attempt
duration, SubmitJob sizes, Step Functions payloads, single-request S3 copies; and the buckets are
versioned and have their lifecycle rules, as the template says."""

from __future__ import annotations

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
from genopipe.local import limits
from genopipe.local.batch import TIMED_OUT
from genopipe.local.executors import OUT_OF_MEMORY, JobLaunch, NativeRunner
from genopipe.local.server import free_port
from genopipe.local.stack import LocalStack, StackOptions


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
