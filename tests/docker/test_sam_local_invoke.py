"""`sam local invoke` of the intake Lambda in the stand-in Lambda image (`make sam-local-image`),
with its event from events/, against the local stack's moto server."""

from __future__ import annotations

import gzip
import json
import os
import subprocess
import urllib.request
from pathlib import Path
from urllib.parse import unquote_plus

import boto3
import pytest
import yaml

from genopipe.local.server import free_port
from genopipe.local.stack import LocalStack, StackOptions

pytestmark = [pytest.mark.docker]

REPO = Path(__file__).resolve().parents[2]
SAM = REPO / ".venv-sam" / "bin" / "sam"
SAM_ENV = {**os.environ, "SAM_CLI_TELEMETRY": "0", "AWS_DEFAULT_REGION": "us-east-1"}


@pytest.fixture(scope="module")
def built_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """`sam build` of the real template (in source: SAM would otherwise copy the whole tree)."""
    if not SAM.exists():
        pytest.skip(f"{SAM} missing: `make sam-validate` installs aws-sam-cli into .venv-sam")
    build_dir = tmp_path_factory.mktemp("sam") / "build"
    done = subprocess.run(
        [str(SAM), "build", "--build-in-source", "--build-dir", str(build_dir)],
        cwd=REPO,
        env=SAM_ENV,
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, f"sam build failed:\n{done.stdout[-2000:]}\n{done.stderr[-2000:]}"
    return build_dir / "template.yaml"


def declare_endpoint(template: Path, function: str) -> None:
    """SAM passes a function only the variables its template declares: declare AWS_ENDPOINT_URL
    (in the build output only; on AWS there is no such variable)."""
    document = yaml.safe_load(template.read_text())
    variables = document["Resources"][function]["Properties"].setdefault("Environment", {})
    variables.setdefault("Variables", {})["AWS_ENDPOINT_URL"] = ""
    template.write_text(yaml.safe_dump(document, sort_keys=False))


def test_sam_local_invoke_intake_starts_the_sample(
    lambda_image: str, built_template: Path, tmp_path: Path
) -> None:
    event = json.loads((REPO / "events" / "s3_put_r2.json").read_text())
    declare_endpoint(built_template, "IntakeFunction")
    with LocalStack(StackOptions(port=free_port())) as stack:
        # record executions without running them: this test is about the Lambda in its image
        request = urllib.request.Request(
            f"{stack.endpoint_url}/moto-api/config",
            data=json.dumps({"stepfunctions": {"execute_state_machine": False}}).encode(),
            method="POST",
            headers={"Content-Type": "application/json"},
        )
        urllib.request.urlopen(request, timeout=10).close()
        s3_record = event["Records"][0]["s3"]
        bucket = s3_record["bucket"]["name"] = stack.input_bucket
        s3_record["bucket"]["arn"] = f"arn:aws:s3:::{bucket}"
        r2_key = unquote_plus(s3_record["object"]["key"])
        r1_key = r2_key.replace("_R2", "_R1")
        for key in (r1_key, r2_key):
            boto3.client("s3").put_object(
                Bucket=bucket, Key=key, Body=gzip.compress(b"@r/1\nACGT\n+\nIIII\n")
            )
        event_file = tmp_path / "event.json"
        event_file.write_text(json.dumps(event))

        # the function's environment as the stack deployed it, plus the endpoint of the moto server
        function = stack.deployment.of_type("AWS::Lambda::Function")["IntakeFunction"]
        configuration = boto3.client("lambda").get_function_configuration(FunctionName=function)
        variables = configuration["Environment"]["Variables"]
        env_file = tmp_path / "env.json"
        env_file.write_text(
            json.dumps({"IntakeFunction": {**variables, "AWS_ENDPOINT_URL": stack.endpoint_url}})
        )
        argv = [str(SAM), "local", "invoke", "IntakeFunction", "--template", str(built_template)]
        argv += ["--event", str(event_file), "--env-vars", str(env_file), "--docker-network", "host"]
        argv += ["--invoke-image", lambda_image, "--skip-pull-image"]
        done = subprocess.run(
            argv,
            cwd=REPO,
            env=SAM_ENV,
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert done.returncode == 0, f"sam local invoke failed:\n{done.stderr[-3000:]}"
        summary = json.loads(done.stdout.strip().splitlines()[-1])
        assert summary["rejected"] == [] and summary["waiting"] == [], summary
        assert len(summary["started"]) == 1, summary

        # the execution really started in the stack, with both mates as its reads
        machine = variables["STATE_MACHINE_ARN"]
        executions = boto3.client("stepfunctions").list_executions(stateMachineArn=machine)["executions"]
        assert [execution["name"] for execution in executions] == summary["started"]
        started = boto3.client("stepfunctions").describe_execution(executionArn=executions[0]["executionArn"])
        reads = json.dumps(json.loads(started["input"]))
        assert f"s3://{bucket}/{r1_key}" in reads and f"s3://{bucket}/{r2_key}" in reads
