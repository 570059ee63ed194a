"""`sam local invoke` of the intake Lambda in the stand-in Lambda image (`make sam-local-image`),
with its event from events/, against moto with template.yaml deployed."""

from __future__ import annotations

import gzip
import json
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import unquote_plus

import boto3
import pytest
import yaml
from moto.server import ThreadedMotoServer

from genopipe.local.provision import Deployment, deploy
from genopipe.local.server import free_port
from genopipe.local.template import translate

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


def bridge_address() -> str:
    """This host's address on Docker's default bridge, where SAM's containers reach it (SAM CLI
    1.170 ignores `--docker-network host`)."""
    shown = subprocess.run(["ip", "-4", "-o", "addr", "show", "docker0"], capture_output=True, text=True)
    fields = shown.stdout.split()
    if "inet" not in fields:
        pytest.skip(f"no docker0 bridge address: {shown.stderr.strip() or shown.stdout.strip()}")
    return fields[fields.index("inet") + 1].split("/")[0]


@pytest.fixture
def deployed(monkeypatch: pytest.MonkeyPatch) -> Iterator[Deployment]:
    """moto serving on the bridge address, with template.yaml deployed (state machines are
    recorded, not run: this test is about the Lambda in its image)."""
    address, port = bridge_address(), free_port()
    server = ThreadedMotoServer(ip_address=address, port=port, verbose=False)
    server.start()
    monkeypatch.setenv("AWS_ENDPOINT_URL", f"http://{address}:{port}")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    try:
        yield deploy(translate(REPO / "template.yaml"), {"ReferenceUri": "s3://genopipe-reference/genome.fa"})
    finally:
        server.stop()


def test_sam_local_invoke_intake_starts_the_sample(
    lambda_image: str, built_template: Path, deployed: Deployment, tmp_path: Path
) -> None:
    event = json.loads((REPO / "events" / "s3_put_r2.json").read_text())
    declare_endpoint(built_template, "IntakeFunction")
    s3_record = event["Records"][0]["s3"]
    bucket = s3_record["bucket"]["name"] = deployed.outputs["InputBucketName"]
    s3_record["bucket"]["arn"] = f"arn:aws:s3:::{bucket}"
    r2_key = unquote_plus(s3_record["object"]["key"])
    r1_key = r2_key.replace("_R2", "_R1")
    for key in (r1_key, r2_key):
        body = gzip.compress(b"@r/1\nACGT\n+\nIIII\n")
        boto3.client("s3").put_object(Bucket=bucket, Key=key, Body=body)
    event_file = tmp_path / "event.json"
    event_file.write_text(json.dumps(event))

    # the function's environment as the stack deployed it, plus the endpoint of the moto server
    function = deployed.of_type("AWS::Lambda::Function")["IntakeFunction"]
    configuration = boto3.client("lambda").get_function_configuration(FunctionName=function)
    variables = configuration["Environment"]["Variables"]
    env_file = tmp_path / "env.json"
    endpoint = os.environ["AWS_ENDPOINT_URL"]
    env_file.write_text(json.dumps({"IntakeFunction": {**variables, "AWS_ENDPOINT_URL": endpoint}}))
    argv = [str(SAM), "local", "invoke", "IntakeFunction", "--template", str(built_template)]
    argv += ["--event", str(event_file), "--env-vars", str(env_file)]
    argv += ["--invoke-image", lambda_image, "--skip-pull-image"]
    done = subprocess.run(argv, cwd=REPO, env=SAM_ENV, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, f"sam local invoke failed:\n{done.stderr[-3000:]}"
    summary = json.loads(done.stdout.strip().splitlines()[-1])
    assert "errorType" not in summary, f"{summary}\n{done.stderr[-3000:]}"
    assert len(summary["started"]) == 1, summary

    # the execution really started in the stack, with both mates as its reads
    stepfunctions = boto3.client("stepfunctions")
    machine = variables["STATE_MACHINE_ARN"]
    executions = stepfunctions.list_executions(stateMachineArn=machine)["executions"]
    assert [execution["name"] for execution in executions] == summary["started"]
    started = stepfunctions.describe_execution(executionArn=executions[0]["executionArn"])
    reads = json.dumps(json.loads(started["input"]))
    assert f"s3://{bucket}/{r1_key}" in reads and f"s3://{bucket}/{r2_key}" in reads
