"""AWS Batch: SubmitJob and DescribeJobs for the submit_job and check_job Lambdas."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import boto3
from botocore.exceptions import BotoCoreError, ClientError

from genopipe.aws.clients import sdk_client
from genopipe.contracts import JobSpec
from genopipe.jobs.status import JOB_LOG_GROUP, LOG_TAIL_LINES, DescribedJob, JobNotFound, child_ids

if TYPE_CHECKING:
    from mypy_boto3_batch import BatchClient
else:
    BatchClient = Any


@sdk_client
def client() -> BatchClient:
    return boto3.client("batch")


def submit(spec: JobSpec) -> str:
    """Submit the job; returns its id."""
    arguments: dict[str, Any] = {}
    if spec.array_size is not None:
        arguments["arrayProperties"] = {"size": spec.array_size}
    response = client().submit_job(
        jobName=spec.job_name,
        jobQueue=spec.job_queue,
        jobDefinition=spec.job_definition,
        parameters=spec.parameters,
        tags=spec.tags,
        propagateTags=True,
        **arguments,
    )
    return str(response["jobId"])


class BatchLookup:
    """genopipe.jobs.submission.JobLookup: ListJobs by name on the queue, then DescribeJobs."""

    def submitted_since(self, spec: JobSpec, since: float) -> list[str]:
        batch = client()
        filters = [
            {"name": "JOB_NAME", "values": [spec.job_name]},
            {"name": "AFTER_CREATED_AT", "values": [str(int(since * 1000))]},
        ]
        ids = [
            summary["jobId"]
            for page in batch.get_paginator("list_jobs").paginate(jobQueue=spec.job_queue, filters=filters)
            for summary in page["jobSummaryList"]
            if summary.get("jobName") == spec.job_name and summary.get("createdAt", 0) >= since * 1000
        ]
        staging = spec.parameters.get("staging")
        found = []
        for start in range(0, len(ids), 100):
            for job in batch.describe_jobs(jobs=ids[start : start + 100]).get("jobs", []):
                if job.get("parameters", {}).get("staging") == staging:
                    found.append((job.get("createdAt", 0), str(job["jobId"])))
        return [job_id for _, job_id in sorted(found)]


def describe(job_id: str) -> DescribedJob:
    jobs = client().describe_jobs(jobs=[job_id]).get("jobs", [])
    if not jobs:
        raise JobNotFound(f"Batch does not know job {job_id} (DescribeJobs returned nothing)")
    return DescribedJob.model_validate(jobs[0])


def describe_children(parent: DescribedJob) -> list[DescribedJob]:
    """Every child of an array job, in index order (DescribeJobs takes 100 ids a call)."""
    ids = child_ids(parent.jobId, parent.array_size or 0)
    children: list[DescribedJob] = []
    for start in range(0, len(ids), 100):
        found = client().describe_jobs(jobs=ids[start : start + 100]).get("jobs", [])
        children += [DescribedJob.model_validate(job) for job in found]
    if len(children) != len(ids):
        raise JobNotFound(
            f"Batch knows {len(children)} of the {len(ids)} children of array job {parent.jobId}"
        )
    return sorted(
        children, key=lambda child: child.arrayProperties.index or 0 if child.arrayProperties else 0
    )


@sdk_client
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
