"""Deploy rehearsal: the README's deploy section with the real SAM CLI against moto's endpoints.

`make deploy-rehearsal` (about a minute; `sam build` fetches the layer's wheels through pip):

1. a moto server on `localhost` (moto's CloudFormation reads a `TemplateURL` from its own S3 only
   when the URL's host is `localhost`), `AWS_ENDPOINT_URL` pointing at it;
2. `sam build` with no `python3.12` on PATH (only `.venv-sam/bin`, `/usr/bin`, `/bin`);
3. `sam deploy` as the README gives it (samconfig.toml: `resolve_s3`, CAPABILITY_IAM), with the
   required parameters (ReferenceUri, ImageTag, the network from moto's default VPC);
4. the same with `--no-resolve-s3 --s3-bucket` (a bucket made beforehand), to get past step 3's
   failure and find the next one;
5. which resource types of the template (as written, and as the SAM transform makes it) moto's
   CloudFormation has no model for.

Every step's outcome, the last lines SAM printed and the exception the moto server raised are
written to bench/results/deploy_rehearsal.json and printed. The script never fails because moto
cannot take the stack: that is what it measures. It fails (exit 1) when `sam build` fails.
"""

from __future__ import annotations

import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import boto3
from moto.cloudformation.parsing import get_model_map

ROOT = Path(__file__).resolve().parents[1]
SAM = ROOT / ".venv-sam" / "bin" / "sam"
RESULT = ROOT / "bench" / "results" / "deploy_rehearsal.json"
STACK = "genopipe-rehearsal"
REGION = "us-east-1"


class ServerLog:
    """The moto server's output (a process of its own): the exceptions it raised while answering."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.offset = 0

    def new_errors(self) -> list[str]:
        """`<Exception>: <message> (in moto <module>:<function>)` for each traceback since the last call."""
        text = self.path.read_text(errors="replace")
        fresh, self.offset = text[self.offset :], len(text)
        errors, where = [], ""
        for line in fresh.splitlines():
            if line.strip().startswith('File "') and "/moto/" in line:
                module = line.split("/moto/", 1)[1].split('"', 1)[0]
                where = f"{module}:{line.rsplit(' in ', 1)[-1]}"
            elif where and line and not line.startswith(" ") and ("Error" in line or "Exception" in line):
                errors.append(f"{line.strip()} (in moto {where})")
                where = ""
        return errors


def free_port() -> int:
    import socket

    with socket.socket() as probe:
        probe.bind(("localhost", 0))
        return int(probe.getsockname()[1])


def sam_environment(endpoint: str) -> dict[str, str]:
    path = os.pathsep.join([str(SAM.parent), "/usr/bin", "/bin"])
    if shutil.which("python3.12", path=path):
        raise SystemExit(f"deploy rehearsal: python3.12 is on {path}; the rehearsal needs a PATH without it")
    return {
        "HOME": os.environ.get("HOME", "/tmp"),
        "PATH": path,
        "AWS_ENDPOINT_URL": endpoint,
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": REGION,
        "SAM_CLI_TELEMETRY": "0",
    }


def run(argv: list[str], env: dict[str, str], server_log: ServerLog, timeout: int = 900) -> dict[str, Any]:
    server_log.new_errors()
    start = time.monotonic()
    done = subprocess.run(
        argv, cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout, check=False
    )
    lines = [
        line
        for line in (done.stdout + done.stderr).splitlines()
        if line.strip() and "Uploading to" not in line
    ]
    return {
        "command": " ".join(Path(argv[0]).name if i == 0 else a for i, a in enumerate(argv)),
        "ok": done.returncode == 0,
        "seconds": round(time.monotonic() - start, 1),
        "last_lines": [line for line in lines if not line.startswith(("  File ", "    "))][-6:],
        "moto_errors": server_log.new_errors(),
    }


def network() -> dict[str, str]:
    ec2 = boto3.client("ec2")
    vpc = ec2.describe_vpcs(Filters=[{"Name": "isDefault", "Values": ["true"]}])["Vpcs"][0]["VpcId"]
    subnets = [
        s["SubnetId"] for s in ec2.describe_subnets(Filters=[{"Name": "vpc-id", "Values": [vpc]}])["Subnets"]
    ]
    group = ec2.describe_security_groups(Filters=[{"Name": "group-name", "Values": ["default"]}])
    tables = ec2.describe_route_tables(Filters=[{"Name": "vpc-id", "Values": [vpc]}])["RouteTables"]
    return {
        "VpcId": vpc,
        "SubnetIds": ",".join(subnets[:2]),
        "SecurityGroupIds": group["SecurityGroups"][0]["GroupId"],
        "RouteTableIds": ",".join(t["RouteTableId"] for t in tables),
    }


def with_service_role(template_path: Path) -> str:
    """The built template with each Batch compute environment's ServiceRole spelled out (AWS uses
    Batch's service-linked role when none is named; moto requires one)."""
    from genopipe.local.provision import _BATCH_SERVICE_LINKED_ROLE, _ensure_batch_service_linked_role
    from genopipe.local.template import load

    template = load(template_path)
    for resource in template["Resources"].values():
        if resource["Type"] == "AWS::Batch::ComputeEnvironment":
            resource["Properties"].setdefault("ServiceRole", _BATCH_SERVICE_LINKED_ROLE)
    _ensure_batch_service_linked_role()
    return json.dumps(template)


def unsupported_types(template_path: Path) -> dict[str, list[str]]:
    """Resource types moto's CloudFormation has no model for: in the template as built (SAM's
    `AWS::Serverless::*` reach CloudFormation untransformed: moto has no SAM transform) and after the
    SAM transform (what AWS's CloudFormation would create)."""
    from genopipe.local.template import load, translate

    models = set(get_model_map())
    written = {r["Type"] for r in load(template_path)["Resources"].values()}
    transformed = {r["Type"] for r in translate(ROOT / "template.yaml").template["Resources"].values()}
    return {
        "as_written": sorted(written - models),
        "after_the_sam_transform": sorted(transformed - models),
    }


def main() -> int:
    if not SAM.exists():
        print(f"deploy rehearsal: {SAM} missing: run `make sam-validate` first (it installs the SAM CLI)")
        return 1
    port = free_port()
    endpoint = f"http://localhost:{port}"
    log_file = Path(tempfile.mkdtemp()) / "moto.log"
    with log_file.open("w") as out:
        server = subprocess.Popen(
            [sys.executable, "-m", "moto.server", "-H", "localhost", "-p", str(port)], stdout=out, stderr=out
        )
    server_log = ServerLog(log_file)
    os.environ.update(
        AWS_ENDPOINT_URL=endpoint,
        AWS_ACCESS_KEY_ID="testing",
        AWS_SECRET_ACCESS_KEY="testing",
        AWS_DEFAULT_REGION=REGION,
    )
    for _ in range(100):  # up in about a second
        try:
            boto3.client("s3").list_buckets()
            break
        except Exception:
            time.sleep(0.1)
    report: dict[str, Any] = {
        "date": time.strftime("%Y-%m-%d"),
        "machine": f"{platform.node()} {platform.machine()}",
        "sam_cli": subprocess.run([str(SAM), "--version"], capture_output=True, text=True).stdout.strip(),
        "moto": __import__("moto").__version__,
        "steps": {},
    }
    try:
        env = sam_environment(endpoint)
        # the README's commands, in the checkout: .aws-sam/build, samconfig.toml
        build_dir = ROOT / ".aws-sam" / "build"
        report["steps"]["sam build"] = run([str(SAM), "build"], env, server_log)
        if not report["steps"]["sam build"]["ok"]:
            print(json.dumps(report, indent=1))
            return 1
        s3 = boto3.client("s3")
        s3.create_bucket(Bucket="rehearsal-reference")
        s3.put_object(Bucket="rehearsal-reference", Key="genome.fa", Body=b">chr1\nACGT\n")
        parameters = {"ReferenceUri": "s3://rehearsal-reference/genome.fa", "ImageTag": "0.1.0-rehearsal"}
        parameters.update(network())
        overrides = [f"{key}={value}" for key, value in parameters.items()]
        deploy = [str(SAM), "deploy", "--stack-name", STACK, "--no-confirm-changeset"]
        deploy += ["--parameter-overrides", *overrides]
        report["steps"]["sam deploy (README, resolve_s3)"] = run(deploy, env, server_log)
        s3.create_bucket(Bucket="rehearsal-artifacts")
        own_bucket = [*deploy[:2], "--no-resolve-s3", "--s3-bucket", "rehearsal-artifacts", *deploy[2:]]
        report["steps"]["sam deploy (--s3-bucket)"] = run(own_bucket, env, server_log)
        # past moto's first refusal: the ServiceRole AWS defaults to, spelled out (as the local stack
        # does) in the built template; the same command on a new stack
        built = build_dir / "template.yaml"
        built.write_text(with_service_role(built))
        third = [arg if arg != STACK else f"{STACK}-2" for arg in own_bucket]
        step = "sam deploy (--s3-bucket, compute environments with ServiceRole)"
        report["steps"][step] = run(third, env, server_log)
        cloudformation = boto3.client("cloudformation")
        stacks = {s["StackName"]: s["StackStatus"] for s in cloudformation.list_stacks()["StackSummaries"]}
        report["stacks"] = stacks
        if stacks.get(f"{STACK}-2") == "CREATE_COMPLETE":  # what "complete" holds
            from genopipe.local.template import load

            wanted = load(built)["Resources"]
            made = {
                r["LogicalResourceId"]: r["ResourceType"]
                for r in cloudformation.list_stack_resources(StackName=f"{STACK}-2")["StackResourceSummaries"]
                if r.get("LogicalResourceId")
            }
            report["created_stack"] = {
                "resources_in_template": len(wanted),
                "created": len(made),
                "not_created": sorted(f"{lid} ({r['Type']})" for lid, r in wanted.items() if lid not in made),
                "outputs": sorted(
                    o["OutputKey"]
                    for o in cloudformation.describe_stacks(StackName=f"{STACK}-2")["Stacks"][0].get(
                        "Outputs", []
                    )
                ),
            }
        report["types_moto_cannot_create"] = unsupported_types(build_dir / "template.yaml")
    finally:
        server.terminate()
        server.wait(timeout=10)
    RESULT.write_text(json.dumps(report, indent=1) + "\n")
    print(json.dumps(report, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
