"""Submit one pipeline step as a Batch job; returns the job state the state machine carries."""

from __future__ import annotations

import os
import time
from typing import Any

from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext

from genopipe.aws import batch, s3
from genopipe.aws.clients import unavailable_is_retried
from genopipe.aws.ledger import DynamoSubmissions
from genopipe.contracts import SubmitRequest
from genopipe.jobs.backoff import policy_from_env
from genopipe.jobs.status import job_spec, pinned_reads, plan_uri, reads_uri, shard_count, submitted
from genopipe.jobs.submission import submit_once
from genopipe.pipeline import scattered

logger = Logger()
tracer = Tracer()
metrics = Metrics()

POLICY = policy_from_env(os.environ)
SUBMISSIONS = DynamoSubmissions(os.environ["INTAKE_TABLE"])
LOOKUP = batch.BatchLookup()


@logger.inject_lambda_context(clear_state=True)  # no keys left by an earlier invocation
@tracer.capture_lambda_handler
@metrics.log_metrics
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    request = SubmitRequest.model_validate(event)
    logger.append_keys(sample=request.input.sample, step=request.step, capacity=request.capacity)
    with unavailable_is_retried():
        # the lanes travel by reference (Batch's 8 KiB container overrides hold ~30 inline)
        s3.write_bytes(reads_uri(request.input), pinned_reads(request.input), content_type="application/json")
        shards = 1
        if scattered(request.step):  # one array child per entry of the plan an earlier step wrote
            uri = plan_uri(request.input, request.step)
            shards = shard_count(s3.read_json(uri), uri)
    spec = job_spec(request, shards)
    with unavailable_is_retried():
        submission = submit_once(request, spec, SUBMISSIONS, LOOKUP, batch.submit, time.time)
    job_id = submission.job_id
    if not submission.first:  # a retried invocation: the job an earlier one submitted
        logger.info("job already submitted", extra={"job_id": job_id, "job_queue": spec.job_queue})
        metrics.add_metric(name="DuplicateSubmits", unit=MetricUnit.Count, value=1)
        return submitted(request, spec, job_id, POLICY).model_dump(mode="json")
    logger.info("job submitted", extra={"job_id": job_id, "job_queue": spec.job_queue, "shards": shards})
    metrics.add_metric(name="JobsSubmitted", unit=MetricUnit.Count, value=1)
    if request.replaces is not None:
        metrics.add_metric(name="OnDemandFallbacks", unit=MetricUnit.Count, value=1)
    return submitted(request, spec, job_id, POLICY).model_dump(mode="json")
