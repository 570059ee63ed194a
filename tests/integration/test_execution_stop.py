"""A stopped execution takes its Batch jobs with it, and its sample gets an answer.

On the local stack (IAM on): a sample is uploaded, the intake starts its execution, the first
steps' jobs run (real processes that would run for ten minutes), and the execution is stopped
with StopExecution. Step Functions' status change event goes through the template's rule to
TerminateJobsFunction (under its own role), which terminates the jobs and puts Sample Failed.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest

from genopipe.local import execution_events
from genopipe.local.executors import JobLaunch, NativeRunner
from genopipe.local.server import free_port
from genopipe.local.stack import LocalStack, StackOptions
from genopipe.truth.simulate import simulate_sample

pytestmark = [pytest.mark.tools]


class HoldingRunner(NativeRunner):
    """Each job is a real process that writes its pid and sleeps for ten minutes."""

    def __init__(self, pids: Path) -> None:
        self.pids = pids

    def argv(self, launch: JobLaunch) -> list[str]:
        return ["sh", "-c", f"echo $$ > {self.pids / launch.job_id}; exec sleep 600"]


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalStack]:
    folder = tmp_path_factory.mktemp("stop")
    sample = simulate_sample(folder, seed=5, length=2000, depth=3.0, sample="stopme")
    pids = folder / "pids"
    pids.mkdir()
    running = LocalStack(StackOptions(port=free_port(), reference=sample.reference, sweep_every=0))
    running.batch.runner = HoldingRunner(pids)
    with running:
        running.sample = sample  # type: ignore[attr-defined]
        running.pids = pids  # type: ignore[attr-defined]
        yield running


def wait_for(what: str, probe: Any, within_s: float = 60.0) -> Any:
    deadline = time.monotonic() + within_s
    while time.monotonic() < deadline:
        found = probe()
        if found:
            return found
        time.sleep(0.2)
    raise AssertionError(f"{what}: not within {within_s} s")


def jobs_on_queues(stack: LocalStack) -> list[dict[str, Any]]:
    batch = boto3.client("batch")
    ids = [
        summary["jobId"]
        for queue in ("SpotJobQueueArn", "OnDemandJobQueueArn")
        for summary in batch.list_jobs(
            jobQueue=stack.deployment.outputs[queue], filters=[{"name": "JOB_NAME", "values": ["stopme-*"]}]
        )["jobSummaryList"]
    ]
    return list(batch.describe_jobs(jobs=ids)["jobs"]) if ids else []


def test_stopping_an_execution_terminates_its_jobs_and_fails_the_sample(stack: LocalStack) -> None:
    sample = stack.sample  # type: ignore[attr-defined]
    s3 = boto3.client("s3")
    s3.upload_file(str(sample.r1), stack.input_bucket, "stop/stopme_R1.fastq.gz")
    s3.upload_file(str(sample.r2), stack.input_bucket, "stop/stopme_R2.fastq.gz")

    def running_jobs() -> list[dict[str, Any]]:
        jobs = [job for job in jobs_on_queues(stack) if job["status"] == "RUNNING"]
        started = [job for job in jobs if (stack.pids / job["jobId"]).exists()]  # type: ignore[attr-defined]
        return started if len(started) == len(jobs) else []

    running = wait_for("a running job", running_jobs)
    pids = {job["jobId"]: int((stack.pids / job["jobId"]).read_text()) for job in running}  # type: ignore[attr-defined]
    for pid in pids.values():
        os.kill(pid, 0)  # alive
    execution_arn = running[0]["parameters"]["staging"]  # .staging/<execution name>/
    name = execution_arn.rstrip("/").rsplit("/", 1)[1]
    stepfunctions = boto3.client("stepfunctions")
    (machine,) = stack.deployment.of_type("AWS::StepFunctions::StateMachine").values()
    arn = f"{machine.replace(':stateMachine:', ':execution:')}:{name}"
    assert stepfunctions.describe_execution(executionArn=arn)["status"] == "RUNNING"

    stepfunctions.stop_execution(executionArn=arn, error="Operator", cause="stopped by the test")

    def failed_event() -> dict[str, Any] | None:
        for event in stack.events.received:
            if event["detail-type"] == "Sample Failed" and event["detail"]["execution_arn"] == arn:
                return event
        return None

    event = wait_for("the Sample Failed event", failed_event)
    for thread in list(execution_events.deliveries):
        thread.join(timeout=30)
    error = event["detail"]["error"]
    print(json.dumps(event["detail"], indent=1))
    assert error["type"] == "ExecutionAborted"
    assert "(StopExecution)" in error["message"]  # moto drops StopExecution's error and cause
    assert "terminated" in error["message"]
    for job in running:
        assert job["jobName"] in error["message"]
    for job_id, pid in pids.items():
        job = wait_for(f"job {job_id} ended", lambda job_id=job_id: _finished(job_id))
        assert job["status"] == "FAILED", job
        assert f"execution {name} ABORTED" in job["statusReason"], job["statusReason"]
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)  # the process is gone
    assert stepfunctions.describe_execution(executionArn=arn)["status"] == "ABORTED"
    # the sample's answer is the only one: NotifyFailure never ran for it
    answers = [e for e in stack.events.received if e["detail"].get("execution_arn") == arn]
    assert len(answers) == 1


def _finished(job_id: str) -> dict[str, Any] | None:
    job = boto3.client("batch").describe_jobs(jobs=[job_id])["jobs"][0]
    return dict(job) if job["status"] in {"SUCCEEDED", "FAILED"} else None


def test_without_the_lambda_permission_the_rule_delivers_nothing(stack: LocalStack) -> None:
    """As on AWS: EventBridge invokes a function only through its resource policy (the
    AWS::Lambda::Permission SAM adds for the rule); without it the jobs run on."""
    lambda_api = boto3.client("lambda")
    (function,) = [
        f["FunctionName"]
        for f in lambda_api.list_functions()["Functions"]
        if "TerminateJobsFunction" in f["FunctionName"]
    ]
    (statement,) = json.loads(lambda_api.get_policy(FunctionName=function)["Policy"])["Statement"]
    lambda_api.remove_permission(FunctionName=function, StatementId=statement["Sid"])
    sample = stack.sample  # type: ignore[attr-defined]
    s3 = boto3.client("s3")
    s3.upload_file(str(sample.r1), stack.input_bucket, "keep/keepme_R1.fastq.gz")
    s3.upload_file(str(sample.r2), stack.input_bucket, "keep/keepme_R2.fastq.gz")
    batch = boto3.client("batch")

    def all_jobs() -> list[dict[str, Any]]:
        ids = [
            summary["jobId"]
            for queue in ("SpotJobQueueArn", "OnDemandJobQueueArn")
            for summary in batch.list_jobs(
                jobQueue=stack.deployment.outputs[queue],
                filters=[{"name": "JOB_NAME", "values": ["keepme-*"]}],
            )["jobSummaryList"]
        ]
        return list(batch.describe_jobs(jobs=ids)["jobs"]) if ids else []

    def running() -> list[dict[str, Any]]:
        return [job for job in all_jobs() if job["status"] == "RUNNING"]

    jobs = wait_for("a running job", running)
    name = jobs[0]["parameters"]["staging"].rstrip("/").rsplit("/", 1)[1]
    (machine,) = stack.deployment.of_type("AWS::StepFunctions::StateMachine").values()
    arn = f"{machine.replace(':stateMachine:', ':execution:')}:{name}"
    try:
        boto3.client("stepfunctions").stop_execution(executionArn=arn)
        time.sleep(3)
        for thread in list(execution_events.deliveries):
            thread.join(timeout=30)
        assert all(batch.describe_jobs(jobs=[j["jobId"]])["jobs"][0]["status"] == "RUNNING" for j in jobs)
        assert not [e for e in stack.events.received if e["detail"].get("execution_arn") == arn]
    finally:  # every job of the sample (both Prepare branches), so no process outlives the test
        while unfinished := [j for j in all_jobs() if j["status"] not in {"SUCCEEDED", "FAILED"}]:
            for job in unfinished:
                batch.terminate_job(jobId=job["jobId"], reason="test cleanup")
            time.sleep(0.5)
        condition = statement.get("Condition", {}).get("ArnLike", {}).get("AWS:SourceArn")
        lambda_api.add_permission(
            FunctionName=function,
            StatementId=statement["Sid"],
            Action="lambda:InvokeFunction",
            Principal="events.amazonaws.com",
            **({"SourceArn": condition} if condition else {}),
        )
