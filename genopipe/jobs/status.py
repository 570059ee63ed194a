"""Submitting a pipeline step as a Batch job and following it: the logic of the submit_job and
check_job Lambdas, without AWS (genopipe.aws.batch does the calls)."""

from __future__ import annotations

import json
import re
from collections.abc import Callable

from pydantic import BaseModel, ConfigDict

from genopipe.contracts import AttemptUsage, JobSpec, JobState, SubmitRequest
from genopipe.jobs.backoff import PollingPolicy, next_wait_seconds

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


def batch_job_name(sample: str, step: str) -> str:
    """Batch job names: up to 128 letters, digits, '-' and '_', starting alphanumeric."""
    return re.sub(r"[^A-Za-z0-9_-]", "-", f"{sample}-{step}")[:128].lstrip("-_") or step


def job_spec(request: SubmitRequest) -> JobSpec:
    """SubmitJob arguments; the parameters fill the job definition's `Ref::` placeholders
    (docs/internals.md: sample, reads, reference, staging, aligner, ploidy, caller). Every lane
    carries the ETags its files were admitted with, so each step reads exactly those bytes."""
    pipeline = request.input
    admitted = {item.uri: item.etag for item in pipeline.inputs}
    lanes = [lane.pinned(admitted).model_dump(mode="json", exclude_none=True) for lane in pipeline.reads]
    reads = json.dumps(lanes, separators=(",", ":"))
    return JobSpec(
        job_name=batch_job_name(pipeline.sample, request.step),
        job_queue=request.job_queue,
        job_definition=request.job_definition,
        parameters={
            "sample": pipeline.sample,
            "reads": reads,
            "reference": pipeline.reference,
            "staging": pipeline.staging,
            "aligner": pipeline.aligner,
            "ploidy": str(pipeline.ploidy),
            "caller": pipeline.caller,
        },
        tags={
            "genopipe:sample": pipeline.sample,
            "genopipe:step": request.step,
            "genopipe:capacity": request.capacity,
        },
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


def advance(
    state: JobState, job: DescribedJob, policy: PollingPolicy, log_tail: LogTail | None = None
) -> JobState:
    """The job state after one check: still running (with the next wait), succeeded, or
    RECLAIMED (failed on Spot because the host went away, or cancelled RUNNABLE for want of Spot
    capacity: the state machine resubmits it On-Demand). Any other failure raises `JobFailed`."""
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
