"""Describe a step's Batch job: running (with the next wait), succeeded, reclaimed, or JobFailed."""

from __future__ import annotations

import os
from typing import Any

from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext

from genopipe.aws import batch
from genopipe.aws.clients import unavailable_is_retried
from genopipe.contracts import JobState
from genopipe.jobs.backoff import policy_from_env
from genopipe.jobs.status import JobFailed, advance, needs_children

logger = Logger()
tracer = Tracer()
metrics = Metrics()

POLICY = policy_from_env(os.environ)


@logger.inject_lambda_context(clear_state=True)  # no keys left by an earlier invocation
@tracer.capture_lambda_handler
@metrics.log_metrics
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    state = JobState.model_validate(event)
    logger.append_keys(step=state.step, job_id=state.job_id, capacity=state.capacity)
    try:
        with unavailable_is_retried():
            job = batch.describe(state.job_id)
            # an array job (a scattered step) that has ended: every child's attempts and failures
            children = batch.describe_children(job) if needs_children(job) else None
            updated = advance(state, job, POLICY, batch.log_tail, children)
    except JobFailed as error:
        logger.warning("job failed", extra={"problem": str(error)})
        metrics.add_metric(name="JobsFailed", unit=MetricUnit.Count, value=1)
        raise
    if updated.status == "RECLAIMED":
        logger.warning("spot host reclaimed", extra={"status_reason": updated.status_reason})
        metrics.add_metric(name="SpotReclaims", unit=MetricUnit.Count, value=1)
    return updated.model_dump(mode="json")
