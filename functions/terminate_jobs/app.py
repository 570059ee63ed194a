"""An execution stopped, timed out or failed: terminate its Batch jobs, and answer for the sample."""

from __future__ import annotations

import os
from typing import Any

from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext

from genopipe.aws.eventbridge import EventBridgeBus
from genopipe.aws.execution_jobs import BatchExecutionJobs
from genopipe.jobs.abort import ExecutionStatusChange, clean_up

logger = Logger()
tracer = Tracer()
metrics = Metrics()

JOBS = BatchExecutionJobs(os.environ.get("JOB_QUEUES", "").split(","))
BUS = EventBridgeBus(os.environ.get("EVENT_BUS_NAME") or "default")


@logger.inject_lambda_context(clear_state=True)  # no keys left by an earlier invocation
@tracer.capture_lambda_handler
@metrics.log_metrics
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    change = ExecutionStatusChange.model_validate(event["detail"])
    logger.append_keys(execution_arn=change.executionArn, status=change.status)
    outcome = clean_up(change, JOBS, BUS)
    logger.info("execution ended early", extra={"terminated": outcome.terminated})
    metrics.add_metric(name="JobsTerminated", unit=MetricUnit.Count, value=len(outcome.terminated))
    return {
        "execution_arn": outcome.execution_arn,
        "status": outcome.status,
        "terminated": outcome.terminated,
        "announced": outcome.event is not None,
    }
