"""Least privilege, proven both ways on the local stack with IAM enforcement on.

- Every action called is granted: each principal's focused calls below (and the e2e runs) pass.
- Every granted action is needed: each grant of each role is removed in turn, the role's focused
  calls run again, and one of them is denied naming that action - unless the template's
  `Metadata: GrantReasons` says in one line why no focused call can show it.

The focused calls are what the principal does in a run, made the way a run makes them: files put
into the input bucket (the S3 notification invokes the intake), Lambda Invoke with the state
machine's payloads (as the state machine's role), and `genopipe job <step>` processes with the job
role's keys. Executions are recorded, not run (moto's plain Step Functions backend), and Batch jobs
end at once, so the calls stay focused.
"""

from __future__ import annotations

import contextlib
import copy
import json
import os
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
import pytest
from moto.core import DEFAULT_ACCOUNT_ID
from moto.iam.models import iam_backends

from genopipe.local import iam
from genopipe.local.executors import JobLaunch
from genopipe.local.server import free_port
from genopipe.local.stack import REFERENCE_BUCKET, LocalStack, StackOptions
from genopipe.local.sweep import run_sweep
from genopipe.local.template import load
from genopipe.truth.simulate import SimulatedSample, simulate_sample

pytestmark = [pytest.mark.tools]

ROOT = Path(__file__).resolve().parents[2]
GENOPIPE = str(Path(sys.executable).with_name("genopipe"))


class InstantRunner:
    """A Batch job attempt that ends at once: exit 1 (with a log line) for jobs named *-fail;
    jobs named *-hold-* run until terminated (at most 60 s)."""

    def run(self, launch: JobLaunch, log: Callable[[str], None], cancel: threading.Event) -> int:
        if "-hold-" in launch.job_name:
            cancel.wait(60)
        log(f"{launch.job_name}: done")
        return 1 if "-fail" in launch.job_name else 0


@dataclass
class Context:
    stack: LocalStack
    sample: SimulatedSample
    roles: dict[str, str]  # logical id of the role -> physical name
    functions: dict[str, str]  # logical id of the function -> physical name

    def resource(self, logical_id: str) -> str:
        return self.stack.deployment.resources[logical_id][1]

    def invoke(self, function: str, payload: dict[str, Any], as_role: str | None = None) -> dict[str, Any]:
        """Lambda Invoke, as `as_role` (the state machine's role) or as the harness."""
        principal = None
        if as_role is not None:
            enforcement = iam.active()
            assert enforcement is not None
            principal = enforcement.role(role_arn(self.roles[as_role]), "states")
        with iam.acting_as(principal):
            response = boto3.client("lambda").invoke(
                FunctionName=self.functions[function], Payload=json.dumps(payload).encode()
            )
        return dict(json.loads(response["Payload"].read() or b"{}"))


def role_arn(name: str) -> str:
    return str(boto3.client("iam").get_role(RoleName=name)["Role"]["Arn"])


def unique(prefix: str) -> str:
    return f"{prefix}{uuid.uuid4().hex[:8]}"


# -- the focused calls, per principal ---------------------------------------------------------------


def upload(ctx: Context, key: str, path: Path) -> None:
    boto3.client("s3").upload_file(str(path), ctx.stack.input_bucket, key)


def intake_calls(ctx: Context) -> None:
    folder = unique("lp-")
    upload(ctx, f"{folder}/S_R1.fastq.gz", ctx.sample.r1)  # waits for its mate
    upload(ctx, f"{folder}/S_R2.fastq.gz", ctx.sample.r2)  # complete: claimed and started
    upload(ctx, f"{folder}/b@d_R1.fastq.gz", ctx.sample.r1)  # a bad name: Sample Failed at once
    put_sheet(ctx, unique("lp-"))  # a sample sheet is read


def put_sheet(ctx: Context, folder: str) -> None:
    """A samplesheet.csv whose files have not arrived."""
    sheet = "sample,fastq_1,fastq_2\nT,T_1.fastq.gz,T_2.fastq.gz\n"
    boto3.client("s3").put_object(
        Bucket=ctx.stack.input_bucket, Key=f"{folder}/samplesheet.csv", Body=sheet.encode()
    )


def sweep_calls(ctx: Context) -> None:
    folder = unique("lp-")
    upload(ctx, f"{folder}/L_S1_L001_R1_001.fastq.gz", ctx.sample.r1)  # lanes settle first
    upload(ctx, f"{folder}/L_S1_L001_R2_001.fastq.gz", ctx.sample.r2)
    upload(ctx, f"{folder}/M_R1.fastq.gz", ctx.sample.r1)  # its mate never comes: its upload
    # started and stalled (ListMultipartUploads shows it, ListParts shows no progress)
    boto3.client("s3").create_multipart_upload(Bucket=ctx.stack.input_bucket, Key=f"{folder}/M_R2.fastq.gz")
    put_sheet(ctx, unique("lp-"))  # the sweep reads the sheet again
    # two uploads whose intake invocation "failed" (Lambda's destination records): the sweep runs
    # the intake again for each (a lone R1 is noted as waiting; a pair reads its last run)
    upload(ctx, f"{folder}/N_R1.fastq.gz", ctx.sample.r1)
    upload(ctx, f"{folder}/P_R1.fastq.gz", ctx.sample.r1)
    upload(ctx, f"{folder}/P_R2.fastq.gz", ctx.sample.r2)
    sqs = boto3.client("sqs")
    (queue,) = [url for url in sqs.list_queues()["QueueUrls"] if "IntakeFailureQueue" in url]
    for key in (f"{folder}/N_R1.fastq.gz", f"{folder}/P_R2.fastq.gz"):
        record = {"s3": {"bucket": {"name": ctx.stack.input_bucket}, "object": {"key": key}}}
        failed = {"requestPayload": {"Records": [record]}, "responsePayload": {"errorType": "Injected"}}
        sqs.send_message(QueueUrl=queue, MessageBody=json.dumps(failed))
    run_sweep(mate_timeout_seconds=0, lane_settle_seconds=0)


def pipeline_input(ctx: Context, sample: str) -> dict[str, Any]:
    bucket = ctx.stack.input_bucket
    output = ctx.stack.output_bucket
    return {
        "sample": sample,
        "reads": [
            {"r1": f"s3://{bucket}/x/{sample}_R1.fastq.gz", "r2": f"s3://{bucket}/x/{sample}_R2.fastq.gz"}
        ],
        "reference": ctx.stack.reference_uri,
        "aligner": "minimap2",
        "ploidy": 2,
        "staging": f"s3://{output}/.staging/{sample}/",
        "output_bucket": output,
        "inputs": [],
        "pipeline_version": "0.1.0",
    }


def submit_request(ctx: Context, sample: str) -> dict[str, Any]:
    request = json.loads((ROOT / "events" / "submit_job.json").read_text())
    request["job_queue"] = ctx.resource("SpotJobQueue")
    request["job_definition"] = ctx.resource("ValidateJobDefinition")
    request["input"] = pipeline_input(ctx, sample)
    return dict(request)


def submit_calls(ctx: Context) -> None:
    request = submit_request(ctx, unique("lp"))
    first = ctx.invoke("SubmitJobFunction", request)
    if "job_id" not in first:
        return
    # an invocation that died between its claim and its record: the retry finds the job by name
    table = ctx.stack.deployment.outputs["IntakeTableName"]
    dynamo = boto3.client("dynamodb")
    for item in dynamo.scan(TableName=table)["Items"]:
        if item.get("job_id", {}).get("S") == first["job_id"]:
            dynamo.update_item(TableName=table, Key={"pk": item["pk"]}, UpdateExpression="REMOVE job_id")
    ctx.invoke("SubmitJobFunction", request)


def check_calls(ctx: Context) -> None:
    request = submit_request(ctx, unique("lp") + "-fail")
    submitted = ctx.invoke("SubmitJobFunction", request)
    job_id = submitted["job_id"]
    batch = boto3.client("batch")
    for _ in range(100):
        if batch.describe_jobs(jobs=[job_id])["jobs"][0]["status"] in {"SUCCEEDED", "FAILED"}:
            break
        time.sleep(0.1)
    ctx.invoke("CheckJobFunction", submitted)  # failed: describes it and quotes its log


def staged(ctx: Context, sample: str) -> str:
    s3 = boto3.client("s3")
    prefix = f".staging/{sample}/"
    summary = {
        "read_pairs": 10,
        "percent_mapped": 99.0,
        "mean_depth": 5.0,
        "snps": 1,
        "indels": 0,
        "titv": 2.0,
    }
    files = {
        "summary.json": json.dumps(summary),
        "manifest.json": "{}",
        f"{sample}.bam": "bam",
        f"{sample}.bam.bai": "bai",
        f"{sample}.vcf.gz": "vcf",
        f"{sample}.vcf.gz.tbi": "tbi",
        "qc/multiqc_report.html": "<html/>",
    }
    for name, body in files.items():
        s3.put_object(Bucket=ctx.stack.output_bucket, Key=prefix + name, Body=body.encode())
    return prefix


def notify_calls(ctx: Context) -> None:
    for outcome in ("SUCCEEDED", "FAILED"):
        sample = unique("lp")
        staged(ctx, sample)
        request: dict[str, Any] = {
            "outcome": outcome,
            "execution_arn": f"arn:aws:states:us-east-1:123456789012:execution:genopipe:{sample}",
            "input": pipeline_input(ctx, sample),
        }
        if outcome == "FAILED":
            request["failure"] = {"Error": "JobFailed", "Cause": "validate: bad FASTQ"}
        ctx.invoke("NotifyFunction", request)


def terminate_jobs_calls(ctx: Context) -> None:
    """An execution stopped while its job runs: the status change event, as the rule delivers it."""
    sample = unique("lp-hold-")
    batch = boto3.client("batch")
    pipeline = pipeline_input(ctx, sample)
    started = int(time.time() * 1000) - 1000
    job_id = batch.submit_job(
        jobName=f"{sample}-validate",
        jobQueue=ctx.resource("SpotJobQueue"),
        jobDefinition=ctx.resource("ValidateJobDefinition"),
        parameters={"sample": sample, "staging": pipeline["staging"]},
    )["jobId"]
    for _ in range(100):
        if batch.describe_jobs(jobs=[job_id])["jobs"][0]["status"] == "RUNNING":
            break
        time.sleep(0.1)
    event = json.loads((ROOT / "events" / "execution_aborted.json").read_text())
    event["detail"].update(input=json.dumps(pipeline), startDate=started, name=sample)
    ctx.invoke("TerminateJobsFunction", event)  # lists, describes, terminates, puts Sample Failed


def state_machine_calls(ctx: Context) -> None:
    for function in ("SubmitJobFunction", "CheckJobFunction", "NotifyFunction"):
        ctx.invoke(function, {}, as_role="PipelineStateMachineRole")  # invalid payloads: invoked all the same


def job_calls(ctx: Context) -> None:
    """validate, reference, qc and align on a tiny sample, as the job role, until one fails."""
    enforcement = iam.active()
    assert enforcement is not None
    keys = enforcement.role(role_arn(ctx.roles["JobRole"]), "batch-job").environment()
    sample = unique("lp")
    folder = unique("lp-")
    upload(ctx, f"{folder}/{sample}_R1.fastq.gz", ctx.sample.r1)
    upload(ctx, f"{folder}/{sample}_R2.fastq.gz", ctx.sample.r2)
    bucket = ctx.stack.input_bucket
    reads = [
        {
            "r1": f"s3://{bucket}/{folder}/{sample}_R1.fastq.gz",
            "r2": f"s3://{bucket}/{folder}/{sample}_R2.fastq.gz",
        }
    ]
    staging = f"s3://{ctx.stack.output_bucket}/.staging/{sample}/"
    # the stack's reference (the job role reads only it) with new content, so that its index cache
    # is built (and written) every time
    reference = str(ctx.stack.reference_uri)
    fasta = ctx.sample.reference.read_text() + f">{sample}\n{'ACGT' * 20}\n"
    key = reference.split("/", 3)[3]
    boto3.client("s3").put_object(Bucket=REFERENCE_BUCKET, Key=key, Body=fasta.encode())
    env = {**os.environ, "AWS_SESSION_TOKEN": "", **keys, "GENOPIPE_THREADS": "1"}
    for step in ("validate", "reference", "qc", "align"):
        argv = [GENOPIPE, "job", step, "--sample", sample, "--reads", json.dumps(reads)]
        argv += ["--reference", reference, "--staging", staging]
        if subprocess.run(argv, env=env, capture_output=True, timeout=300).returncode != 0:
            return


CALLS: dict[str, Callable[[Context], None]] = {
    "IntakeFunctionRole": intake_calls,
    "SweepFunctionRole": sweep_calls,
    "SubmitJobFunctionRole": submit_calls,
    "CheckJobFunctionRole": check_calls,
    "NotifyFunctionRole": notify_calls,
    "PipelineStateMachineRole": state_machine_calls,
    "TerminateJobsFunctionRole": terminate_jobs_calls,
    "JobRole": job_calls,
}


# -- grants --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Grant:
    role: str  # logical id
    policy: str  # inline policy name
    statement: int
    action: str


def inline_policies(role_name: str) -> dict[str, dict[str, Any]]:
    """The role's inline policies as moto holds them (its GetRolePolicy returns the ones
    CloudFormation made as a Python repr, not JSON)."""
    backend = iam_backends[DEFAULT_ACCOUNT_ID]["aws"]
    found = {}
    for name in backend.list_role_policies(role_name):
        _, document = backend.get_role_policy(role_name, name)
        parsed = document if isinstance(document, dict) else json.loads(document)
        found[name] = {"Version": "2012-10-17", **parsed}
    return found


def as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def grants_of(logical_id: str, role_name: str) -> list[Grant]:
    grants = []
    for policy, document in inline_policies(role_name).items():
        for index, statement in enumerate(as_list(document["Statement"])):
            if statement.get("Effect") == "Allow":
                grants += [
                    Grant(logical_id, policy, index, action) for action in as_list(statement["Action"])
                ]
    return grants


@pytest.fixture(scope="module")
def context(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Context]:
    sample = simulate_sample(tmp_path_factory.mktemp("lp"), seed=3, length=3000, depth=5.0, sample="lp")
    stack = LocalStack(StackOptions(port=free_port(), reference=sample.reference, sweep_every=0))
    stack.batch.runner = InstantRunner()
    with stack:
        # executions are recorded, not run: the focused calls stay focused
        boto3.client("stepfunctions")  # (the harness's client; the switch is moto's own API)
        request_config(stack, {"stepfunctions": {"execute_state_machine": False}})
        resources = stack.deployment.resources
        roles = {lid: pid for lid, (kind, pid) in resources.items() if kind == "AWS::IAM::Role"}
        functions = {lid: pid for lid, (kind, pid) in resources.items() if kind == "AWS::Lambda::Function"}
        yield Context(stack, sample, roles, functions)


def request_config(stack: LocalStack, config: dict[str, Any]) -> None:
    import urllib.request

    request = urllib.request.Request(
        f"{stack.endpoint_url}/moto-api/config",
        data=json.dumps(config).encode(),
        method="POST",
        headers={"Content-Type": "application/json"},
    )
    urllib.request.urlopen(request, timeout=10).read()


def decisions_during(call: Callable[[], None]) -> list[iam.Decision]:
    enforcement = iam.active()
    assert enforcement is not None
    start = len(enforcement.decisions)
    call()
    time.sleep(0.2)  # S3 notifications and Batch threads finish their calls
    return enforcement.decisions[start:]


def failing_allowed(calls: Callable[[Context], None], context: Context) -> None:
    """Without one of its grants a principal's calls are expected to fail: the denial is the point."""
    try:
        calls(context)
    except Exception as error:
        print(f"  (calls failed as expected: {type(error).__name__}: {str(error)[:120]})")


def reasons() -> dict[str, dict[str, str]]:
    return dict(load(ROOT / "template.yaml").get("Metadata", {}).get("GrantReasons", {}))


def test_every_action_called_is_granted(context: Context, capsys: pytest.CaptureFixture[str]) -> None:
    called: dict[str, set[str]] = {}
    for logical_id, calls in CALLS.items():
        role = context.roles[logical_id]
        made = decisions_during(lambda calls=calls: calls(context))
        denied = [d for d in made if d.role == role and not d.allowed]
        assert not denied, f"{logical_id}: denied {denied}"
        called[logical_id] = {d.action for d in made if d.role == role}
        assert called[logical_id], f"{logical_id}: its calls made no authorised request"
    with capsys.disabled():
        print(f"\nactions called: {sum(len(a) for a in called.values())}")
        for logical_id, actions in called.items():
            print(f"  {logical_id}: {', '.join(sorted(actions))}")


def test_every_grant_is_needed_or_explained(context: Context, capsys: pytest.CaptureFixture[str]) -> None:
    explained = reasons()
    backend = iam_backends[DEFAULT_ACCOUNT_ID]["aws"]
    unproven, proven, reasoned = [], [], []
    for logical_id, calls in CALLS.items():
        role = context.roles[logical_id]
        original = inline_policies(role)
        for grant in grants_of(logical_id, role):
            document = copy.deepcopy(original[grant.policy])
            statements = as_list(document["Statement"])
            statement = statements[grant.statement]
            remaining = [a for a in as_list(statement["Action"]) if a != grant.action]
            if remaining:
                statement["Action"] = remaining
            else:
                statements.pop(grant.statement)
            document["Statement"] = statements
            if statements:
                backend.put_role_policy(role, grant.policy, json.dumps(document))
            else:  # its only grant: the policy goes
                backend.delete_role_policy(role, grant.policy)
            try:
                made = decisions_during(lambda calls=calls: failing_allowed(calls, context))
            finally:
                backend.put_role_policy(role, grant.policy, json.dumps(original[grant.policy]))
            if any(d.role == role and not d.allowed and d.action == grant.action for d in made):
                proven.append(grant)
            elif grant.action in explained.get(logical_id, {}):
                reasoned.append(grant)
            else:
                unproven.append(grant)
    with capsys.disabled():
        total = len(proven) + len(reasoned) + len(unproven)
        print(
            f"\nleast privilege: {len(CALLS)} principals, {total} grants, "
            f"{len(proven)} proven needed, {len(reasoned)} explained, {len(unproven)} neither"
        )
        for grant in proven:
            print(
                f"  needed     {grant.role}: {grant.action} (statement {grant.statement} of {grant.policy})"
            )
        for grant in reasoned:
            print(f"  explained  {grant.role}: {grant.action}: {explained[grant.role][grant.action]}")
    assert not unproven, (
        "granted but neither needed by a focused call nor explained in GrantReasons: "
        + ", ".join(f"{g.role}: {g.action}" for g in unproven)
    )


@contextlib.contextmanager
def without(context: Context, role_logical_id: str, action: str) -> Iterator[None]:
    """The role's inline policies without `action`, as if template.yaml did not grant it."""
    backend = iam_backends[DEFAULT_ACCOUNT_ID]["aws"]
    role = context.roles[role_logical_id]
    original = inline_policies(role)
    for name, document in original.items():
        reduced = copy.deepcopy(document)
        for statement in as_list(reduced["Statement"]):
            statement["Action"] = [a for a in as_list(statement["Action"]) if a != action]
        reduced["Statement"] = [s for s in as_list(reduced["Statement"]) if s["Action"]]
        if reduced["Statement"]:
            backend.put_role_policy(role, name, json.dumps(reduced))
        else:
            backend.delete_role_policy(role, name)
    try:
        yield
    finally:
        for name, document in original.items():
            backend.put_role_policy(role, name, json.dumps(document))


def test_without_batch_submit_job_the_submit_fails_naming_it(context: Context) -> None:
    with without(context, "SubmitJobFunctionRole", "batch:SubmitJob"):
        answer = context.invoke("SubmitJobFunction", submit_request(context, unique("lp")))
    assert answer.get("errorType") == "ClientError", answer
    assert "AccessDenied" in answer["errorMessage"]
    assert "is not authorized to perform: batch:SubmitJob" in answer["errorMessage"]


def test_without_the_job_roles_put_object_a_step_fails_naming_it(context: Context) -> None:
    enforcement = iam.active()
    assert enforcement is not None
    keys = enforcement.role(role_arn(context.roles["JobRole"]), "batch-job").environment()
    sample, folder = unique("lp"), unique("lp-")
    upload(context, f"{folder}/{sample}_R1.fastq.gz", context.sample.r1)
    upload(context, f"{folder}/{sample}_R2.fastq.gz", context.sample.r2)
    bucket = context.stack.input_bucket
    reads = [
        {
            "r1": f"s3://{bucket}/{folder}/{sample}_R1.fastq.gz",
            "r2": f"s3://{bucket}/{folder}/{sample}_R2.fastq.gz",
        }
    ]
    argv = [GENOPIPE, "job", "validate", "--sample", sample, "--reads", json.dumps(reads)]
    argv += ["--reference", str(context.stack.reference_uri)]
    argv += ["--staging", f"s3://{context.stack.output_bucket}/.staging/{sample}/"]
    with without(context, "JobRole", "s3:PutObject"):
        done = subprocess.run(
            argv, env={**os.environ, "AWS_SESSION_TOKEN": "", **keys}, capture_output=True, text=True
        )
    assert done.returncode == 1
    assert "access denied" in done.stderr
    assert "is not authorized to perform: s3:PutObject" in done.stderr, done.stderr
