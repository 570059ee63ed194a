"""The security baseline (issue 6), asserted on `template.yaml` itself and on the plain
CloudFormation the SAM transform makes of it (the IAM roles SAM writes for policy templates)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from genopipe.local.template import load, translate

ROOT = Path(__file__).resolve().parents[2]
TEMPLATE = ROOT / "template.yaml"

# The only actions granted on Resource "*", and why AWS leaves no narrower choice:
RESOURCE_STAR_ALLOWED = {
    # DescribeJobs has no resource-level permissions (Batch service authorization reference)
    "batch:DescribeJobs",
    # nor has ListJobs (submit_job finds the job of a retried submission by name)
    "batch:ListJobs",
    # X-Ray trace segments are not resources (SAM adds these for `Tracing: Active`)
    "xray:PutTraceSegments",
    "xray:PutTelemetryRecords",
    "xray:GetSamplingRules",
    "xray:GetSamplingTargets",
    "xray:GetSamplingStatisticSummaries",
}
# managed policies attached to generated roles: the Lambda basic execution role (its own log
# group), X-Ray write-only (Tracing: Active), and the ECS agent role for Batch instances
MANAGED_ALLOWED = {
    "AWSLambdaBasicExecutionRole",
    "AWSXrayWriteOnlyAccess",
    "AWSXRayDaemonWriteAccess",
    "AmazonEC2ContainerServiceforEC2Role",
}


@pytest.fixture(scope="module")
def sam() -> dict[str, Any]:
    return load(TEMPLATE)


@pytest.fixture(scope="module")
def cfn() -> dict[str, Any]:
    return translate(TEMPLATE).template


def resources(template: dict[str, Any], kind: str) -> dict[str, dict[str, Any]]:
    return {name: r.get("Properties", {}) for name, r in template["Resources"].items() if r["Type"] == kind}


def as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def statements(cfn: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    """Every IAM statement of every role and inline policy in the translated template."""
    for name, properties in resources(cfn, "AWS::IAM::Role").items():
        for policy in properties.get("Policies", []):
            for statement in as_list(policy["PolicyDocument"]["Statement"]):
                yield f"{name}/{policy.get('PolicyName')}", statement
    for name, properties in resources(cfn, "AWS::IAM::Policy").items():
        for statement in as_list(properties["PolicyDocument"]["Statement"]):
            yield name, statement


def test_every_bucket_blocks_public_access_and_is_encrypted(sam: dict[str, Any]) -> None:
    buckets = resources(sam, "AWS::S3::Bucket")
    assert set(buckets) >= {"InputBucket", "OutputBucket"}
    for name, properties in buckets.items():
        block = properties["PublicAccessBlockConfiguration"]
        assert all(
            block[flag] is True
            for flag in ("BlockPublicAcls", "BlockPublicPolicy", "IgnorePublicAcls", "RestrictPublicBuckets")
        ), name
        (rule,) = properties["BucketEncryption"]["ServerSideEncryptionConfiguration"]
        assert rule["ServerSideEncryptionByDefault"]["SSEAlgorithm"] in {"AES256", "aws:kms"}, name
        assert properties["OwnershipControls"]["Rules"][0]["ObjectOwnership"] == "BucketOwnerEnforced", name


def test_the_output_bucket_is_versioned(sam: dict[str, Any]) -> None:
    assert resources(sam, "AWS::S3::Bucket")["OutputBucket"]["VersioningConfiguration"]["Status"] == "Enabled"


def test_every_bucket_has_a_tls_only_policy(sam: dict[str, Any]) -> None:
    policies = {
        p["Bucket"]["Ref"]: p["PolicyDocument"] for p in resources(sam, "AWS::S3::BucketPolicy").values()
    }
    for bucket in resources(sam, "AWS::S3::Bucket"):
        document = policies.get(bucket)
        assert document is not None, f"{bucket} has no bucket policy"
        denies = [
            s
            for s in as_list(document["Statement"])
            if s["Effect"] == "Deny"
            and s.get("Principal") == "*"
            and s["Action"] in ("s3:*", ["s3:*"])
            and s.get("Condition", {}).get("Bool", {}).get("aws:SecureTransport") in ("false", False)
        ]
        assert denies, f"{bucket}: no Deny of s3:* when aws:SecureTransport is false"
        covered = {str(r) for r in as_list(denies[0]["Resource"])}
        assert any("/*" in r for r in covered) and len(covered) == 2, (
            f"{bucket}: deny must cover bucket and objects"
        )


def test_the_intake_ledger_is_encrypted_and_recoverable(sam: dict[str, Any]) -> None:
    for name, properties in resources(sam, "AWS::DynamoDB::Table").items():
        assert properties["SSESpecification"]["SSEEnabled"] is True, name
        assert properties["PointInTimeRecoverySpecification"]["PointInTimeRecoveryEnabled"] is True, name


def test_no_statement_allows_every_action_or_all_of_s3(cfn: dict[str, Any]) -> None:
    found = list(statements(cfn))
    assert len(found) > 10  # the roles SAM generated are really in there
    for where, statement in found:
        if statement.get("Effect") != "Allow":
            continue
        actions = as_list(statement.get("Action", []))
        assert "*" not in actions, f"{where}: Action '*'"
        if "s3:*" in actions:
            assert "*" not in as_list(statement["Resource"]), f"{where}: s3:* on '*'"
        assert "s3:*" not in actions, f"{where}: s3:* (list the actions it needs)"


def test_resource_star_only_where_aws_requires_it(cfn: dict[str, Any]) -> None:
    for where, statement in statements(cfn):
        if statement.get("Effect") == "Allow" and "*" in as_list(statement.get("Resource", [])):
            extra = set(as_list(statement["Action"])) - RESOURCE_STAR_ALLOWED
            assert not extra, f"{where}: {sorted(extra)} on Resource '*'"


def test_managed_policies_are_the_expected_few(cfn: dict[str, Any]) -> None:
    attached = 0
    for name, properties in resources(cfn, "AWS::IAM::Role").items():
        for arn in properties.get("ManagedPolicyArns", []):
            text = arn if isinstance(arn, str) else str(arn.get("Fn::Sub"))
            assert text.rsplit("/", 1)[-1] in MANAGED_ALLOWED, f"{name}: unexpected managed policy {text}"
            attached += 1
    assert attached >= 6


def test_job_definitions_are_not_privileged_and_not_root(sam: dict[str, Any]) -> None:
    definitions = resources(sam, "AWS::Batch::JobDefinition")
    assert len(definitions) == 6
    for name, properties in definitions.items():
        container = properties["ContainerProperties"]
        assert container.get("Privileged", False) is False, name
        assert str(container.get("User", "root")) not in {"root", "0", ""}, f"{name}: runs as root"
        assert "JobRoleArn" in container, f"{name}: no job role (it would get the instance's)"
        assert properties["RetryStrategy"]["Attempts"] >= 2, name


def test_images_do_not_end_as_root() -> None:
    dockerfiles = sorted((ROOT / "containers").glob("*/Dockerfile"))
    steps = [d for d in dockerfiles if d.parent.name not in {"lambda-python"}]
    assert len(steps) >= 7  # base + one per step
    for dockerfile in steps:
        users = [line.split()[1] for line in dockerfile.read_text().splitlines() if line.startswith("USER ")]
        assert users and users[-1] not in {"root", "0"}, (
            f"{dockerfile}: the final USER is {users[-1:] or 'unset'}"
        )


def test_repositories_scan_and_are_immutable(sam: dict[str, Any]) -> None:
    for name, properties in resources(sam, "AWS::ECR::Repository").items():
        assert properties["ImageTagMutability"] == "IMMUTABLE", name
        assert properties["ImageScanningConfiguration"]["ScanOnPush"] is True, name


def test_no_broad_crud_policy_templates(sam: dict[str, Any]) -> None:
    """S3CrudPolicy / S3ReadPolicy / DynamoDBCrudPolicy bring actions no function calls (lifecycle,
    ACLs, Scan, Batch*): each function names its actions (issue 11, least privilege)."""
    for name, properties in resources(sam, "AWS::Serverless::Function").items():
        templates = {
            key for policy in properties.get("Policies", []) if isinstance(policy, dict) for key in policy
        }
        assert not templates & {"S3CrudPolicy", "S3ReadPolicy", "DynamoDBCrudPolicy"}, name


def test_a_tagged_submit_job_is_allowed_to_tag_the_job(cfn: dict[str, Any]) -> None:
    granted = {
        action
        for name, statement in statements(cfn)
        if name.startswith("SubmitJobFunctionRole")
        for action in as_list(statement.get("Action", []))
    }
    assert {"batch:SubmitJob", "batch:TagResource"} <= granted


def test_the_job_role_deletes_nothing_and_lists_only_staging_in_the_output_bucket(
    cfn: dict[str, Any],
) -> None:
    job_statements = [statement for name, statement in statements(cfn) if name.startswith("JobRole")]
    assert job_statements
    for statement in job_statements:
        actions = as_list(statement["Action"])
        assert "s3:DeleteObject" not in actions
        resources_ = [str(r) for r in as_list(statement["Resource"])]
        if "s3:ListBucket" in actions and any("-output-" in r for r in resources_):
            assert statement["Condition"]["StringLike"]["s3:prefix"] in ([".staging/*"], [".references/*"])


def test_the_job_role_writes_only_staging_and_the_reference_cache(cfn: dict[str, Any]) -> None:
    """The reference's bucket may be public or another account's: it is only read (issue 12); the
    index cache is the stack's, `.references/` in the output bucket."""
    writes = [
        resource["Fn::Sub"]  # "arn:...:s3:::${AWS::StackName}-output-...-${AWS::Region}/<prefix>"
        for name, statement in statements(cfn)
        if name.startswith("JobRole") and "s3:PutObject" in as_list(statement["Action"])
        for resource in as_list(statement["Resource"])
    ]
    assert sorted(write.rsplit("}", 1)[-1] for write in writes) == ["/.references/*", "/.staging/*"], writes
    assert all("}-output-${" in write for write in writes), writes


def test_both_compute_environments_launch_with_imdsv2_and_one_hop(sam: dict[str, Any]) -> None:
    """A job's container sits one hop behind its instance: with a hop limit of 1 it cannot fetch
    an IMDSv2 token, so it cannot read the instance role's credentials (issue 12)."""
    templates = resources(sam, "AWS::EC2::LaunchTemplate")
    environments = resources(sam, "AWS::Batch::ComputeEnvironment")
    assert set(environments) == {"SpotComputeEnvironment", "OnDemandComputeEnvironment"}
    for name, properties in environments.items():
        launch = properties["ComputeResources"]["LaunchTemplate"]
        (logical_id,) = launch["LaunchTemplateId"].values()  # {"Ref": ...}
        assert launch["Version"] == {"Fn::GetAtt": [logical_id, "LatestVersionNumber"]}, name
        metadata = templates[logical_id]["LaunchTemplateData"]["MetadataOptions"]
        assert metadata["HttpTokens"] == "required" and metadata["HttpPutResponseHopLimit"] == 1, name
        assert metadata.get("HttpEndpoint", "enabled") == "enabled", name  # the ECS agent needs it


def test_s3_traffic_takes_a_gateway_endpoint_unless_one_exists(sam: dict[str, Any]) -> None:
    (endpoint,) = (r for r in sam["Resources"].values() if r["Type"] == "AWS::EC2::VPCEndpoint")
    assert endpoint["Condition"] == "CreateS3Endpoint"
    assert sam["Conditions"]["CreateS3Endpoint"] == {"Fn::Equals": [{"Ref": "CreateS3Endpoint"}, "true"]}
    assert sam["Parameters"]["CreateS3Endpoint"]["Default"] == "true"
    properties = endpoint["Properties"]
    assert properties["VpcEndpointType"] == "Gateway"
    assert properties["ServiceName"] == {"Fn::Sub": "com.amazonaws.${AWS::Region}.s3"}
    assert properties["VpcId"] == {"Ref": "VpcId"} and properties["RouteTableIds"] == {"Ref": "RouteTableIds"}
    # an endpoint on no route table would carry nothing: the stack refuses to create one so
    (assertion,) = sam["Rules"]["S3EndpointNeedsRouteTables"]["Assertions"]
    assert assertion["Assert"] == {"Fn::Not": [{"Fn::Contains": [{"Ref": "RouteTableIds"}, ""]}]}


def test_both_job_queues_cancel_a_job_stuck_runnable_without_capacity(sam: dict[str, Any]) -> None:
    queues = resources(sam, "AWS::Batch::JobQueue")
    assert set(queues) == {"SpotJobQueue", "OnDemandJobQueue"}
    for name, properties in queues.items():
        (action,) = properties["JobStateTimeLimitActions"]
        assert action == {
            "Action": "CANCEL",
            "State": "RUNNABLE",
            "MaxTimeSeconds": {"Ref": "RunnableTimeoutSeconds"},
            "Reason": "CAPACITY:INSUFFICIENT_INSTANCE_CAPACITY",
        }, name
    limit = sam["Parameters"]["RunnableTimeoutSeconds"]
    assert (limit["MinValue"], limit["MaxValue"]) == (600, 86400)  # Batch's bounds
