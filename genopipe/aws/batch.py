"""AWS Batch: SubmitJob and DescribeJobs for the submit_job and check_job Lambdas."""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING, Any

import boto3
from botocore.exceptions import BotoCoreError, ClientError

from genopipe.events import JobSpec
from genopipe.jobs import JOB_LOG_GROUP, LOG_TAIL_LINES, DescribedJob, JobNotFound

if TYPE_CHECKING:
    from mypy_boto3_batch import BatchClient
else:
    BatchClient = Any


@functools.cache
def client() -> BatchClient:
    return boto3.client("batch")


def submit(spec: JobSpec) -> str:
    """Submit the job; returns its id."""
    response = client().submit_job(
        jobName=spec.job_name,
        jobQueue=spec.job_queue,
        jobDefinition=spec.job_definition,
        parameters=spec.parameters,
        tags=spec.tags,
        propagateTags=True,
    )
    return str(response["jobId"])


def describe(job_id: str) -> DescribedJob:
    jobs = client().describe_jobs(jobs=[job_id]).get("jobs", [])
    if not jobs:
        raise JobNotFound(f"Batch does not know job {job_id} (DescribeJobs returned nothing)")
    return DescribedJob.model_validate(jobs[0])


@functools.cache
def logs_client() -> Any:
    return boto3.client("logs")


def log_tail(stream: str) -> list[str]:
    """The last lines of a job's log stream; [] when it cannot be read (the message says where it is)."""
    try:
        events = logs_client().get_log_events(
            logGroupName=JOB_LOG_GROUP, logStreamName=stream, limit=LOG_TAIL_LINES, startFromHead=False
        )["events"]
    except (ClientError, BotoCoreError):  # the failure is reported either way; its log is a bonus
        return []
    return [str(event["message"]) for event in events if str(event.get("message", "")).strip()]
