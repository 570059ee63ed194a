"""Submitting a pipeline step as a Batch job and following it: the logic of the submit_job and
check_job Lambdas, without AWS (genopipe.aws.batch does the calls)."""

from __future__ import annotations

import json
import re
from collections.abc import Callable

from pydantic import BaseModel, ConfigDict

from genopipe.contracts import (
    ARRAY_SIZE_MAX,
    NO_INTERVALS,
    AttemptUsage,
    JobSpec,
    JobState,
    PipelineInput,
    SubmitRequest,
)
from genopipe.jobs.backoff import PollingPolicy, next_wait_seconds
from genopipe.layout import READS_JSON, shard_plan_key
from genopipe.s3uri import S3Uri

RUNNING_STATUSES = frozenset({"SUBMITTED", "PENDING", "RUNNABLE", "STARTING", "RUNNING"})
SPOT_RECLAIM_PREFIX = "Host EC2"  # Batch's status reason when the instance went away under the job
# Batch's status reason when the queue's JobStateTimeLimitActions cancelled a job left RUNNABLE
# because no instance could be launched (AWS Batch user guide, "Jobs stuck in RUNNABLE")
NO_CAPACITY_CANCELLED = (
    "Canceled by JobStateTimeLimit action due to reason: CAPACITY:INSUFFICIENT_INSTANCE_CAPACITY"
)
JOB_LOG_GROUP = "/aws/batch/job"
LOG_TAIL_LINES = 5  # of a failed job's log, quoted in the failure message

LogTail = Callable[[str], list[str]]  # log stream -> its last lines ([] if unreadable)


class JobFailed(Exception):
    """The Batch job of a step failed; the message says what happened and where its log is."""


class JobNotFound(Exception):
    """DescribeJobs does not know the job (expired from Batch's 7-day history, or a wrong id)."""


class _Described(BaseModel):
    model_config = ConfigDict(extra="ignore", populate_by_name=True)


class DescribedContainer(_Described):
    exitCode: int | None = None
    reason: str | None = None
    logStreamName: str | None = None
    vcpus: int | None = None
    resourceRequirements: list[dict[str, str]] = []


class DescribedAttempt(_Described):
    startedAt: int | None = None
    stoppedAt: int | None = None
    statusReason: str | None = None
    container: DescribedContainer = DescribedContainer()


class DescribedArray(_Described):
    size: int | None = None  # a parent's number of children
    index: int | None = None  # a child's AWS_BATCH_JOB_ARRAY_INDEX


class DescribedJob(_Described):
    """The parts of one DescribeJobs entry that genopipe reads."""

    jobId: str
    jobName: str
    status: str
    statusReason: str | None = None
    startedAt: int | None = None
    stoppedAt: int | None = None
    attempts: list[DescribedAttempt] = []
    container: DescribedContainer = DescribedContainer()
    arrayProperties: DescribedArray | None = None

    @property
    def array_size(self) -> int | None:
        """The number of children of an array job's parent; None for a plain job."""
        return self.arrayProperties.size if self.arrayProperties else None


def child_ids(parent_id: str, size: int) -> list[str]:
    """The children of an array job: `<parent id>:<index>` (AWS Batch user guide, "Array jobs")."""
    return [f"{parent_id}:{index}" for index in range(size)]


def batch_job_name(sample: str, step: str) -> str:
    """Batch job names: up to 128 letters, digits, '-' and '_', starting alphanumeric."""
    return re.sub(r"[^A-Za-z0-9_-]", "-", f"{sample}-{step}")[:128].lstrip("-_") or step


def pinned_reads(pipeline: PipelineInput) -> bytes:
    """`reads.json`: the lanes, each carrying the ETags its files were admitted with, so each step
    reads exactly those bytes. Compact and deterministic (every submission writes the same bytes)."""
    admitted = {item.uri: item.etag for item in pipeline.inputs}
    lanes = [lane.pinned(admitted).model_dump(mode="json", exclude_none=True) for lane in pipeline.reads]
    return json.dumps(lanes, separators=(",", ":")).encode()


def reads_uri(pipeline: PipelineInput) -> str:
    """Where the submit Lambda stages `reads.json` for the jobs (the job parameter `reads`)."""
    return str(S3Uri.parse(pipeline.staging).as_prefix().join(READS_JSON))


def array_size(shards: int) -> int | None:
    """The Batch array size of a step with `shards` shards: None (a plain job) for one shard,
    since AWS's array jobs have 2..10,000 children."""
    if shards > ARRAY_SIZE_MAX:
        raise ValueError(f"{shards} shards: an array job has at most {ARRAY_SIZE_MAX} children")
    return shards if shards >= 2 else None


def plan_uri(pipeline: PipelineInput, step: str) -> str:
    """The shard plan of a scattered step in the run's staging (`shards/<step>.json`)."""
    return str(S3Uri.parse(pipeline.staging).as_prefix().join(shard_plan_key(step)))


def shard_count(plan: object, where: str) -> int:
    """How many shards a plan (`{"shards": [entry, ...]}`) has; ValueError names the plan."""
    shards = plan.get("shards") if isinstance(plan, dict) else None
    if not isinstance(shards, list) or not shards:
        raise ValueError(
            f'{where}: not a shard plan (expected {{"shards": [entry, ...]}}, at least one entry)'
        )
    if len(shards) > ARRAY_SIZE_MAX:
        raise ValueError(
            f"{where}: {len(shards)} shards; a Batch array job has at most {ARRAY_SIZE_MAX} children"
        )
    return len(shards)


def job_spec(request: SubmitRequest, shards: int = 1) -> JobSpec:
    """SubmitJob arguments; the parameters fill the job definition's `Ref::` placeholders
    (docs/internals.md: sample, reads, reference, staging, aligner, ploidy, caller, and the
    sharding: align_shard_read_pairs, call_shard_bases, max_shards, intervals). `reads` is the
    s3:// URI of `reads.json` (`pinned_reads`), not the list: the job's command is passed to the
    container as an override, and Batch's 8 KiB overrides held only ~30 lanes. `shards` > 1
    makes an array job with one child per shard."""
    pipeline = request.input
    return JobSpec(
        job_name=batch_job_name(pipeline.sample, request.step),
        job_queue=request.job_queue,
        job_definition=request.job_definition,
        parameters={
            "sample": pipeline.sample,
            "reads": reads_uri(pipeline),
            "reference": pipeline.reference,
            "staging": pipeline.staging,
            "aligner": pipeline.aligner,
            "ploidy": str(pipeline.ploidy),
            "caller": pipeline.caller,
            "align_shard_read_pairs": str(pipeline.align_shard_read_pairs),
            "call_shard_bases": str(pipeline.call_shard_bases),
            "max_shards": str(pipeline.max_shards),
            "intervals": pipeline.intervals or NO_INTERVALS,
        },
        tags={
            "genopipe:sample": pipeline.sample,
            "genopipe:step": request.step,
            "genopipe:capacity": request.capacity,
        },
        array_size=array_size(shards),
    )


def submitted(request: SubmitRequest, spec: JobSpec, job_id: str, policy: PollingPolicy) -> JobState:
    earlier = request.replaces.usage() if request.replaces else []
    return JobState(
        step=request.step,
        capacity=request.capacity,
        job_id=job_id,
        job_name=spec.job_name,
        job_queue=spec.job_queue,
        wait_seconds=next_wait_seconds(None, policy),
        shards=spec.array_size or 1,
        earlier=earlier,
    )


def _vcpus(container: DescribedContainer, fallback: int) -> int:
    for requirement in container.resourceRequirements:
        if requirement.get("type") == "VCPU":
            return max(1, round(float(requirement.get("value", fallback))))
    return container.vcpus or fallback


def _attempts(job: DescribedJob) -> list[AttemptUsage]:
    attempts = [
        AttemptUsage(
            started_at=a.startedAt,
            stopped_at=a.stoppedAt,
            status_reason=a.statusReason,
            exit_code=a.container.exitCode,
            log_stream=a.container.logStreamName,
        )
        for a in job.attempts
    ]
    if not attempts and job.startedAt:
        reason = job.statusReason
        attempts = [AttemptUsage(started_at=job.startedAt, stopped_at=job.stoppedAt, status_reason=reason)]
    return attempts


def _children_attempts(children: list[DescribedJob]) -> list[AttemptUsage]:
    """Every child's attempts: only their times (the cost) unless the attempt failed, so that the
    state machine's 256 KB payload holds the job states of large arrays (500 children: ~30 KB)."""
    return [
        attempt
        if attempt.status_reason or attempt.exit_code
        else AttemptUsage(started_at=attempt.started_at, stopped_at=attempt.stopped_at)
        for child in children
        for attempt in _attempts(child)
    ]


def is_spot_reclaim(job: DescribedJob) -> bool:
    """The last attempt (or the job) ended because its EC2 host was taken away, or the job never
    started because no Spot instance could be had (the queue cancelled it after its time limit)."""
    reasons = [job.statusReason or ""]
    if job.attempts:
        reasons.append(job.attempts[-1].statusReason or "")
    return any(
        reason.startswith(SPOT_RECLAIM_PREFIX) or reason.startswith(NO_CAPACITY_CANCELLED)
        for reason in reasons
    )


def failure_message(state: JobState, job: DescribedJob, log_tail: LogTail | None = None) -> str:
    last = job.attempts[-1] if job.attempts else None
    reason = (last.statusReason if last else None) or job.statusReason or "no reason given"
    container = last.container if last else job.container
    parts = [f"{state.step} job {job.jobName} ({job.jobId}) failed on {state.capacity} capacity: {reason}"]
    if reason.startswith(NO_CAPACITY_CANCELLED):  # it never started: there is no log to point at
        parts.append(
            "no instance of its compute environment could be launched within the queue's time limit "
            "(RunnableTimeoutSeconds): check the account's EC2 quotas and the instance types"
        )
        return "; ".join(parts)
    if container.exitCode is not None:
        parts.append(f"exit code {container.exitCode}")
    if container.reason:
        parts.append(container.reason)
    stream = container.logStreamName or job.container.logStreamName
    tail = log_tail(stream) if stream and log_tail else []
    if tail:
        parts.append("last log lines: " + " | ".join(line.strip() for line in tail[-LOG_TAIL_LINES:]))
    if stream:
        parts.append(f"the step's error is the last line of CloudWatch Logs {JOB_LOG_GROUP} stream {stream}")
    else:
        parts.append(f"see CloudWatch Logs {JOB_LOG_GROUP} for job {job.jobId}")
    return "; ".join(parts)


def needs_children(job: DescribedJob) -> bool:
    """An array job that has ended: its children's attempts (cost) and failures must be read."""
    return job.array_size is not None and job.status not in RUNNING_STATUSES


def advance(
    state: JobState,
    job: DescribedJob,
    policy: PollingPolicy,
    log_tail: LogTail | None = None,
    children: list[DescribedJob] | None = None,
) -> JobState:
    """The job state after one check: still running (with the next wait), succeeded, or
    RECLAIMED (failed on Spot because the host went away, or cancelled RUNNABLE for want of Spot
    capacity: the state machine resubmits it On-Demand). Any other failure raises `JobFailed`.

    An array job (a scattered step) is followed by its parent's status; once it has ended,
    `children` (DescribeJobs of every child) give the attempts of them all, and a failed parent
    is RECLAIMED only when every failed child was reclaimed (the On-Demand resubmission redoes
    only the shards without output); otherwise the failure names the first failed shard."""
    if children is not None:
        return _advance_array(state, job, policy, log_tail, children)
    update = {
        "status": job.status,
        "status_reason": job.statusReason,
        "vcpus": _vcpus(job.container, state.vcpus),
        "attempts": _attempts(job),
        "wait_seconds": next_wait_seconds(state.wait_seconds, policy),
    }
    if job.status in RUNNING_STATUSES or job.status == "SUCCEEDED":
        return state.model_copy(update=update)
    if job.status == "FAILED" and state.capacity == "spot" and is_spot_reclaim(job):
        return state.model_copy(update={**update, "status": "RECLAIMED"})
    raise JobFailed(failure_message(state, job, log_tail))


def _advance_array(
    state: JobState,
    job: DescribedJob,
    policy: PollingPolicy,
    log_tail: LogTail | None,
    children: list[DescribedJob],
) -> JobState:
    vcpus = next(
        (_vcpus(child.container, 0) for child in children if _vcpus(child.container, 0)), state.vcpus
    )
    update = {
        "status": job.status,
        "status_reason": job.statusReason,
        "vcpus": vcpus,
        "shards": job.array_size or state.shards,
        "attempts": _children_attempts(children),
        "wait_seconds": next_wait_seconds(state.wait_seconds, policy),
    }
    if job.status == "SUCCEEDED":
        return state.model_copy(update=update)
    failed = [child for child in children if child.status == "FAILED"] or [job]
    lost = [child for child in failed if not is_spot_reclaim(child)]
    if job.status == "FAILED" and state.capacity == "spot" and not lost:
        return state.model_copy(update={**update, "status": "RECLAIMED"})
    first = (lost or failed)[0]
    index = first.arrayProperties.index if first.arrayProperties else None
    shard = f"shard {index} of {job.array_size}: " if index is not None else ""
    others = f" ({len(failed) - 1} more shards failed)" if len(failed) > 1 else ""
    raise JobFailed(shard + failure_message(state, first, log_tail) + others)
