"""An execution that ends early (StopExecution, its own time limit, an error the state machine did
not catch) takes none of its Batch jobs with it: Step Functions does not call TerminateJob, so
they run on and are billed for hours. The terminate_jobs Lambda gets the execution's "Step
Functions Execution Status Change" event (an EventBridge rule on ABORTED, TIMED_OUT and FAILED)
and ends them here.

Which jobs: every job the submit Lambda starts is named `<sample>-<step>` (genopipe.jobs.status)
and carries the execution's staging prefix as its `staging` parameter, which is unique per
execution. So ListJobs by the name prefix on each of the stack's queues, then DescribeJobs, keeps
exactly this execution's jobs (a sample of the same name in another execution has another
staging prefix) at a cost of one ListJobs page per queue and one DescribeJobs per 100 jobs.
Jobs created before the execution started cannot be its own and are not described at all.

Every sample gets an answer: an aborted or timed-out execution never reached its NotifyFailure
state, so this puts the Sample Failed event for it (error type ExecutionAborted /
ExecutionTimedOut, naming the jobs it terminated). A FAILED execution that ends in the state
machine's own `SampleFailed` state has already been announced by NotifyFailure; only its jobs are
ended (a branch of a Parallel or Map can still be running when another fails). Staged files are
kept either way (a terminated job may still be writing them); the output bucket's lifecycle
expires `.staging/` after 14 days.

No AWS in here: Batch is reached through the `ExecutionJobs` port (genopipe.aws.execution_jobs).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Literal, Protocol

from pydantic import BaseModel, ConfigDict, ValidationError

from genopipe.contracts import FAILED, ErrorDetail, EventBus, PipelineInput, SampleEvent, SampleEventDetail
from genopipe.jobs.status import batch_job_name

# the state machine's own end after NotifyFailure put the Sample Failed event (statemachine/build.py)
ANNOUNCED_ERROR = "SampleFailed"
FINISHED = frozenset({"SUCCEEDED", "FAILED"})
ENDED_EARLY = ("ABORTED", "TIMED_OUT", "FAILED")


class ExecutionStatusChange(BaseModel):
    """The `detail` of Step Functions' "Step Functions Execution Status Change" event (dates in
    epoch milliseconds; `input` is the execution input as a JSON string, None when it was too
    large to include, `inputDetails.included` false)."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    executionArn: str
    stateMachineArn: str
    name: str
    status: Literal["ABORTED", "TIMED_OUT", "FAILED", "SUCCEEDED", "RUNNING", "PENDING_REDRIVE"]
    startDate: int
    stopDate: int | None = None
    input: str | None = None
    error: str | None = None
    cause: str | None = None


@dataclass(frozen=True)
class ListedJob:
    job_id: str
    job_name: str
    status: str  # Batch's: SUBMITTED ... RUNNING, SUCCEEDED, FAILED
    staging: str | None  # the job's `staging` parameter
    created_at: int  # epoch milliseconds


class ExecutionJobs(Protocol):
    def named_like(self, name_prefix: str) -> list[ListedJob]:
        """Jobs on the stack's queues whose name starts with `name_prefix`, any status."""
        ...

    def terminate(self, job_id: str, reason: str) -> None: ...


class InputUnavailable(Exception):
    """The event does not carry the execution input (it was too large to include)."""


@dataclass(frozen=True)
class CleanupOutcome:
    execution_arn: str
    status: str
    terminated: list[str]  # job names
    event: SampleEvent | None  # the Sample Failed event put, if this execution had none


def pipeline_input(change: ExecutionStatusChange) -> PipelineInput:
    if change.input is None:
        raise InputUnavailable(f"{change.executionArn}: the status change event carries no input")
    try:
        return PipelineInput.model_validate(json.loads(change.input))
    except (json.JSONDecodeError, ValidationError) as error:
        raise InputUnavailable(
            f"{change.executionArn}: its input is not a pipeline input: {error}"
        ) from error


def job_name_prefix(sample: str) -> str:
    """What every job name of `sample` starts with (`<sample>-<step>`, same character rules)."""
    return batch_job_name(sample, "")


def jobs_of(pipeline: PipelineInput, started_ms: int, jobs: ExecutionJobs) -> list[ListedJob]:
    """This execution's jobs: the sample's job name, its staging prefix, created after it started."""
    prefix = job_name_prefix(pipeline.sample)
    return [
        job
        for job in jobs.named_like(prefix)
        if job.job_name.startswith(prefix)
        and job.staging == pipeline.staging
        and job.created_at >= started_ms
    ]


def _step_of(job_name: str, prefix: str) -> str:
    return re.sub(r"-\d+$", "", job_name[len(prefix) :]) or "unknown"


def _early_end(change: ExecutionStatusChange, stopped: list[str], prefix: str) -> ErrorDetail:
    steps = sorted({_step_of(name, prefix) for name in stopped})
    running = f"its running jobs ({', '.join(stopped)}) were terminated" if stopped else "no job was running"
    kept = "staged files are kept until the output bucket's lifecycle expires .staging/ (14 days)"
    if change.status == "ABORTED":
        kind, what = "ExecutionAborted", "the execution was stopped (StopExecution)"
        if change.cause or change.error:
            what += ": " + " ".join(part for part in (change.error, change.cause) if part)
    elif change.status == "TIMED_OUT":
        kind, what = "ExecutionTimedOut", "the execution ran past the state machine's time limit"
    else:
        kind = change.error or "ExecutionFailed"
        what = f"the execution failed outside any step's error handling ({change.cause or 'no cause given'})"
    return ErrorDetail(
        step=",".join(steps) or "unknown",
        type=kind,
        message=f"{what}; {running}; {kept}",
    )


def clean_up(change: ExecutionStatusChange, jobs: ExecutionJobs, bus: EventBus) -> CleanupOutcome:
    """Terminate the execution's unfinished jobs; put Sample Failed if the sample had no answer."""
    pipeline = pipeline_input(change)
    reason = f"genopipe: execution {change.name} {change.status}"[:1024]
    stopped = []
    for job in jobs_of(pipeline, change.startDate, jobs):
        if job.status not in FINISHED:
            jobs.terminate(job.job_id, reason)
            stopped.append(job.job_name)
    if change.status not in ENDED_EARLY or (change.status == "FAILED" and change.error == ANNOUNCED_ERROR):
        return CleanupOutcome(change.executionArn, change.status, stopped, None)
    event = SampleEvent(
        detail_type=FAILED,
        detail=SampleEventDetail(
            sample=pipeline.sample,
            execution_arn=change.executionArn,
            status="FAILED",
            error=_early_end(change, stopped, job_name_prefix(pipeline.sample)),
            pipeline_version=pipeline.pipeline_version,
        ),
    )
    bus.put(event)
    return CleanupOutcome(change.executionArn, change.status, stopped, event)
