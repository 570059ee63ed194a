"""template.yaml cannot import the table of steps (genopipe/pipeline.py): this holds each job
definition, ECR repository and state machine substitution in it to its row, so they cannot drift.

`template_drift` lives here, not in genopipe: only tests use it, and genopipe ships in the Lambda layer.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest

from genopipe.local.docker import local_image
from genopipe.local.provision import STACK_NAME
from genopipe.local.template import load
from genopipe.pipeline import STEPS, StepSpec, step
from tests.fakes import ANNOTATE

ROOT = Path(__file__).resolve().parents[2]
TEMPLATE = ROOT / "template.yaml"
STATE_MACHINE = "PipelineStateMachine"
JOB_DEFINITION = "AWS::Batch::JobDefinition"
REPOSITORY = "AWS::ECR::Repository"
STACK = "${AWS::StackName}"  # repositories are named per stack: <stack>/<step>
SCRATCH = "/scratch"  # every job: the instance's data volume at /scratch, GENOPIPE_SCRATCH names it


def _text(value: Any) -> str | None:
    """A template string, plain or !Sub (the loader turns tags into their Fn:: form)."""
    if isinstance(value, dict) and set(value) == {"Fn::Sub"} and isinstance(value["Fn::Sub"], str):
        return value["Fn::Sub"]
    return value if isinstance(value, str) else None


def _differs(found: Any, expected: Any) -> bool:
    # CloudFormation takes "4" and 4 alike; the template writes Batch's string fields quoted
    return found is None or str(found) != str(expected)


def _job_definition_drift(resource: str, properties: dict[str, Any], spec: StepSpec) -> list[str]:
    container = properties.get("ContainerProperties", {})
    requirements = {r.get("Type"): r.get("Value") for r in container.get("ResourceRequirements", [])}
    environment = {e.get("Name"): e.get("Value") for e in container.get("Environment", [])}
    retry = properties.get("RetryStrategy", {})
    rules = retry.get("EvaluateOnExit", [])
    retried = [r.get("OnStatusReason") for r in rules if str(r.get("Action", "")).upper() == "RETRY"]
    last = rules[-1] if rules else {}
    image = _text(container.get("Image")) or ""
    command = container.get("Command") or [None]
    expected = {
        "ResourceRequirements VCPU": (requirements.get("VCPU"), spec.vcpus),
        "ResourceRequirements MEMORY": (requirements.get("MEMORY"), spec.memory_mib),
        "Environment GENOPIPE_THREADS": (environment.get("GENOPIPE_THREADS"), spec.threads),
        "Environment GENOPIPE_SCRATCH": (environment.get("GENOPIPE_SCRATCH"), SCRATCH),
        "Timeout.AttemptDurationSeconds": (
            properties.get("Timeout", {}).get("AttemptDurationSeconds"),
            spec.timeout_seconds,
        ),
        "RetryStrategy.Attempts": (retry.get("Attempts"), spec.retry.attempts),
        # the submit Lambda's policy grants job-definition/<stack>-*
        "JobDefinitionName": (_text(properties.get("JobDefinitionName")), f"${{AWS::StackName}}-{spec.name}"),
        "Command[0]": (command[0], spec.name),
    }
    problems = [
        f"{resource}: {field} is {found!r}, the table says {want!r}"
        for field, (found, want) in expected.items()
        if _differs(found, want)
    ]
    if retried != [spec.retry.on_status_reason]:
        problems.append(
            f"{resource}: RetryStrategy.EvaluateOnExit retries on {retried!r}, "
            f"the table says only OnStatusReason {spec.retry.on_status_reason!r}"
        )
    if str(last.get("Action", "")).upper() != "EXIT" or last.get("OnReason") != "*":
        # never retry the job's own failure: a bad input would fail again, and cost again
        problems.append(f"{resource}: RetryStrategy.EvaluateOnExit does not end with OnReason '*' -> EXIT")
    hosts = {v.get("Name"): (v.get("Host") or {}).get("SourcePath") for v in container.get("Volumes", [])}
    mounted = {
        m.get("ContainerPath"): hosts.get(m.get("SourceVolume")) for m in container.get("MountPoints", [])
    }
    if mounted.get(SCRATCH) != SCRATCH:
        problems.append(
            f"{resource}: ContainerProperties mounts {mounted.get(SCRATCH)!r} at {SCRATCH}, "
            f"every job needs the instance's {SCRATCH} there (Volumes Host.SourcePath + MountPoints)"
        )
    repository = spec.stack_repository(STACK)
    if not image.endswith(f".amazonaws.com/{repository}:${{ImageTag}}"):
        problems.append(
            f"{resource}: ContainerProperties.Image {image!r} is not .../{repository}:${{ImageTag}}"
        )
    return problems


def _repository_drift(resource: str, properties: dict[str, Any], spec: StepSpec) -> list[str]:
    name = _text(properties.get("RepositoryName"))
    problems = []
    if name != spec.stack_repository(STACK):
        problems.append(
            f"{resource}: RepositoryName is {name!r}, the table says {spec.stack_repository(STACK)!r}"
        )
    if properties.get("EmptyOnDelete") is not True:
        problems.append(
            f"{resource}: EmptyOnDelete is not true (a stack with images in it could not be deleted)"
        )
    return problems


def template_drift(template: dict[str, Any], steps: tuple[StepSpec, ...]) -> list[str]:
    """What in `template` disagrees with the table `steps`; each problem names the resource and field."""
    resources: dict[str, dict[str, Any]] = template["Resources"]
    problems: list[str] = []
    for spec in steps:
        for resource, kind, drift in (
            (spec.job_definition_resource, JOB_DEFINITION, _job_definition_drift),
            (spec.repository_resource, REPOSITORY, _repository_drift),
        ):
            if resources.get(resource, {}).get("Type") != kind:
                problems.append(f"{resource}: missing (the table's step {spec.name!r} needs an {kind})")
            else:
                problems += drift(resource, resources[resource].get("Properties", {}), spec)

    known = {spec.job_definition_resource for spec in steps} | {spec.repository_resource for spec in steps}
    problems += [
        f"{name}: {resource['Type']} with no row in the table of steps (genopipe/pipeline.py)"
        for name, resource in resources.items()
        if resource.get("Type") in (JOB_DEFINITION, REPOSITORY) and name not in known
    ]

    substitutions = resources.get(STATE_MACHINE, {}).get("Properties", {}).get("DefinitionSubstitutions", {})
    wanted = {f"{spec.job_definition_resource}Arn": spec.job_definition_resource for spec in steps}
    for key, resource in wanted.items():
        found = substitutions.get(key)
        if found != {"Ref": resource}:
            state = "missing" if found is None else f"{found!r}"
            problems.append(
                f"{STATE_MACHINE}: DefinitionSubstitutions {key} is {state}, the ASL needs !Ref {resource}"
            )
    problems += [
        f"{STATE_MACHINE}: DefinitionSubstitutions {key} names a job definition with no row in the table"
        for key in substitutions
        if key.endswith("JobDefinitionArn") and key not in wanted
    ]
    return problems


@pytest.fixture(scope="module")
def template() -> dict[str, Any]:
    return load(TEMPLATE)


def test_every_job_definition_and_repository_matches_its_row(template: dict[str, Any]) -> None:
    assert template_drift(template, STEPS) == []


def test_a_step_the_template_lacks_is_named(template: dict[str, Any]) -> None:
    problems = template_drift(template, (*STEPS, ANNOTATE))

    assert problems == [
        "AnnotateJobDefinition: missing (the table's step 'annotate' needs an AWS::Batch::JobDefinition)",
        "AnnotateRepository: missing (the table's step 'annotate' needs an AWS::ECR::Repository)",
        f"{STATE_MACHINE}: DefinitionSubstitutions AnnotateJobDefinitionArn is missing, "
        "the ASL needs !Ref AnnotateJobDefinition",
    ]


def test_a_resource_the_table_lacks_is_named(template: dict[str, Any]) -> None:
    problems = template_drift(template, tuple(spec for spec in STEPS if spec.name != "report"))

    assert any(p.startswith("ReportJobDefinition: AWS::Batch::JobDefinition with no row") for p in problems)
    assert any(p.startswith("ReportRepository: AWS::ECR::Repository with no row") for p in problems)
    assert any("ReportJobDefinitionArn names a job definition with no row" in p for p in problems)


@pytest.mark.parametrize(
    ("update", "fields"),
    [
        ({"vcpus": 16}, ["ResourceRequirements VCPU", "Environment GENOPIPE_THREADS"]),
        ({"memory_mib": 65536}, ["ResourceRequirements MEMORY"]),
        ({"timeout_seconds": 86400}, ["Timeout.AttemptDurationSeconds"]),
        ({"retry": step("align").retry.model_copy(update={"attempts": 5})}, ["RetryStrategy.Attempts"]),
        (
            {"retry": step("align").retry.model_copy(update={"on_status_reason": "Host*"})},
            ["RetryStrategy.EvaluateOnExit"],
        ),
    ],
)
def test_a_row_that_changed_names_the_resource_and_field(
    template: dict[str, Any], update: dict[str, Any], fields: list[str]
) -> None:
    changed = tuple(spec.model_copy(update=update) if spec.name == "align" else spec for spec in STEPS)

    problems = template_drift(template, changed)

    assert len(problems) == len(fields), problems
    for field in fields:
        assert any(p.startswith(f"AlignJobDefinition: {field} ") for p in problems), (field, problems)


def test_a_template_edit_is_named(template: dict[str, Any]) -> None:
    edited = copy.deepcopy(template)
    qc = edited["Resources"]["QcJobDefinition"]["Properties"]
    image = qc["ContainerProperties"]["Image"]
    image["Fn::Sub"] = image["Fn::Sub"].replace("}/qc:", "}/call:")
    qc["ContainerProperties"]["Command"][0] = "call"
    edited["Resources"]["CallRepository"]["Properties"]["RepositoryName"] = "genopipe/call"  # not per stack
    del edited["Resources"]["AlignRepository"]["Properties"]["EmptyOnDelete"]

    problems = template_drift(edited, STEPS)

    assert [p.split(" ")[0:2] for p in problems] == [
        ["QcJobDefinition:", "Command[0]"],
        ["QcJobDefinition:", "ContainerProperties.Image"],
        ["AlignRepository:", "EmptyOnDelete"],
        ["CallRepository:", "RepositoryName"],
    ]


def test_the_local_stacks_repositories_are_the_local_image_names() -> None:
    """The docker executor runs the image named by the part after the registry host: with the
    local stack's name that is `genopipe/<step>`, the image `make images` builds."""
    for spec in STEPS:
        deployed = f"123456789012.dkr.ecr.us-east-1.amazonaws.com/{spec.stack_repository(STACK_NAME)}:0.1.0"
        assert local_image(deployed) == f"{spec.repository_name}:0.1.0"


def test_a_job_without_the_scratch_volume_is_named(template: dict[str, Any]) -> None:
    edited = copy.deepcopy(template)
    call = edited["Resources"]["CallJobDefinition"]["Properties"]["ContainerProperties"]
    del call["MountPoints"]
    call["Environment"] = [e for e in call["Environment"] if e["Name"] != "GENOPIPE_SCRATCH"]

    problems = template_drift(edited, STEPS)

    assert [p.split(" ")[0:3] for p in problems] == [
        ["CallJobDefinition:", "Environment", "GENOPIPE_SCRATCH"],
        ["CallJobDefinition:", "ContainerProperties", "mounts"],
    ]
