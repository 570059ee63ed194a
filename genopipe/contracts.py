"""The models at the orchestration boundaries: the execution input, the per-step job state that the
state machine carries between the submit and check Lambdas, the notify request, and the
EventBridge detail of DESIGN.md ("Sample Completed" / "Sample Failed").

Field names are the JSON names the ASL (`statemachine/pipeline.asl.json`) refers to: rename one
here only together with the ASL.
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal, Protocol

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    SerializerFunctionWrapHandler,
    model_serializer,
)

from genopipe.pipeline import STEP_NAMES, is_step
from genopipe.s3uri import S3UriField


def _known_step(name: str) -> str:
    if not is_step(name):
        raise ValueError(f"unknown step {name!r} (steps: {', '.join(STEP_NAMES)})")
    return name


StepName = Annotated[str, AfterValidator(_known_step)]  # a row of genopipe.pipeline.STEPS
Capacity = Literal["spot", "on-demand"]
Aligner = Literal["minimap2", "bwa"]
Caller = Literal["bcftools", "freebayes"]
SAMPLE_PATTERN = r"^[A-Za-z0-9_-][A-Za-z0-9._-]*$"
# every name a sample flows into must hold it: Batch job names (128, with `-<step>`), tags (256),
# the readable part of Step Functions execution names (80, with a 33-character digest)
SAMPLE_NAME_MAX = 64


def sample_name_problem(name: str) -> str | None:
    """Why `name` cannot be a sample name (a phrase to follow the name), or None if it can."""
    if not name:
        return "is empty"
    if name.startswith("."):
        return "must not start with '.' (names like '.', '..' and '.staging' are reserved)"
    if len(name) > SAMPLE_NAME_MAX:
        return (
            f"is {len(name)} characters long; at most {SAMPLE_NAME_MAX} fit every AWS name it becomes part of"
        )
    if not re.match(SAMPLE_PATTERN, name):
        return "may only hold letters, digits, '.', '_', '-'"
    return None


EVENT_SOURCE = "genopipe"
DetailType = Literal["Sample Completed", "Sample Failed"]
COMPLETED: DetailType = "Sample Completed"
FAILED: DetailType = "Sample Failed"


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class _S3Part(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)


class S3BucketRef(_S3Part):
    name: str


class S3ObjectRef(_S3Part):
    key: str  # URL-encoded, as S3 sends it
    size: int | None = None
    eTag: str | None = None


class S3Entity(_S3Part):
    bucket: S3BucketRef
    object: S3ObjectRef | None = None  # absent in s3:TestEvent


class S3Record(_S3Part):
    eventName: str = ""
    s3: S3Entity


class S3Notification(_S3Part):
    """The parts of an S3 event notification the intake reads. Powertools' S3Model requires every
    field AWS sends (userIdentity, requestParameters, ...); moto's notifications leave some out, and
    the intake needs only the bucket and the key, so this model asks for no more."""

    Records: list[S3Record] = []


class Lane(_Model):
    """One lane of paired reads, as s3:// URIs (the job steps' `--reads` JSON list holds these).

    `r1_etag`/`r2_etag` pin each file to the ETag the intake admitted: the steps read exactly those
    bytes (a conditional GET) and fail the run if the object changed. None (a hand-run step, or
    an execution input, which keeps the ETags in `inputs`) reads the object as it is."""

    r1: S3UriField
    r2: S3UriField
    r1_etag: str | None = None
    r2_etag: str | None = None

    @model_serializer(mode="wrap")
    def _unpinned_as_before(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        # an unpinned lane serialises as it did before the ETags existed, so execution inputs
        # (deterministic, compared by Step Functions) keep their bytes
        data: dict[str, Any] = handler(self)
        return {
            name: value for name, value in data.items() if value is not None or not name.endswith("_etag")
        }

    def pinned(self, etags: dict[str, str]) -> Lane:
        """This lane with each file's admitted ETag from `etags` (URI -> ETag) where it has none."""
        return self.model_copy(
            update={
                "r1_etag": self.r1_etag or etags.get(str(self.r1)) or None,
                "r2_etag": self.r2_etag or etags.get(str(self.r2)) or None,
            }
        )


# sharding defaults: the template parameters AlignShardReadPairs, CallShardBases, MaxShards (and
# Intervals, "" = the whole genome) start here, so a sample below them runs one job per step
DEFAULT_ALIGN_SHARD_READ_PAIRS = 10_000_000
DEFAULT_CALL_SHARD_BASES = 100_000_000
DEFAULT_MAX_SHARDS = 100
ARRAY_SIZE_MAX = 10_000  # AWS Batch array jobs: 2..10,000 children
INTERVALS_PATTERN = r"^(s3://[^/]+/.+)?$"
NO_INTERVALS = "none"  # the job parameter `intervals` when the whole genome is called


class InputObject(_Model):
    uri: str
    etag: str


class PipelineInput(_Model):
    """The execution input: everything a job step and the notify Lambda need about one sample."""

    sample: str = Field(pattern=SAMPLE_PATTERN, max_length=SAMPLE_NAME_MAX)
    reads: list[Lane] = Field(min_length=1)
    reference: str
    aligner: Aligner = "minimap2"
    ploidy: Literal[1, 2] = 2
    caller: Caller = "bcftools"
    staging: str  # s3://<output bucket>/.staging/<execution name>/
    output_bucket: str
    inputs: list[InputObject]  # every input object with its ETag (provenance, and the execution name)
    pipeline_version: str
    # the folder of the sample's files (or of its samplesheet.csv) in the input bucket, with its
    # trailing `/` ("" at the bucket root, and for inputs from before this field existed)
    folder: str = Field(default="", pattern=r"^(.*/)?$")
    # how the scattered steps are sharded (the stack's parameters when the sample was admitted;
    # a samplesheet.csv's `intervals` column overrides Intervals): pinned here so a run keeps
    # them whatever the stack is updated to meanwhile
    align_shard_read_pairs: int = Field(default=DEFAULT_ALIGN_SHARD_READ_PAIRS, ge=1)
    call_shard_bases: int = Field(default=DEFAULT_CALL_SHARD_BASES, ge=1)
    max_shards: int = Field(default=DEFAULT_MAX_SHARDS, ge=1, le=ARRAY_SIZE_MAX)
    intervals: str = Field(default="", pattern=INTERVALS_PATTERN)

    @property
    def outputs_prefix(self) -> str:
        """`s3://<output bucket>/<folder><sample>/`, where the sample's results are published."""
        return f"s3://{self.output_bucket}/{self.folder}{self.sample}/"


class AttemptUsage(_Model):
    """One attempt of a Batch job: epoch milliseconds, as DescribeJobs reports them."""

    started_at: int | None = None
    stopped_at: int | None = None
    status_reason: str | None = None
    exit_code: int | None = None
    log_stream: str | None = None

    @model_serializer(mode="wrap")
    def _without_nulls(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        # an array job's state carries every child's attempts: unset fields would double its size
        data: dict[str, Any] = handler(self)
        return {name: value for name, value in data.items() if value is not None}


class JobUsage(_Model):
    """What a finished (or replaced) job consumed, for the cost estimate."""

    job_id: str
    capacity: Capacity
    vcpus: int
    attempts: list[AttemptUsage] = []


class JobState(_Model):
    """One step's Batch job as the state machine carries it (`$.jobs.<step>`)."""

    step: StepName
    capacity: Capacity
    job_id: str
    job_name: str
    job_queue: str
    vcpus: int = 1
    # a Batch status (SUBMITTED ... RUNNING, SUCCEEDED), or RECLAIMED: failed on Spot because the
    # host was reclaimed after Batch's own retries, so the state machine resubmits it On-Demand
    status: str = "SUBMITTED"
    status_reason: str | None = None
    wait_seconds: int = Field(ge=0)
    # Batch jobs of the step: 1 for a plain job, the array size for an array job (its `attempts`
    # are then every child's, so the cost counts them all)
    shards: int = Field(default=1, ge=1, le=ARRAY_SIZE_MAX)
    attempts: list[AttemptUsage] = []
    earlier: list[JobUsage] = []  # jobs this one replaced (a reclaimed Spot job)

    def usage(self) -> list[JobUsage]:
        own = JobUsage(job_id=self.job_id, capacity=self.capacity, vcpus=self.vcpus, attempts=self.attempts)
        return [*self.earlier, own]


class SubmitRequest(_Model):
    step: StepName
    capacity: Capacity
    job_queue: str
    job_definition: str
    input: PipelineInput
    replaces: JobState | None = None


class JobSpec(_Model):
    """The arguments of Batch SubmitJob for one step."""

    job_name: str
    job_queue: str
    job_definition: str
    parameters: dict[str, str]
    tags: dict[str, str] = {}
    array_size: int | None = Field(default=None, ge=2, le=ARRAY_SIZE_MAX)  # None: a plain job


class Failure(_Model):
    """What the ASL's `<Step>Failed` Pass state records from a caught error."""

    step: str
    error: str
    cause: str = ""


class NotifyRequest(_Model):
    outcome: Literal["SUCCEEDED", "FAILED"]
    execution_arn: str
    input: PipelineInput
    jobs: dict[str, JobState] = {}
    failure: Failure | None = None


class Outputs(_Model):
    bam: str
    bai: str
    vcf: str
    tbi: str
    report: str
    manifest: str
    summary: str


class QcSummary(BaseModel):
    """`summary.json` of the report step (extra keys are kept, not rejected)."""

    model_config = ConfigDict(extra="allow", frozen=True)

    read_pairs: int | None = None
    percent_mapped: float | None = None
    mean_depth: float | None = None
    snps: int | None = None
    indels: int | None = None
    titv: float | None = None


class CostEstimate(_Model):
    usd: float
    spot_vcpu_hours: float
    on_demand_vcpu_hours: float
    spot_price_per_vcpu_hour: float
    on_demand_price_per_vcpu_hour: float


class ErrorDetail(_Model):
    step: str
    type: str
    message: str


class SampleEventDetail(_Model):
    """The `detail` of a genopipe EventBridge event (DESIGN.md)."""

    sample: str
    execution_arn: str
    status: Literal["SUCCEEDED", "FAILED"]
    outputs: Outputs | None = None
    qc: QcSummary | None = None
    cost: CostEstimate | None = None
    error: ErrorDetail | None = None
    pipeline_version: str


class SampleEvent(_Model):
    source: str = EVENT_SOURCE
    detail_type: DetailType
    detail: SampleEventDetail


class EventBus(Protocol):
    """Where Sample Completed / Sample Failed events go (genopipe.aws.eventbridge on AWS)."""

    def put(self, event: SampleEvent) -> None: ...
