"""The local AWS Batch executor: moto's Batch jobs run for real on this machine.

`moto.batch.models.Job` is a thread per submitted job whose `run` would start a Docker container;
ours moves the job through SUBMITTED -> PENDING -> RUNNABLE -> STARTING -> RUNNING ->
SUCCEEDED/FAILED, waits in RUNNABLE until its vCPUs and memory fit on this machine, runs each
attempt through a `JobRunner`, writes the output to CloudWatch Logs (`/aws/batch/job`), applies
the job definition's RetryStrategy, and can end attempts on Spot capacity the way a Spot reclaim does.
With `spot_capacity` off (fault injection), no Spot instance can be had: a Spot job waits RUNNABLE
with Batch's capacity reason until its queue's JobStateTimeLimitActions cancel it.

Array jobs (SubmitJob with `arrayProperties.size`): moto 5.2.5 creates the children
(`<parent id>:<index>`) and starts them, but never sets AWS_BATCH_JOB_ARRAY_INDEX, never describes
a child's index, and never marks the parent FAILED. Completed here as on AWS: each child runs as a
job of its own (RetryStrategy, attempt timeout, memory limit, Spot reclaims and the queue's time
limit actions apply per child; children wait for this machine's vCPUs like any job) with
AWS_BATCH_JOB_ARRAY_INDEX set; the parent is PENDING until a child starts, then RUNNING,
SUCCEEDED when every child succeeded, FAILED once all have ended and any failed (statusReason
naming the failed indexes); TerminateJob / CancelJob of the parent ends its children; ListJobs
by queue lists the parent, not the children (moto lists both).
"""

from __future__ import annotations

import logging
import os
import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from moto.batch.models import BatchBackend, Job
from moto.batch.utils import JobStatus
from moto.core.utils import unix_time_millis

from genopipe.local import iam, waits
from genopipe.local.capacity import HostCapacity
from genopipe.local.executors import MEMORY_KILL_EXIT, OUT_OF_MEMORY, JobLaunch, JobRunner, mounts_of
from genopipe.local.retry_strategy import RetryStrategy

log = logging.getLogger(__name__)

LOG_GROUP = "/aws/batch/job"
_ORIGINAL_RUN = Job.run
_ORIGINAL_DESCRIBE = Job.describe
_ORIGINAL_LIST = BatchBackend.list_jobs
_ENDED = frozenset({JobStatus.SUCCEEDED.value, JobStatus.FAILED.value})
_STARTED = frozenset({JobStatus.STARTING.value, JobStatus.RUNNING.value}) | _ENDED
ESSENTIAL_EXITED = "Essential container in task exited"
TIMED_OUT = "Job attempt duration exceeded timeout"
NO_CAPACITY = "CAPACITY:INSUFFICIENT_INSTANCE_CAPACITY"
# Batch's statusReason while the job is stuck, and after a JobStateTimeLimitAction cancelled it
# (AWS Batch user guide, "Jobs stuck in RUNNABLE due to capacity")
STUCK_REASON = f"{NO_CAPACITY} - Service cannot fulfill the capacity requested for instance type [c6i.large]"
TIME_LIMIT_CANCELLED = "Canceled by JobStateTimeLimit action due to reason: {reason}"


@dataclass(frozen=True)
class JobUpdate:
    """What the progress display hears about a job."""

    job_id: str
    job_name: str
    step: str
    sample: str
    status: str
    attempt: int
    reason: str = ""
    shard: int | None = None  # an array child's index


class SpotReclaims:
    """Decides, reproducibly from a seed, which attempts a Spot reclaim ends, and when."""

    def __init__(self, rate: float, seed: int) -> None:
        if not 0.0 <= rate <= 1.0:
            raise ValueError(f"--reclaim-rate {rate}: must be between 0 and 1")
        self.rate = rate
        self.seed = seed

    def plan(self, job_name: str, attempt: int) -> tuple[float, str] | None:
        """(seconds after start, instance id) when this attempt is reclaimed, else None."""
        if self.rate <= 0:
            return None
        draw = random.Random(f"{self.seed}:{job_name}:{attempt}")
        if draw.random() >= self.rate:
            return None
        return draw.uniform(0.2, 1.5), f"i-{draw.getrandbits(68):017x}"


def array_index(job: Job) -> int | None:
    """A child's index in its array job; None for a plain job or a parent."""
    index = (job.array_properties or {}).get("index")
    return int(index) if index is not None else None


def _parent(job: Job) -> Job | None:
    """The parent of an array child (`<parent id>:<index>`)."""
    if array_index(job) is None:
        return None
    parent: Job | None = job.all_jobs.get(job.job_id.rsplit(":", 1)[0])
    return parent


def _status(job: Job) -> str:
    status = job.status
    return str(getattr(status, "value", status))


def settle_parent(parent: Job) -> None:
    """An array job's parent follows its children, as on AWS (moto only ever marks it SUCCEEDED)."""
    children: list[Job] = parent._child_jobs or []
    statuses = [_status(child) for child in children]
    if statuses and all(status in _ENDED for status in statuses):
        failed = [index for index, status in enumerate(statuses) if status == JobStatus.FAILED.value]
        stopped = [child.job_stopped_at for child in children]
        parent.job_stopped = True
        parent.job_stopped_at = max(stopped)
        if failed:
            shown = ", ".join(str(index) for index in failed[:20]) + (" ..." if len(failed) > 20 else "")
            parent.job_stopped_reason = (
                f"Array Child Job failed: {len(failed)} of {len(children)} children failed (index {shown})"
            )
            parent.status = JobStatus.FAILED.value
        else:
            parent.status = JobStatus.SUCCEEDED.value
    elif any(status in _STARTED for status in statuses):
        parent.status = JobStatus.RUNNING.value
    else:
        parent.status = JobStatus.PENDING.value
    started = [child.job_started_at for child in children if _status(child) in _STARTED]
    if started:
        parent.job_started_at = min(started)


def _describe(job: Job) -> dict[str, Any]:
    if job._child_jobs:
        settle_parent(job)
    described: dict[str, Any] = _ORIGINAL_DESCRIBE(job)
    index = array_index(job)
    if index is not None:
        described["arrayProperties"] = {"index": index, "statusSummary": {}}
    return described


def _list_jobs(
    self: BatchBackend,
    job_queue_name: str | None,
    array_job_id: str | None,
    job_status: str | None = None,
    filters: list[dict[str, Any]] | None = None,
) -> list[Job]:
    """ListJobs by queue lists no array children (AWS: those are listed by `arrayJobId` only;
    moto lists them with the queue), and a parent's status is its children's."""
    for job in list(self._jobs.values()):
        if job._child_jobs:
            settle_parent(job)
    jobs: list[Job] = _ORIGINAL_LIST(self, job_queue_name, array_job_id, job_status, filters)
    return jobs if array_job_id else [job for job in jobs if array_index(job) is None]


def _on_spot(job: Job) -> bool:
    """Only Spot capacity is reclaimed: the job's queue leads to a SPOT compute environment."""
    return any(
        str((environment.compute_resources or {}).get("type", "")).upper() == "SPOT"
        for environment in job.job_queue.environments
    )


class _LogStream:
    """Buffers an attempt's lines into the job's CloudWatch Logs stream."""

    def __init__(self, job: Job) -> None:
        self._backend = job._log_backend
        self.name = job._stream_name
        self._pending: list[dict[str, Any]] = []
        self._lock = threading.Lock()
        self.last_line = ""
        self._backend.ensure_log_group(LOG_GROUP)
        if self.name not in self._backend.groups[LOG_GROUP].streams:
            self._backend.create_log_stream(LOG_GROUP, self.name)

    def __call__(self, line: str) -> None:
        self.last_line = line
        with self._lock:
            self._pending.append({"timestamp": int(unix_time_millis()), "message": line or " "})
            if len(self._pending) >= 100:
                self._flush_locked()

    def flush(self) -> None:
        with self._lock:
            self._flush_locked()

    def _flush_locked(self) -> None:
        if self._pending:
            self._backend.put_log_events(LOG_GROUP, self.name, self._pending)
            self._pending = []


def _runnable_limit_s(job: Job, reason: str) -> float | None:
    """Seconds (before the wait scale) after which the job's queue cancels a job RUNNABLE for
    `reason` (its JobStateTimeLimitActions), or None if it never does."""
    limits = [
        float(action["maxTimeSeconds"])
        for action in getattr(job.job_queue, "job_state_time_limit_actions", None) or []
        if action.get("state") == "RUNNABLE"
        and action.get("action") == "CANCEL"
        and action.get("reason") == reason
    ]
    return min(limits) if limits else None


def _attempt_duration_s(job: Job) -> float | None:
    """The job's AttemptDurationSeconds (SubmitJob's timeout, else the job definition's)."""
    for timeout in (getattr(job, "timeout", None), job.job_definition.timeout):
        seconds = (timeout or {}).get("attemptDurationSeconds")
        if seconds:
            return float(seconds)
    return None


class LocalBatch:
    """Runs moto's Batch jobs here. `install()` makes every moto Job use it."""

    def __init__(
        self,
        runner: JobRunner,
        endpoint_url: str,
        capacity: HostCapacity | None = None,
        reclaims: SpotReclaims | None = None,
        spot_capacity: bool = True,
    ) -> None:
        self.runner = runner
        self.endpoint_url = endpoint_url
        self.capacity = capacity or HostCapacity()
        self.reclaims = reclaims or SpotReclaims(0.0, 0)
        self.spot_capacity = spot_capacity  # False: no Spot instance can be launched (fault injection)
        self.listeners: list[Callable[[JobUpdate], None]] = []

    @staticmethod
    def uninstall() -> None:
        Job.run = _ORIGINAL_RUN  # type: ignore[method-assign]
        Job.describe = _ORIGINAL_DESCRIBE  # type: ignore[method-assign]
        BatchBackend.list_jobs = _ORIGINAL_LIST  # type: ignore[method-assign]

    def install(self) -> None:
        executor = self

        def run(job: Job) -> None:
            executor.run_job(job)

        Job.run = run  # type: ignore[method-assign,assignment]
        Job.describe = _describe  # type: ignore[method-assign,assignment]
        BatchBackend.list_jobs = _list_jobs  # type: ignore[method-assign]

    # -- one job, all its attempts -------------------------------------------------------------

    def run_job(self, job: Job) -> None:
        try:
            self._run_job(job)
        except Exception as error:  # a bug here must not leave the job RUNNING forever
            log.exception("local batch: job %s crashed the executor", job.job_name)
            job.job_stopped_reason = f"local executor error: {error}"
            self._finished(job, False, len(job.attempts), str(error))

    def _run_job(self, job: Job) -> None:
        # CloudWatch Logs stream names may not hold ':' (an array child's id does; AWS names a
        # child's stream after its ECS task)
        job._stream_name = job._stream_name.replace(":", "-")
        launch = self._launch(job)
        strategy = RetryStrategy.from_job_definition(job.job_definition.retry_strategy)
        self._set(job, JobStatus.PENDING, 0)
        if job.depends_on and not job._wait_for_dependencies():
            return
        attempt = 0
        while True:
            attempt += 1
            self._set(job, JobStatus.RUNNABLE, attempt)
            cancel = threading.Event()
            stopper = threading.Thread(target=self._watch_terminate, args=(job, cancel), daemon=True)
            stopper.start()
            if not self.spot_capacity and _on_spot(job):
                self._stuck_without_spot(job, cancel)
                cancel.set()
                self._finished(job, False, attempt, job.job_stopped_reason or "")
                return
            with self.capacity.reserved(launch.vcpus, launch.memory_mib, cancel) as admitted:
                if not admitted:
                    self._finished(job, False, attempt, job.job_stopped_reason or "")
                    return
                exit_code, status_reason, reason = self._attempt(job, launch, attempt, cancel)
            cancel.set()
            if exit_code == 0:
                job.exit_code = 0
                job.job_stopped_reason = None
                self._finished(job, True, attempt)
                return
            job.exit_code = exit_code
            job.job_stopped_reason = status_reason
            if job.stop or not strategy.should_retry(attempt, status_reason, reason, exit_code):
                self._finished(job, False, attempt, status_reason)
                return
            log.debug(
                "local batch: %s attempt %d failed (%s); retrying", job.job_name, attempt, status_reason
            )

    @staticmethod
    def _stuck_without_spot(job: Job, cancel: threading.Event) -> None:
        """No Spot instance can be launched: the job waits RUNNABLE with Batch's capacity reason
        until its queue's time limit for that reason cancels it, or CancelJob/TerminateJob.
        Waiting for this machine's vCPUs is not this: on AWS that is a job queued behind others,
        which no time limit action touches."""
        job.job_stopped_reason = STUCK_REASON
        limit = _runnable_limit_s(job, NO_CAPACITY)
        deadline = None if limit is None else time.monotonic() + waits.scaled(limit)
        while not cancel.wait(0.1):
            if deadline is not None and time.monotonic() >= deadline:
                log.debug("local batch: %s RUNNABLE past its queue's time limit; cancelled", job.job_name)
                job.stop = True
                job.job_stopped_reason = TIME_LIMIT_CANCELLED.format(reason=NO_CAPACITY)
                return
        if job.job_stopped_reason == STUCK_REASON:
            job.job_stopped_reason = "Terminated"

    def _attempt(
        self, job: Job, launch: JobLaunch, attempt: int, cancel: threading.Event
    ) -> tuple[int | None, str, str]:
        """Run one attempt; returns (exit code or None, statusReason, container reason)."""
        self._set(job, JobStatus.STARTING, attempt)
        job.job_started_at = datetime.now()
        stream = _LogStream(job)
        job.log_stream_name = stream.name
        job._start_attempt()
        self._set(job, JobStatus.RUNNING, attempt)
        index = array_index(job)
        draw_name = job.job_name if index is None else f"{job.job_name}:{index}"  # each child its own draw
        reclaim = self.reclaims.plan(draw_name, attempt) if _on_spot(job) else None
        timer = None
        if reclaim is not None:
            timer = threading.Timer(reclaim[0], cancel.set)
            timer.daemon = True
            timer.start()
        this_attempt = launch.model_copy(
            update={"environment": {**launch.environment, "AWS_BATCH_JOB_ATTEMPT": str(attempt)}}
        )
        timed_out = threading.Event()
        limit = _attempt_duration_s(job)
        deadline = None
        if limit is not None:

            def expire() -> None:
                timed_out.set()
                cancel.set()

            deadline = threading.Timer(limit, expire)
            deadline.daemon = True
            deadline.start()
        code = self.runner.run(this_attempt, stream, cancel)
        if timer is not None:
            timer.cancel()
        if deadline is not None:
            deadline.cancel()
        stream.flush()
        finished_at = datetime.now()
        if reclaim is not None:
            # the instance vanished: whatever the process managed, the attempt is lost
            exit_code, status_reason, reason = None, f"Host EC2 (instance {reclaim[1]}) terminated.", ""
            stream(status_reason)
            stream.flush()
        elif timed_out.is_set():  # Batch terminates the attempt, and does not retry a timed-out job
            exit_code, status_reason, reason = None, TIMED_OUT, ""
            job.stop = True
            stream(status_reason)
            stream.flush()
        elif job.stop:
            exit_code, status_reason, reason = code, job.job_stopped_reason or "Terminated", ""
        elif code == MEMORY_KILL_EXIT and stream.last_line == OUT_OF_MEMORY:
            # the container went over the job definition's memory: the kernel killed it
            exit_code, status_reason, reason = code, ESSENTIAL_EXITED, OUT_OF_MEMORY
        else:
            exit_code = code
            status_reason = ESSENTIAL_EXITED if code != 0 else ""
            reason = ""
        self._record_attempt(job, finished_at, exit_code, status_reason, reason)
        return exit_code, status_reason, reason

    @staticmethod
    def _record_attempt(
        job: Job, finished_at: datetime, exit_code: int | None, status_reason: str, reason: str
    ) -> None:
        attempt = job.latest_attempt
        assert attempt is not None
        attempt["stoppedAt"] = int(finished_at.timestamp() * 1000)
        attempt["statusReason"] = status_reason
        container = attempt["container"]
        container["logStreamName"] = job.log_stream_name
        if exit_code is not None:
            container["exitCode"] = exit_code
        if reason:
            container["reason"] = reason

    def _watch_terminate(self, job: Job, cancel: threading.Event) -> None:
        """TerminateJob / CancelJob set `job.stop` (of the job, or of its array parent: that ends
        every child); turn it into a kill of the running attempt."""
        parent = _parent(job)
        while not cancel.is_set():
            if parent is not None and parent.stop and not job.stop:
                job.job_stopped_reason = parent.job_stopped_reason or "Terminated"
                job.stop = True
            if job.stop:
                cancel.set()
                return
            time.sleep(0.2)

    # -- the launch: what runs, with which environment -----------------------------------------

    def _launch(self, job: Job) -> JobLaunch:
        properties = job.job_definition.container_properties or {}
        environment: dict[str, str] = {}
        for entry in properties.get("environment", []):
            environment[entry["name"]] = str(entry["value"])
        for entry in job.container_overrides.get("environment", []):
            environment[entry["name"]] = str(entry["value"])
        # Batch's parameters are strings (map<string, string>); moto's CloudFormation resolves a
        # Number template parameter (`AlignShardReadPairs`) to an int in a job definition's
        # Parameters, which AWS's CloudFormation passes as its string
        job.parameters = {name: str(value) for name, value in (job.parameters or {}).items()}
        command = job._add_parameters_to_command(job._get_container_property("command", []))
        vcpus, memory = self.capacity.fit(
            int(float(job._get_container_property("vcpus", 1))),
            int(job._get_container_property("memory", 512)),
        )
        environment.update(
            {
                "AWS_ENDPOINT_URL": self.endpoint_url,
                "AWS_DEFAULT_REGION": job.job_definition._region,
                "AWS_REGION": job.job_definition._region,
                **self._credentials(properties),
                "AWS_BATCH_JOB_ID": job.job_id,
                "GENOPIPE_THREADS": str(vcpus),
            }
        )
        index = array_index(job)
        if index is not None:
            environment["AWS_BATCH_JOB_ARRAY_INDEX"] = str(index)
        return JobLaunch(
            job_id=job.job_id,
            job_name=job.job_name,
            image=str(properties.get("image", "")),
            command=[str(part) for part in command],
            environment=environment,
            vcpus=vcpus,
            memory_mib=memory,
            mounts=mounts_of(properties),
        )

    @staticmethod
    def _credentials(properties: dict[str, Any]) -> dict[str, str]:
        """The job role's keys (ECS gives a task its job role's credentials), or, without IAM
        enforcement, this process's."""
        enforcement = iam.active()
        if enforcement is None:
            return {
                "AWS_ACCESS_KEY_ID": os.environ.get("AWS_ACCESS_KEY_ID", "testing"),
                "AWS_SECRET_ACCESS_KEY": os.environ.get("AWS_SECRET_ACCESS_KEY", "testing"),
                "AWS_SESSION_TOKEN": "",
            }
        role = properties.get("jobRoleArn")
        if not role:  # no job role: the container has no AWS identity of its own
            return {
                "AWS_ACCESS_KEY_ID": "no-job-role",
                "AWS_SECRET_ACCESS_KEY": "no-job-role",
                "AWS_SESSION_TOKEN": "",
            }
        return {"AWS_SESSION_TOKEN": "", **enforcement.role(str(role), "batch-job").environment()}

    # -- status --------------------------------------------------------------------------------

    def _finished(self, job: Job, success: bool, attempt: int, reason: str = "") -> None:
        job._mark_stopped(success=success)
        waits.job_finished()
        self._tell(job, JobStatus.SUCCEEDED if success else JobStatus.FAILED, attempt, reason)

    def _set(self, job: Job, status: str, attempt: int) -> None:
        job.status = status
        self._tell(job, status, attempt)

    def _tell(self, job: Job, status: str, attempt: int, reason: str = "") -> None:
        properties = job.job_definition.container_properties or {}
        command = properties.get("command") or ["?"]
        update = JobUpdate(
            job_id=job.job_id,
            job_name=job.job_name,
            step=str(command[0]),
            sample=str(job.parameters.get("sample", "")),
            status=JobStatus(status).value,
            attempt=attempt,
            reason=reason,
            shard=array_index(job),
        )
        for listener in list(self.listeners):
            try:
                listener(update)
            except Exception:
                log.exception("local batch: a progress listener failed")
