"""The local stack, assembled: moto server + in-process Lambdas + local Batch + the template's resources."""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any

import boto3
from moto.core import DEFAULT_ACCOUNT_ID
from moto.server import ThreadedMotoServer

from genopipe.aws import s3
from genopipe.aws.clients import reset_clients
from genopipe.local import async_invoke, execution_events, iam, lambdas, limits, server, waits
from genopipe.local.async_invoke import AsyncFaults
from genopipe.local.batch import LocalBatch, SpotReclaims
from genopipe.local.docker import DockerRunner
from genopipe.local.events import EventCapture
from genopipe.local.executors import HostVolumes, JobRunner, NativeRunner
from genopipe.local.provision import IMAGE_TAG_PARAMETER, Deployment, deploy
from genopipe.local.sweep import SweepTimer, rate_seconds
from genopipe.local.template import translate
from genopipe.s3uri import S3Uri

log = logging.getLogger(__name__)

REPO_ROOT = Path(__file__).resolve().parents[2]
REFERENCE_BUCKET = "genopipe-local-reference"
REFERENCE_PARAMETER = "ReferenceUri"
SWEEP_SCHEDULE_PARAMETER = "SweepSchedule"
# the intake's waits, scaled like the state machine's (a lane settles in 15 s at the default scale)
SCALED_PARAMETERS = ("MateTimeoutSeconds", "LaneSettleSeconds")


@dataclass(frozen=True)
class StackOptions:
    port: int = server.DEFAULT_PORT
    executor: str = "native"
    reclaim_rate: float = 0.0
    seed: int = 0
    spot_capacity: bool = True  # False: no Spot instance can be had (jobs wait RUNNABLE on the Spot queue)
    wait_scale: float = waits.DEFAULT_FACTOR
    events_file: Path | None = None
    reference: Path | None = None  # uploaded, and made the template's ReferenceUri
    template: Path = field(default_factory=lambda: REPO_ROOT / "template.yaml")
    # seconds between scheduled sweeps: None = the template's SweepSchedule times wait_scale, 0 = none
    sweep_every: float | None = None
    parameters: dict[str, str] = field(default_factory=dict)  # template parameters, as given
    # fault injection on S3 -> intake: deliveries per upload, fraction of invocations failing once
    deliveries: int = 1
    intake_fault_rate: float = 0.0
    # IAM per principal (docs/internals.md); off only by `--no-iam`, which no test uses
    iam: bool = True


class StackError(Exception):
    pass


def make_runner(executor: str, volumes: HostVolumes | None = None) -> JobRunner:
    if executor == "native":
        return NativeRunner(volumes)
    if executor == "docker":
        return DockerRunner(volumes)
    raise StackError(f"--executor {executor}: expected native or docker")


def upload_reference(fasta: Path) -> str:
    """Put the reference FASTA where jobs (and its index cache) can reach it; returns its URI."""
    if not fasta.is_file():
        raise StackError(f"{fasta}: no such reference FASTA")
    uri = S3Uri(REFERENCE_BUCKET, f"refs/{fasta.name}")
    s3.client().create_bucket(Bucket=REFERENCE_BUCKET)
    s3.upload(fasta, uri)
    return str(uri)


def _default(template: dict[str, Any], name: str) -> str | None:
    spec = template.get("Parameters", {}).get(name)
    return None if spec is None or "Default" not in spec else str(spec["Default"])


def scaled_parameters(template: dict[str, Any], given: dict[str, str], scale: float) -> dict[str, str]:
    """The given parameters, plus the intake's timeouts (mate, lane settle) at `scale` times their
    template defaults when not given."""
    values = dict(given)
    for name in SCALED_PARAMETERS:
        default = _default(template, name)
        if name not in values and default is not None:
            values[name] = f"{float(default) * scale:g}"
    return values


# parameters without a default that the local deploy fills (genopipe.local.provision): the network, ImageTag
_FILLED_LOCALLY = ("AWS::EC2::", "List<AWS::EC2::")


def _required_unset(template: dict[str, Any], given: dict[str, str]) -> list[str]:
    """Parameters that have no default, are not given and that no local value stands in for."""
    return sorted(
        name
        for name, spec in template.get("Parameters", {}).items()
        if "Default" not in spec
        and name not in given
        and name != IMAGE_TAG_PARAMETER
        and not str(spec.get("Type", "")).startswith(_FILLED_LOCALLY)
    )


class LocalStack:
    """`with LocalStack(options) as stack:` serves the whole pipeline on 127.0.0.1:<port>."""

    def __init__(self, options: StackOptions) -> None:
        self.options = options
        # the stack's work directory: the Batch instance's host paths (/scratch) live under it
        self.work_dir = Path(tempfile.mkdtemp(prefix="genopipe-local-"))
        self.runner = make_runner(options.executor, HostVolumes(self.work_dir / "host"))
        self.batch = LocalBatch(
            self.runner,
            server.endpoint_url(options.port),
            reclaims=SpotReclaims(options.reclaim_rate, options.seed),
            spot_capacity=options.spot_capacity,
        )
        self.events = EventCapture(options.events_file)
        self._server: ThreadedMotoServer | None = None
        self._deployment: Deployment | None = None
        self.reference_uri: str | None = None
        self._saved_environment: dict[str, str | None] | None = None
        self.sweeper: SweepTimer | None = None
        self.enforcement: iam.Enforcement | None = None

    @property
    def endpoint_url(self) -> str:
        return server.endpoint_url(self.options.port)

    @property
    def input_bucket(self) -> str:
        return self.deployment.outputs["InputBucketName"]

    @property
    def output_bucket(self) -> str:
        return self.deployment.outputs["OutputBucketName"]

    @property
    def deployment(self) -> Deployment:
        if self._deployment is None:
            raise StackError("the local stack is not started")
        return self._deployment

    def start(self) -> LocalStack:
        translated = translate(self.options.template)
        unknown = sorted(set(self.options.parameters) - set(translated.template.get("Parameters", {})))
        if unknown:  # before anything starts: a typo must not deploy the defaults silently
            raise StackError(
                f"{self.options.template}: no parameter {', '.join(unknown)} (--parameter-overrides)"
            )
        given = dict(self.options.parameters)
        if self.options.reference is not None:
            given[REFERENCE_PARAMETER] = str(self.options.reference)
        required = _required_unset(translated.template, given)
        if required:  # as CloudFormation: "Parameters: [...] must have values"
            how = f"--parameter-overrides {required[0]}=..."
            if REFERENCE_PARAMETER in required:
                how = f"--reference FASTA, or {how}"
            names = ", ".join(required)
            raise StackError(
                f"{self.options.template}: parameter {names} has no default and was not given ({how})"
            )
        self._saved_environment = server.sdk_environment()
        if self.options.iam:
            self._server = server.start(self.options.port, unauthenticated_requests=iam.BOOTSTRAP_REQUESTS)
            self.enforcement = iam.Enforcement(DEFAULT_ACCOUNT_ID)
            self.enforcement.install()
            admin = self.enforcement.bootstrap_admin(self.endpoint_url, server.REGION)
            os.environ.update(admin.environment())  # the harness (and a user's `aws` CLI) is admin
            reset_clients()
        else:
            log.warning("local stack: IAM enforcement is off (--no-iam): every call is allowed")
            self._server = server.start(self.options.port)
        lambdas.install(translated.code_folders)
        async_invoke.install(
            AsyncFaults(self.options.deliveries, self.options.intake_fault_rate, self.options.seed)
        )
        limits.install()
        execution_events.install()  # the executions' status change events, rules -> Lambda
        waits.install(self.options.wait_scale)
        self.batch.install()
        parameters = scaled_parameters(translated.template, self.options.parameters, self.options.wait_scale)
        if self.options.reference is not None:
            if REFERENCE_PARAMETER not in translated.template.get("Parameters", {}):
                raise StackError(
                    f"{self.options.template}: has no {REFERENCE_PARAMETER} parameter for --reference"
                )
            parameters[REFERENCE_PARAMETER] = self.reference_uri = upload_reference(self.options.reference)
        self._deployment = deploy(translated, parameters)
        if self.enforcement is not None:
            iam.interpreter_acts_as(self.enforcement, self._state_machine_role())
        self.events.start()
        interval = self.options.sweep_every
        if interval is None:
            schedule = parameters.get(SWEEP_SCHEDULE_PARAMETER) or _default(
                translated.template, SWEEP_SCHEDULE_PARAMETER
            )
            interval = rate_seconds(schedule) * self.options.wait_scale if schedule else 0.0
        if interval > 0:
            self.sweeper = SweepTimer(interval).start()
        return self

    def _state_machine_role(self) -> str | None:
        arns = list(self.deployment.of_type("AWS::StepFunctions::StateMachine").values())
        if not arns:
            return None
        return str(boto3.client("stepfunctions").describe_state_machine(stateMachineArn=arns[0])["roleArn"])

    def stop(self) -> None:
        """Stop serving and undo the patches, so the process (a test session) can go on."""
        if self.sweeper is not None:
            self.sweeper.stop()
            self.sweeper = None
        self.events.stop()
        if self._server is not None:
            self._server.stop()
            self._server = None
        self.batch.uninstall()
        lambdas.uninstall()
        async_invoke.uninstall()
        execution_events.uninstall()
        limits.uninstall()
        if self.enforcement is not None:
            iam.interpreter_acts_as(None, None)
            self.enforcement.uninstall()
            self.enforcement = None
        server.stop_authenticating()
        waits.uninstall()
        if self._saved_environment is not None:
            server.restore_sdk_environment(self._saved_environment)
            self._saved_environment = None
        shutil.rmtree(self.work_dir, ignore_errors=True)  # what the jobs left in /scratch

    def __enter__(self) -> LocalStack:
        return self.start()

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        self.stop()
