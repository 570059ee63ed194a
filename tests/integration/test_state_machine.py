"""The real ASL, deployed from template.yaml into moto, executed by moto's Step Functions
interpreter with the real handlers in-process (genopipe.local.lambdas) and Batch jobs run by the
local executor (genopipe.local.batch) with a scripted runner standing in for the job images."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError
from moto.awslambda.models import LambdaFunction
from moto.batch.models import Job

from genopipe.aws import batch as batch_adapter
from genopipe.aws import s3
from genopipe.aws.ledger import DynamoLedger
from genopipe.aws.s3 import S3Error
from genopipe.aws.staging import S3Staging
from genopipe.cli import main
from genopipe.local import async_invoke, lambdas, waits
from genopipe.local.batch import LocalBatch, SpotReclaims
from genopipe.local.docker import local_image
from genopipe.local.executors import JobLaunch
from genopipe.local.provision import Deployment, deploy
from genopipe.local.template import translate
from genopipe.pipeline import STEPS

ROOT = Path(__file__).resolve().parents[2]
REFERENCE = "s3://genopipe-reference-test/genome.fa"

# what each step leaves in staging (docs/internals.md), for a sample named S1
STEP_OUTPUTS = {
    "validate": ["validate.json"],
    "reference": ["reference.json"],
    "qc": ["qc/S1.fastp.json", "qc/S1.fastp.html", "trimmed/S1_L1_R1.fastq.gz", "trimmed/S1_L1_R2.fastq.gz"],
    "align": [],  # align/S1.<shard>.bam, one per array child
    "markdup": ["S1.bam", "S1.bam.bai"],
    "call": ["S1.vcf.gz", "S1.vcf.gz.tbi"],
    "concat": [],
    "report": ["qc/S1.samtools.stats", "qc/multiqc_report.html", "manifest.json"],
}
SUMMARY = {
    "read_pairs": 2000,
    "percent_mapped": 98.5,
    "mean_depth": 31.2,
    "snps": 12,
    "indels": 3,
    "titv": 2.05,
}


@dataclass
class ScriptedRunner:
    """Stands in for a job image: writes the step's staging outputs, or fails like a step does."""

    failing_step: str | None = None
    failing_index: int | None = None  # only this array child of the failing step fails
    align_shards: int = 1  # the shard plan qc writes
    call_shards: int = 1  # the call plan reference writes
    launches: list[JobLaunch] = field(default_factory=list)
    reads: dict[str, Any] = field(default_factory=dict)  # step -> the lanes its reads.json held

    def run(self, launch: JobLaunch, log: Callable[[str], None], cancel: threading.Event) -> int:
        self.launches.append(launch)
        step, args = launch.command[0], launch.command[1:]
        staging = args[args.index("--staging") + 1]
        self.reads[step] = json.loads(s3.read_bytes(args[args.index("--reads") + 1]))
        index = int(launch.environment.get("AWS_BATCH_JOB_ARRAY_INDEX", "0"))
        if cancel.wait(0.1):  # a Spot reclaim ended this attempt
            return 137
        if step == self.failing_step and self.failing_index in (None, index):
            log(f"genopipe {step}: s3://in/S1_R1.fastq.gz: record 7: sequence and quality lengths differ")
            return 1
        for key in STEP_OUTPUTS[step]:
            s3.write_bytes(staging + key, f"{step} output {key}".encode())
        if step == "qc":
            s3.write_json(staging + "shards/align.json", {"shards": [{"parts": []}] * self.align_shards})
        if step == "align":
            s3.write_bytes(staging + f"align/S1.{index:04d}.bam", b"shard")
        if step == "reference":
            s3.write_json(staging + "shards/call.json", {"shards": [{"regions": []}] * self.call_shards})
        if step == "report":
            s3.write_json(staging + "summary.json", SUMMARY)
        return 0


class ReclaimFirst(SpotReclaims):
    """Reclaims the first `count` attempts of one step's job (Batch retries 3 times on Spot)."""

    def __init__(self, step: str, count: int) -> None:
        super().__init__(0.0, 0)
        self.step, self.left = step, count

    def plan(self, job_name: str, attempt: int) -> tuple[float, str] | None:
        if job_name.endswith(f"-{self.step}") and self.left > 0:
            self.left -= 1
            return 0.02, "i-0123456789abcdef0"
        return None


@dataclass
class Stack:
    outputs: dict[str, str]
    runner: ScriptedRunner
    queue_url: str
    batch: LocalBatch
    deployment: Deployment

    def events(self) -> list[dict[str, Any]]:
        sqs = boto3.client("sqs")
        messages = sqs.receive_message(QueueUrl=self.queue_url, MaxNumberOfMessages=10).get("Messages", [])
        return [json.loads(m["Body"]) for m in messages]


@pytest.fixture
def moto_config() -> dict[str, Any]:
    return {"stepfunctions": {"execute_state_machine": True}}


@pytest.fixture
def stack(moto: None, monkeypatch: pytest.MonkeyPatch) -> Iterator[Stack]:
    monkeypatch.setenv("POWERTOOLS_METRICS_NAMESPACE", "genopipe")
    original_invoke, original_run = LambdaFunction._invoke_lambda, Job.run
    runner = ScriptedRunner()
    translated = translate(ROOT / "template.yaml")
    lambdas.install(translated.code_folders)
    async_invoke.install()
    waits.install(0.01)  # the ASL's waits and retry intervals, at 1/100 of real time
    local_batch = LocalBatch(runner, endpoint_url="http://127.0.0.1:1")
    local_batch.install()
    boto3.client("s3").create_bucket(Bucket="genopipe-reference-test")
    deployment = deploy(translated, {"ReferenceUri": REFERENCE})
    sqs = boto3.client("sqs")
    queue_url = sqs.create_queue(QueueName="genopipe-events")["QueueUrl"]
    queue_arn = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])["Attributes"][
        "QueueArn"
    ]
    events = boto3.client("events")
    events.put_rule(Name="capture", EventPattern=json.dumps({"source": ["genopipe"]}))
    events.put_targets(Rule="capture", Targets=[{"Id": "q", "Arn": queue_arn}])
    try:
        yield Stack(deployment.outputs, runner, queue_url, local_batch, deployment)
    finally:
        waits.uninstall()
        async_invoke.uninstall()
        LambdaFunction._invoke_lambda = original_invoke  # type: ignore[method-assign]
        LocalBatch.uninstall()
        assert Job.run is original_run


def _drop_sample(stack: Stack) -> str:
    """Upload R1 and R2 through S3: the bucket notification runs the intake; returns the execution ARN."""
    client = boto3.client("s3")
    bucket = stack.outputs["InputBucketName"]
    for read in (1, 2):
        client.put_object(Bucket=bucket, Key=f"runs/run 1/S1_R{read}.fastq.gz", Body=b"@r\nACGT\n+\nIIII\n")
    sfn = boto3.client("stepfunctions")
    executions = sfn.list_executions(stateMachineArn=stack.outputs["StateMachineArn"])["executions"]
    assert len(executions) == 1, executions
    return str(executions[0]["executionArn"])


def _wait(arn: str, timeout: float = 90) -> dict[str, Any]:
    sfn = boto3.client("stepfunctions")
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        described = sfn.describe_execution(executionArn=arn)
        if described["status"] != "RUNNING":
            return dict(described)
        time.sleep(0.2)
    raise AssertionError(f"{arn} still running after {timeout} s")


def _history(arn: str) -> list[dict[str, Any]]:
    sfn = boto3.client("stepfunctions")
    return list(sfn.get_execution_history(executionArn=arn, maxResults=1000)["events"])


def test_happy_path_promotes_outputs_and_announces_completion(stack: Stack) -> None:
    arn = _drop_sample(stack)
    assert _wait(arn)["status"] == "SUCCEEDED"
    launched = [launch.command[0] for launch in stack.runner.launches]
    # reference runs side by side with validate -> qc (the Prepare state's branches)
    assert sorted(launched[:3]) == ["qc", "reference", "validate"]
    assert launched[3:] == ["align", "markdup", "call", "concat", "report"]
    assert launched.index("validate") < launched.index("qc")
    first = next(launch for launch in stack.runner.launches if launch.command[0] == "validate")
    reads_uri = first.command[first.command.index("--reads") + 1]  # the lanes travel by reference
    assert reads_uri.endswith("/reads.json")
    reads = stack.runner.reads["validate"]
    assert reads[0]["r1"].endswith("/runs/run 1/S1_R1.fastq.gz")  # the URL-encoded key was decoded
    assert reads[0]["r1_etag"] and reads[0]["r2_etag"]  # pinned to the admitted bytes (issue 15, case 2)
    assert first.command[first.command.index("--reference") + 1] == REFERENCE
    output = stack.outputs["OutputBucketName"]
    keys = sorted(o.uri.key for o in s3.list_prefix(f"s3://{output}/"))
    assert keys == sorted(
        f"runs/run 1/S1/{k}"  # under the folder of the inputs (issue 15, case 3)
        for k in [
            "S1.bam",
            "S1.bam.bai",
            "S1.vcf.gz",
            "S1.vcf.gz.tbi",
            "manifest.json",
            "qc/S1.fastp.json",
            "qc/S1.fastp.html",
            "qc/S1.samtools.stats",
            "qc/multiqc_report.html",
            "qc/summary.json",
        ]
    )  # nothing left under .staging/, nothing unpromotable copied
    (event,) = stack.events()
    assert event["detail-type"] == "Sample Completed"
    detail = event["detail"]
    assert detail["sample"] == "S1" and detail["execution_arn"] == arn and detail["status"] == "SUCCEEDED"
    assert detail["outputs"]["vcf"] == f"s3://{output}/runs/run 1/S1/S1.vcf.gz"
    assert detail["qc"] == SUMMARY
    assert detail["cost"]["spot_vcpu_hours"] > 0 and detail["cost"]["on_demand_vcpu_hours"] == 0


def test_a_duplicate_s3_event_starts_nothing_new(stack: Stack) -> None:
    arn = _drop_sample(stack)
    _wait(arn)
    client = boto3.client("s3")
    bucket = stack.outputs["InputBucketName"]
    body = client.get_object(Bucket=bucket, Key="runs/run 1/S1_R2.fastq.gz")["Body"].read()
    client.put_object(Bucket=bucket, Key="runs/run 1/S1_R2.fastq.gz", Body=body)  # same content, same ETag
    sfn = boto3.client("stepfunctions")
    assert len(sfn.list_executions(stateMachineArn=stack.outputs["StateMachineArn"])["executions"]) == 1


def test_failing_job_sends_sample_failed_and_leaves_no_outputs(stack: Stack) -> None:
    stack.runner.failing_step = "align"
    arn = _drop_sample(stack)
    described = _wait(arn)
    assert described["status"] == "FAILED" and described.get("error") == "SampleFailed"
    launched = [launch.command[0] for launch in stack.runner.launches]
    # validate -> qc runs side by side with reference (the Prepare state's branches); then align
    assert sorted(launched[:3]) == ["qc", "reference", "validate"] and launched[3:] == ["align"]
    assert launched.index("validate") < launched.index("qc")
    assert list(s3.list_prefix(f"s3://{stack.outputs['OutputBucketName']}/")) == []
    (event,) = stack.events()
    assert event["detail-type"] == "Sample Failed"
    error = event["detail"]["error"]
    assert error["step"] == "align" and error["type"] == "JobFailed"
    assert "align job S1-align" in error["message"] and "exit code 1" in error["message"]
    assert "/aws/batch/job stream" in error["message"]


def test_a_failing_branch_of_the_parallel_prepare_state_fails_the_sample(stack: Stack) -> None:
    stack.runner.failing_step = "reference"
    described = _wait(_drop_sample(stack))
    assert described["status"] == "FAILED" and described.get("error") == "SampleFailed"
    launched = [launch.command[0] for launch in stack.runner.launches]
    assert "align" not in launched and sorted(launched) == ["qc", "reference", "validate"]
    assert list(s3.list_prefix(f"s3://{stack.outputs['OutputBucketName']}/")) == []
    (event,) = stack.events()
    assert event["detail-type"] == "Sample Failed"
    assert event["detail"]["error"]["step"] == "reference" and event["detail"]["error"]["type"] == "JobFailed"


def test_reclaimed_spot_job_is_resubmitted_once_on_demand(stack: Stack) -> None:
    stack.batch.reclaims = ReclaimFirst("qc", 3)  # all of Batch's 3 Spot attempts are reclaimed
    arn = _drop_sample(stack)
    assert _wait(arn)["status"] == "SUCCEEDED"
    qc_launches = [launch for launch in stack.runner.launches if launch.command[0] == "qc"]
    assert len(qc_launches) == 4  # 3 Spot attempts + 1 On-Demand
    entered = [
        e["stateEnteredEventDetails"]["name"] for e in _history(arn) if "stateEnteredEventDetails" in e
    ]
    assert entered.count("SubmitQcOnDemand") == 1
    (event,) = stack.events()
    assert event["detail-type"] == "Sample Completed"
    assert event["detail"]["cost"]["on_demand_vcpu_hours"] > 0


def test_job_stuck_runnable_without_spot_capacity_is_cancelled_and_run_on_demand(stack: Stack) -> None:
    # no Spot instance can be had; the Spot queue's time limit (RunnableTimeoutSeconds, 1800 s by
    # default) passes in 1800 x 0.001 = 1.8 s locally
    waits.install(0.001)
    stack.batch.spot_capacity = False
    batch = boto3.client("batch")
    (spot,) = batch.describe_job_queues(jobQueues=[stack.outputs["SpotJobQueueArn"]])["jobQueues"]
    assert spot["jobStateTimeLimitActions"] == [
        {
            "reason": "CAPACITY:INSUFFICIENT_INSTANCE_CAPACITY",
            "state": "RUNNABLE",
            "maxTimeSeconds": 1800,
            "action": "CANCEL",
        }
    ]
    arn = _drop_sample(stack)
    assert _wait(arn)["status"] == "SUCCEEDED"
    # every step ran exactly once, On-Demand, after its Spot job was cancelled unstarted
    launched = sorted(launch.command[0] for launch in stack.runner.launches)
    assert launched == sorted(STEP_OUTPUTS)
    entered = [
        e["stateEnteredEventDetails"]["name"] for e in _history(arn) if "stateEnteredEventDetails" in e
    ]
    assert entered.count("SubmitQcOnDemand") == 1 and entered.count("SubmitValidateOnDemand") == 1
    cancelled = batch.list_jobs(jobQueue=stack.outputs["SpotJobQueueArn"], jobStatus="FAILED")[
        "jobSummaryList"
    ]
    assert {job["jobName"] for job in cancelled} == {f"S1-{step}" for step in STEP_OUTPUTS}
    assert {job["statusReason"] for job in cancelled} == {
        "Canceled by JobStateTimeLimit action due to reason: CAPACITY:INSUFFICIENT_INSTANCE_CAPACITY"
    }
    (event,) = stack.events()
    assert event["detail-type"] == "Sample Completed"
    assert (
        event["detail"]["cost"]["spot_vcpu_hours"] == 0
        and event["detail"]["cost"]["on_demand_vcpu_hours"] > 0
    )


def test_the_network_resources_deploy_where_moto_can_create_them(stack: Stack) -> None:
    """The S3 gateway endpoint goes on the route tables of the stack's VPC (the local stack gives
    the default VPC's); the compute environments' launch template keeps IMDSv2 at one hop."""
    ec2 = boto3.client("ec2")
    (endpoint_id,) = stack.deployment.of_type("AWS::EC2::VPCEndpoint").values()
    (endpoint,) = ec2.describe_vpc_endpoints(VpcEndpointIds=[endpoint_id])["VpcEndpoints"]
    assert endpoint["VpcEndpointType"] == "Gateway" and endpoint["ServiceName"].endswith(".s3")
    tables = ec2.describe_route_tables(Filters=[{"Name": "vpc-id", "Values": [endpoint["VpcId"]]}])
    assert sorted(endpoint["RouteTableIds"]) == sorted(t["RouteTableId"] for t in tables["RouteTables"])
    (template_id,) = stack.deployment.of_type("AWS::EC2::LaunchTemplate").values()
    (version,) = ec2.describe_launch_template_versions(LaunchTemplateId=template_id)["LaunchTemplateVersions"]
    metadata = version["LaunchTemplateData"]["MetadataOptions"]
    assert metadata["HttpTokens"] == "required" and metadata["HttpPutResponseHopLimit"] == 1


def test_the_repositories_are_the_stacks_and_job_images_run_as_the_local_images(stack: Stack) -> None:
    """Repositories are named <stack>/<step>; the local stack is `genopipe`, so a job definition's
    image maps (docker executor) to the image `make images` builds, genopipe/<step>."""
    ecr, batch = boto3.client("ecr"), boto3.client("batch")
    names = sorted(stack.deployment.of_type("AWS::ECR::Repository").values())
    assert names == sorted(f"{stack.deployment.stack_name}/{spec.name}" for spec in STEPS)
    assert len(ecr.describe_repositories(repositoryNames=names)["repositories"]) == len(STEPS)
    definitions = batch.describe_job_definitions(status="ACTIVE")["jobDefinitions"]
    images = {d["jobDefinitionName"]: local_image(d["containerProperties"]["image"]) for d in definitions}
    assert {images[f"genopipe-{spec.name}"].split(":")[0] for spec in STEPS} == {
        spec.repository_name for spec in STEPS
    }


def test_transient_lambda_error_is_retried(stack: Stack) -> None:
    in_process = LambdaFunction._invoke_lambda
    failed = []

    def flaky(self: LambdaFunction, event: Any = None) -> tuple[str, bool, str]:
        if "CheckJob" in self.function_name and not failed:
            failed.append(self.function_name)
            error = {"errorType": "Lambda.ServiceException", "errorMessage": "Rate exceeded (injected)"}
            return json.dumps(error), True, ""
        return in_process(self, event)

    LambdaFunction._invoke_lambda = flaky  # type: ignore[method-assign]
    arn = _drop_sample(stack)
    assert _wait(arn)["status"] == "SUCCEEDED"
    assert failed
    failures = [e for e in _history(arn) if e["type"] == "LambdaFunctionFailed"]
    assert [f["lambdaFunctionFailedEventDetails"]["error"] for f in failures] == ["Lambda.ServiceException"]


def _intake_fails(times: int, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The intake's ledger write raises its first `times` calls, as DynamoDB throttling would."""
    raised: list[str] = []
    real = DynamoLedger.claim

    def claim(self: DynamoLedger, execution: str, sample: str, now: float) -> bool:
        if len(raised) < times:
            raised.append(execution)
            raise RuntimeError("ProvisionedThroughputExceededException (injected)")
        return real(self, execution, sample, now)

    monkeypatch.setattr(DynamoLedger, "claim", claim)
    return raised


def _sweep(stack: Stack) -> dict[str, Any]:
    name = next(
        f["FunctionName"]
        for f in boto3.client("lambda").list_functions()["Functions"]
        if "Sweep" in f["FunctionName"]
    )
    answer = boto3.client("lambda").invoke(FunctionName=name, Payload=b"{}")
    return dict(json.loads(answer["Payload"].read()))


def _failure_queue(stack: Stack) -> str:
    (url,) = [u for u in boto3.client("sqs").list_queues()["QueueUrls"] if "IntakeFailureQueue" in u]
    return str(url)


def test_an_intake_that_keeps_failing_loses_no_upload(stack: Stack, monkeypatch: pytest.MonkeyPatch) -> None:
    raised = _intake_fails(3, monkeypatch)  # the invocation and Lambda's 2 retries
    client, bucket = boto3.client("s3"), stack.outputs["InputBucketName"]
    for read in (1, 2):
        client.put_object(Bucket=bucket, Key=f"runs/run 1/S1_R{read}.fastq.gz", Body=b"@r\nACGT\n+\nIIII\n")
    sfn = boto3.client("stepfunctions")
    assert (
        len(raised) == 3
        and sfn.list_executions(stateMachineArn=stack.outputs["StateMachineArn"])["executions"] == []
    )
    queued = boto3.client("sqs").get_queue_attributes(
        QueueUrl=_failure_queue(stack), AttributeNames=["ApproximateNumberOfMessages"]
    )
    assert queued["Attributes"]["ApproximateNumberOfMessages"] == "1"  # Lambda's destination record

    swept = _sweep(stack)  # the sweep runs the intake again for it

    (execution,) = sfn.list_executions(stateMachineArn=stack.outputs["StateMachineArn"])["executions"]
    assert swept["started"] == [execution["name"]]
    assert _wait(execution["executionArn"])["status"] == "SUCCEEDED"
    assert boto3.client("sqs").receive_message(QueueUrl=_failure_queue(stack)).get("Messages") is None


def test_an_upload_the_intake_can_never_handle_gets_sample_failed(
    stack: Stack, monkeypatch: pytest.MonkeyPatch
) -> None:
    _intake_fails(10, monkeypatch)
    client, bucket = boto3.client("s3"), stack.outputs["InputBucketName"]
    for read in (1, 2):
        client.put_object(Bucket=bucket, Key=f"runs/S2_R{read}.fastq.gz", Body=b"@r\nACGT\n+\nIIII\n")
    swept = _sweep(stack)

    (message,) = swept["rejected"]
    assert message.startswith(f"s3://{bucket}/runs/S2_R2.fastq.gz: the intake failed on this upload")
    assert "ProvisionedThroughputExceededException" in message and "upload it again to retry" in message
    (event,) = stack.events()
    assert event["detail-type"] == "Sample Failed" and event["detail"]["error"]["type"] == "IntakeFailed"


def test_a_throttled_check_is_retried_not_failed(stack: Stack, monkeypatch: pytest.MonkeyPatch) -> None:
    real, throttled = batch_adapter.describe, []

    def describe(job_id: str) -> Any:
        if not throttled:
            throttled.append(job_id)
            error = {"Error": {"Code": "TooManyRequestsException", "Message": "Rate exceeded"}}
            raise ClientError(error, "DescribeJobs")  # type: ignore[arg-type]
        return real(job_id)

    monkeypatch.setattr(batch_adapter, "describe", describe)
    arn = _drop_sample(stack)

    assert _wait(arn)["status"] == "SUCCEEDED" and throttled
    failures = [e for e in _history(arn) if e["type"] == "LambdaFunctionFailed"]
    assert [f["lambdaFunctionFailedEventDetails"]["error"] for f in failures] == ["AwsUnavailable"]
    assert (
        "DescribeJobs: TooManyRequestsException" in failures[0]["lambdaFunctionFailedEventDetails"]["cause"]
    )


def test_a_publish_that_fails_keeps_the_staged_results_and_can_be_rerun(
    stack: Stack, monkeypatch: pytest.MonkeyPatch
) -> None:
    real_copy, failed = S3Staging.copy, []

    def copy(self: S3Staging, source: str, destination: str) -> None:
        if not failed:  # the first copy of the publish fails (a timeout, throttling, ...)
            failed.append(source)
            raise S3Error(source, "SlowDown: Please reduce your request rate (injected)")
        real_copy(self, source, destination)

    monkeypatch.setattr(S3Staging, "copy", copy)
    arn = _drop_sample(stack)
    assert _wait(arn)["status"] == "FAILED"
    (event,) = stack.events()
    error = event["detail"]["error"]
    assert event["detail-type"] == "Sample Failed" and error["type"] == "PublishFailed"
    assert "the staged results are kept" in error["message"] and f"genopipe publish {arn}" in error["message"]
    output = stack.outputs["OutputBucketName"]
    staged = [o.uri.key for o in s3.list_prefix(f"s3://{output}/.staging/")]
    assert any(key.endswith("/S1.bam") for key in staged)  # hours of compute not thrown away

    assert main(["publish", arn]) == 0  # the documented command publishes them

    keys = sorted(o.uri.key for o in s3.list_prefix(f"s3://{output}/"))
    assert "runs/run 1/S1/S1.vcf.gz" in keys and not any(k.startswith(".staging/") for k in keys)
    (completed,) = stack.events()
    assert completed["detail-type"] == "Sample Completed" and completed["detail"]["execution_arn"] == arn


class ReclaimChild(SpotReclaims):
    """Reclaims the first `count` attempts of one child of one step's array job."""

    def __init__(self, step: str, index: int, count: int) -> None:
        super().__init__(0.0, 0)
        self.name, self.left = f"-{step}:{index}", count

    def plan(self, job_name: str, attempt: int) -> tuple[float, str] | None:
        if job_name.endswith(self.name) and self.left > 0:
            self.left -= 1
            return 0.02, "i-0123456789abcdef0"
        return None


def _align_job(arn: str) -> dict[str, Any]:
    """The align job state the state machine carried into NotifySuccess / NotifyFailure."""
    for event in reversed(_history(arn)):
        details = event.get("stateEnteredEventDetails", {})
        if details.get("name") in {"NotifySuccess", "NotifyFailure"}:
            return dict(json.loads(details["input"])["jobs"]["align"])
    raise AssertionError("no Notify state entered")


def test_a_scattered_step_runs_one_array_child_per_shard_of_its_plan(stack: Stack) -> None:
    stack.runner.align_shards = 3
    arn = _drop_sample(stack)
    assert _wait(arn)["status"] == "SUCCEEDED"
    aligns = [launch for launch in stack.runner.launches if launch.command[0] == "align"]
    assert sorted(launch.environment["AWS_BATCH_JOB_ARRAY_INDEX"] for launch in aligns) == ["0", "1", "2"]
    others = [launch for launch in stack.runner.launches if launch.command[0] != "align"]
    assert all("AWS_BATCH_JOB_ARRAY_INDEX" not in launch.environment for launch in others)
    job = _align_job(arn)
    assert job["shards"] == 3 and job["status"] == "SUCCEEDED"
    assert len(job["attempts"]) == 3  # every child's attempt is counted (the cost)
    (parent,) = boto3.client("batch").describe_jobs(jobs=[job["job_id"]])["jobs"]
    assert parent["status"] == "SUCCEEDED" and parent["arrayProperties"]["size"] == 3


def test_a_failed_shard_fails_the_array_job_naming_the_shard(stack: Stack) -> None:
    stack.runner.align_shards, stack.runner.failing_step, stack.runner.failing_index = 3, "align", 1
    arn = _drop_sample(stack)
    assert _wait(arn)["status"] == "FAILED"
    assert "markdup" not in [launch.command[0] for launch in stack.runner.launches]
    (event,) = stack.events()
    error = event["detail"]["error"]
    assert error["step"] == "align" and error["type"] == "JobFailed"
    assert error["message"].startswith("shard 1 of 3: align job S1-align")
    assert "exit code 1" in error["message"] and "record 7" in error["message"]  # the shard's log tail
    job = _align_job(arn)
    (parent,) = boto3.client("batch").describe_jobs(jobs=[job["job_id"]])["jobs"]
    # AWS marks the parent FAILED once every child has ended (moto never does)
    assert parent["status"] == "FAILED" and "index 1" in parent["statusReason"]


def test_a_reclaimed_shard_resubmits_the_array_on_demand(stack: Stack) -> None:
    stack.runner.align_shards = 2
    stack.batch.reclaims = ReclaimChild("align", 1, 3)  # Batch's 3 Spot attempts of child 1
    arn = _drop_sample(stack)
    assert _wait(arn)["status"] == "SUCCEEDED"
    entered = [
        e["stateEnteredEventDetails"]["name"] for e in _history(arn) if "stateEnteredEventDetails" in e
    ]
    assert entered.count("SubmitAlignOnDemand") == 1
    job = _align_job(arn)
    assert job["capacity"] == "on-demand" and job["shards"] == 2
    (spot,) = job["earlier"]
    assert len(spot["attempts"]) == 4  # child 0 once, child 1 three times: all counted
    (event,) = stack.events()
    assert event["detail"]["cost"]["on_demand_vcpu_hours"] > 0
