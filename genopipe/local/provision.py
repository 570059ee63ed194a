"""Deploy the translated template into moto, through moto's CloudFormation.

moto's CloudFormation creates what it supports (buckets, Lambda functions with their environment,
IAM, the state machine, Batch compute environments / queues / job definitions, event rules, log
groups, queues ...). Properties it ignores are applied here, from the same template:
`DefinitionSubstitutions` (turned into the `Fn::Sub` CloudFormation itself performs), a
bucket's `NotificationConfiguration` (resolved with moto's own intrinsic resolver after the stack
exists, then set through the S3 API), and a job queue's `JobStateTimeLimitActions` (set on moto's
queue, shown by DescribeJobQueues, acted on by genopipe.local.batch). State machines are then
handed to moto's ASL interpreter.
Resource types moto cannot create are dropped with a debug log; the stack's outputs and physical
ids come back as `Deployment`.
"""

from __future__ import annotations

import copy
import importlib.metadata
import io
import json
import logging
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
from moto.batch.models import JobQueue, batch_backends
from moto.cloudformation.models import cloudformation_backends
from moto.cloudformation.parsing import clean_json, get_model_map
from moto.core import DEFAULT_ACCOUNT_ID
from moto.stepfunctions.models import stepfunctions_backends

from genopipe.local.template import CODE_BUCKET, Translated

log = logging.getLogger(__name__)

STACK_NAME = "genopipe"


class ProvisionError(Exception):
    pass


def _region() -> str:
    return str(boto3.session.Session().region_name)


@dataclass(frozen=True)
class Deployment:
    stack_name: str
    resources: dict[str, tuple[str, str]]  # logical id -> (type, physical id)
    outputs: dict[str, str]

    def of_type(self, resource_type: str) -> dict[str, str]:
        """logical id -> physical id of every resource of `resource_type`."""
        return {lid: pid for lid, (kind, pid) in self.resources.items() if kind == resource_type}


_EMPTY_ZIP = b"PK\x05\x06" + b"\x00" * 18  # a zip archive with no entries


def _zip_folder(folder: Path) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for path in sorted(folder.rglob("*")):
            if path.is_file() and "__pycache__" not in path.parts:
                archive.write(path, path.relative_to(folder).as_posix())
    return buffer.getvalue()


def _upload_code(translated: Translated) -> None:
    """moto's CreateFunction reads the package from S3, as `sam deploy` would have put it there."""
    s3 = boto3.client("s3")
    s3.create_bucket(Bucket=CODE_BUCKET)
    for key, folder in translated.code_folders.items():
        s3.put_object(Bucket=CODE_BUCKET, Key=key, Body=_zip_folder(folder))
    for resource in translated.template["Resources"].values():
        content = resource.get("Properties", {}).get("Content", {})
        if resource.get("Type") == "AWS::Lambda::LayerVersion" and content.get("S3Bucket") == CODE_BUCKET:
            s3.put_object(Bucket=CODE_BUCKET, Key=content["S3Key"], Body=_EMPTY_ZIP)


def _supported_only(template: dict[str, Any]) -> dict[str, Any]:
    supported = get_model_map()
    kept = {}
    for logical_id, resource in template["Resources"].items():
        if resource.get("Type") in supported:
            kept[logical_id] = resource
        else:
            log.debug(
                "local stack: skipping %s (%s): moto cannot create it", logical_id, resource.get("Type")
            )
    return {**template, "Resources": kept}


def _with_plain_definitions(template: dict[str, Any]) -> dict[str, Any]:
    """DefinitionString as one literal; the substitutions are applied after the stack exists (moto's
    Fn::Sub would turn the ASL's `$$.Execution.Id` into `$.Execution.Id`)."""
    for resource in template["Resources"].values():
        if resource.get("Type") != "AWS::StepFunctions::StateMachine":
            continue
        properties = resource["Properties"]
        if "Definition" in properties and "DefinitionString" not in properties:
            properties["DefinitionString"] = json.dumps(properties.pop("Definition"), indent=2)
        definition = properties.get("DefinitionString")
        if isinstance(definition, dict) and "Fn::Join" in definition:
            separator, parts = definition["Fn::Join"]
            if all(isinstance(part, str) for part in parts):  # the translator's line-split literal
                properties["DefinitionString"] = separator.join(parts)
    return template


def _substituted(definition: str, substitutions: dict[str, Any]) -> str:
    """What CloudFormation does with DefinitionSubstitutions: `${Key}` -> value, nothing else."""
    for key, value in substitutions.items():
        definition = definition.replace("${" + key + "}", str(value))
    return definition


# AWS uses Batch's service-linked role when a compute environment names none; moto requires one
_BATCH_SERVICE_LINKED_ROLE = {
    "Fn::Sub": "arn:${AWS::Partition}:iam::${AWS::AccountId}:role/aws-service-role/batch.amazonaws.com/"
    "AWSServiceRoleForBatch"
}


def _with_aws_defaults(template: dict[str, Any]) -> dict[str, Any]:
    """Spell out the defaults AWS applies but moto's CloudFormation insists on."""
    for resource in template["Resources"].values():
        if resource.get("Type") == "AWS::Batch::ComputeEnvironment":
            properties = resource.setdefault("Properties", {})
            if "ServiceRole" not in properties:
                properties["ServiceRole"] = _BATCH_SERVICE_LINKED_ROLE
                _ensure_batch_service_linked_role()
    return template


def _ensure_batch_service_linked_role() -> None:
    iam = boto3.client("iam")
    try:
        iam.get_role(RoleName="AWSServiceRoleForBatch")
    except iam.exceptions.NoSuchEntityException:
        iam.create_role(  # what CreateServiceLinkedRole makes on AWS (moto names it differently)
            RoleName="AWSServiceRoleForBatch",
            Path="/aws-service-role/batch.amazonaws.com/",
            AssumeRolePolicyDocument=json.dumps(
                {
                    "Version": "2012-10-17",
                    "Statement": [
                        {
                            "Effect": "Allow",
                            "Principal": {"Service": "batch.amazonaws.com"},
                            "Action": "sts:AssumeRole",
                        }
                    ],
                }
            ),
        )


IMAGE_TAG_PARAMETER = "ImageTag"


def local_image_tag() -> str:
    """The tag `make images` gives the local images the docker executor runs (the package version)."""
    return importlib.metadata.version("genopipe")


def _parameter_defaults(template: dict[str, Any], given: dict[str, str]) -> dict[str, str]:
    """Values for parameters that have no default and that a local stack can fill: the network
    (moto's default VPC, subnets, group) and ImageTag (the local images' tag)."""
    ec2 = boto3.client("ec2")
    values = dict(given)
    image_tag = template.get("Parameters", {}).get(IMAGE_TAG_PARAMETER)
    if image_tag is not None and "Default" not in image_tag and IMAGE_TAG_PARAMETER not in values:
        values[IMAGE_TAG_PARAMETER] = local_image_tag()
    for name, spec in template.get("Parameters", {}).items():
        if name in values or "Default" in spec:
            continue
        kind = spec.get("Type", "")
        if kind == "AWS::EC2::VPC::Id":
            values[name] = ec2.describe_vpcs(Filters=[{"Name": "isDefault", "Values": ["true"]}])["Vpcs"][0][
                "VpcId"
            ]
        elif kind in {"List<AWS::EC2::Subnet::Id>", "AWS::EC2::Subnet::Id"}:
            subnets = [s["SubnetId"] for s in ec2.describe_subnets()["Subnets"]]
            values[name] = ",".join(subnets) if kind.startswith("List") else subnets[0]
        elif kind in {"List<AWS::EC2::SecurityGroup::Id>", "AWS::EC2::SecurityGroup::Id"}:
            groups = ec2.describe_security_groups(Filters=[{"Name": "group-name", "Values": ["default"]}])
            values[name] = groups["SecurityGroups"][0]["GroupId"]
    if "RouteTableIds" in template.get("Parameters", {}) and not values.get("RouteTableIds"):
        # the S3 gateway endpoint's route tables: those of the VPC the stack is given
        vpc = (
            values.get("VpcId")
            or ec2.describe_vpcs(Filters=[{"Name": "isDefault", "Values": ["true"]}])["Vpcs"][0]["VpcId"]
        )
        tables = ec2.describe_route_tables(Filters=[{"Name": "vpc-id", "Values": [vpc]}])["RouteTables"]
        values["RouteTableIds"] = ",".join(table["RouteTableId"] for table in tables)
    return values


_NOTIFICATION_KINDS = {
    # CloudFormation shape -> (S3 API list, target key in CloudFormation, target key in the API)
    "LambdaConfigurations": ("LambdaFunctionConfigurations", "Function", "LambdaFunctionArn"),
    "QueueConfigurations": ("QueueConfigurations", "Queue", "QueueArn"),
    "TopicConfigurations": ("TopicConfigurations", "Topic", "TopicArn"),
}


def _notification_for_api(resolved: dict[str, Any]) -> dict[str, Any]:
    api: dict[str, Any] = {}
    for cfn_name, (api_name, cfn_target, api_target) in _NOTIFICATION_KINDS.items():
        for entry in resolved.get(cfn_name, []):
            item: dict[str, Any] = {api_target: entry[cfn_target], "Events": [entry["Event"]]}
            rules = entry.get("Filter", {}).get("S3Key", {}).get("Rules")
            if rules:
                item["Filter"] = {"Key": {"FilterRules": rules}}
            api.setdefault(api_name, []).append(item)
    if "EventBridgeConfiguration" in resolved:
        api["EventBridgeConfiguration"] = {}
    return api


def _apply_bucket_notifications(template: dict[str, Any], stack_id: str, deployment: Deployment) -> None:
    stack = cloudformation_backends[DEFAULT_ACCOUNT_ID][_region()].stacks[stack_id]
    s3 = boto3.client("s3")
    for logical_id, bucket in deployment.of_type("AWS::S3::Bucket").items():
        wanted = template["Resources"][logical_id].get("Properties", {}).get("NotificationConfiguration")
        if not wanted:
            continue
        resolved = clean_json(copy.deepcopy(wanted), stack.resource_map)
        s3.put_bucket_notification_configuration(
            Bucket=bucket, NotificationConfiguration=_notification_for_api(resolved)
        )
        log.debug("local stack: %s notifications: %s", bucket, resolved)


def _apply_event_invoke_configs(template: dict[str, Any], stack_id: str) -> None:
    """moto's CloudFormation has no AWS::Lambda::EventInvokeConfig: set each through the Lambda
    API (asynchronous retries and the on-failure destination; genopipe.local.async_invoke acts
    on them)."""
    stack = cloudformation_backends[DEFAULT_ACCOUNT_ID][_region()].stacks[stack_id]
    lambda_api = boto3.client("lambda")
    for resource in template["Resources"].values():
        if resource["Type"] != "AWS::Lambda::EventInvokeConfig":
            continue
        wanted = clean_json(copy.deepcopy(resource["Properties"]), stack.resource_map)
        config = {k: v for k, v in wanted.items() if k not in {"FunctionName", "Qualifier"}}
        lambda_api.put_function_event_invoke_config(FunctionName=wanted["FunctionName"], **config)


def _apply_bucket_versioning_and_lifecycle(template: dict[str, Any], deployment: Deployment) -> None:
    """The buckets' VersioningConfiguration and LifecycleConfiguration, which moto's CloudFormation
    ignores, through the S3 API (lifecycle rules are stored, not run: nothing expires locally)."""
    s3 = boto3.client("s3")
    for logical_id, bucket in deployment.of_type("AWS::S3::Bucket").items():
        properties = template["Resources"][logical_id].get("Properties", {})
        versioning = properties.get("VersioningConfiguration")
        if versioning:
            s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": versioning["Status"]})
        rules = properties.get("LifecycleConfiguration", {}).get("Rules")
        if rules:
            s3.put_bucket_lifecycle_configuration(
                Bucket=bucket, LifecycleConfiguration={"Rules": [_lifecycle_rule(rule) for rule in rules]}
            )


def _lifecycle_rule(rule: dict[str, Any]) -> dict[str, Any]:
    """A CloudFormation lifecycle rule in the S3 API's shape."""
    api: dict[str, Any] = {"ID": rule.get("Id", ""), "Status": rule["Status"]}
    api["Filter"] = {"Prefix": rule.get("Prefix", "")}
    if "ExpirationInDays" in rule:
        api["Expiration"] = {"Days": int(rule["ExpirationInDays"])}
    if "NoncurrentVersionExpiration" in rule:
        api["NoncurrentVersionExpiration"] = {
            "NoncurrentDays": int(rule["NoncurrentVersionExpiration"]["NoncurrentDays"])
        }
    if "AbortIncompleteMultipartUpload" in rule:
        days = int(rule["AbortIncompleteMultipartUpload"]["DaysAfterInitiation"])
        api["AbortIncompleteMultipartUpload"] = {"DaysAfterInitiation": days}
    return api


_MOTO_DESCRIBE_JOB_QUEUE = JobQueue.describe


def _describe_job_queue(queue: JobQueue) -> dict[str, Any]:
    described = _MOTO_DESCRIBE_JOB_QUEUE(queue)
    actions = getattr(queue, "job_state_time_limit_actions", None)
    if actions:
        described["jobStateTimeLimitActions"] = actions
    return described


def _apply_job_queue_time_limits(template: dict[str, Any], stack_id: str, deployment: Deployment) -> None:
    """Each job queue's JobStateTimeLimitActions, in the Batch API's shape, on moto's queue."""
    stack = cloudformation_backends[DEFAULT_ACCOUNT_ID][_region()].stacks[stack_id]
    batch = batch_backends[DEFAULT_ACCOUNT_ID][_region()]
    JobQueue.describe = _describe_job_queue  # type: ignore[method-assign,assignment]
    for logical_id, arn in deployment.of_type("AWS::Batch::JobQueue").items():
        wanted = template["Resources"][logical_id].get("Properties", {}).get("JobStateTimeLimitActions")
        queue = batch.get_job_queue(arn)
        if not wanted or queue is None:
            continue
        resolved = clean_json(copy.deepcopy(wanted), stack.resource_map)
        queue.job_state_time_limit_actions = [  # type: ignore[attr-defined]
            {
                "reason": action["Reason"],
                "state": action["State"],
                "maxTimeSeconds": int(float(action["MaxTimeSeconds"])),
                "action": action["Action"],
            }
            for action in resolved
        ]


def deploy(translated: Translated, parameters: dict[str, str] | None = None) -> Deployment:
    """Create the stack in moto from the translated template; returns what was created."""
    _upload_code(translated)
    template = _with_aws_defaults(
        _with_plain_definitions(_supported_only(copy.deepcopy(translated.template)))
    )
    values = _parameter_defaults(template, parameters or {})
    # moto's backend is in this process: calling it directly keeps its exceptions readable
    backend = cloudformation_backends[DEFAULT_ACCOUNT_ID][_region()]
    try:
        stack = backend.create_stack(STACK_NAME, json.dumps(template), values)
    except Exception as error:
        raise ProvisionError(f"template.yaml: moto could not create the stack: {error!r}") from error
    stack_id = stack.stack_id
    cloudformation = boto3.client("cloudformation")
    described = cloudformation.describe_stacks(StackName=stack_id)["Stacks"][0]
    if described["StackStatus"] != "CREATE_COMPLETE":
        raise ProvisionError(
            f"template.yaml: stack ended {described['StackStatus']}: {described.get('StackStatusReason')}"
        )
    resources = {
        r["LogicalResourceId"]: (r["ResourceType"], r.get("PhysicalResourceId", ""))
        for r in cloudformation.describe_stack_resources(StackName=stack_id)["StackResources"]
        if "LogicalResourceId" in r
    }
    outputs = {o["OutputKey"]: o["OutputValue"] for o in described.get("Outputs", [])}
    deployment = Deployment(STACK_NAME, resources, outputs)
    _apply_bucket_notifications(template, stack_id, deployment)
    _apply_event_invoke_configs(translated.template, stack_id)
    _apply_bucket_versioning_and_lifecycle(template, deployment)
    _apply_job_queue_time_limits(template, stack_id, deployment)
    _hand_state_machines_to_interpreter(template, stack_id, deployment)
    return deployment


def _hand_state_machines_to_interpreter(
    template: dict[str, Any], stack_id: str, deployment: Deployment
) -> None:
    """moto's CloudFormation puts state machines in the plain Step Functions backend, but with
    `execute_state_machine` the API serves the interpreter's backend: recreate them there under
    the same name (so the same ARN) with the substituted definition."""
    plain = stepfunctions_backends[DEFAULT_ACCOUNT_ID][_region()]
    stack = cloudformation_backends[DEFAULT_ACCOUNT_ID][_region()].stacks[stack_id]
    stepfunctions = boto3.client("stepfunctions")
    for logical_id, arn in deployment.of_type("AWS::StepFunctions::StateMachine").items():
        machine = plain.describe_state_machine(arn)
        wanted = template["Resources"][logical_id]["Properties"].get("DefinitionSubstitutions") or {}
        definition = _substituted(machine.definition, clean_json(copy.deepcopy(wanted), stack.resource_map))
        stepfunctions.create_state_machine(name=machine.name, definition=definition, roleArn=machine.roleArn)
