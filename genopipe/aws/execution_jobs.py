"""Batch ListJobs / DescribeJobs / TerminateJob for the terminate_jobs Lambda
(genopipe.jobs.abort.ExecutionJobs)."""

from __future__ import annotations

from genopipe.aws.batch import client
from genopipe.jobs.abort import ListedJob

DESCRIBE_BATCH = 100  # DescribeJobs takes at most 100 ids


class BatchExecutionJobs:
    def __init__(self, job_queues: list[str]) -> None:
        self.job_queues = [queue for queue in job_queues if queue]

    def named_like(self, name_prefix: str) -> list[ListedJob]:
        """ListJobs with a JOB_NAME prefix filter (any status) on each queue, then DescribeJobs for
        the `staging` parameter, which ListJobs does not return."""
        batch = client()
        ids: list[str] = []
        for queue in self.job_queues:
            pages = batch.get_paginator("list_jobs").paginate(
                jobQueue=queue, filters=[{"name": "JOB_NAME", "values": [name_prefix + "*"]}]
            )
            ids += [summary["jobId"] for page in pages for summary in page["jobSummaryList"]]
        found = []
        for start in range(0, len(ids), DESCRIBE_BATCH):
            for job in batch.describe_jobs(jobs=ids[start : start + DESCRIBE_BATCH]).get("jobs", []):
                found.append(
                    ListedJob(
                        job_id=str(job["jobId"]),
                        job_name=str(job["jobName"]),
                        status=str(job["status"]),
                        staging=job.get("parameters", {}).get("staging"),
                        created_at=int(job.get("createdAt", 0)),
                    )
                )
        return found

    def terminate(self, job_id: str, reason: str) -> None:
        client().terminate_job(jobId=job_id, reason=reason)
