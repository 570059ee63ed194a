"""Scheduled sweep: start waiting samples that are now complete and quiet; report a sample whose
mate (or lane, or sample-sheet file) is still missing after the timeout as `Sample Failed`."""

from __future__ import annotations

import os
from typing import Any

from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext

from genopipe.aws.admission import from_environment

logger = Logger()
tracer = Tracer()
metrics = Metrics()

ADMISSION = from_environment(os.environ)


@logger.inject_lambda_context
@tracer.capture_lambda_handler
@metrics.log_metrics
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, list[str]]:
    outcome = ADMISSION.sweep()
    for name, values in outcome.as_dict().items():
        if values:
            logger.info(name, extra={name: values})
    metrics.add_metric(name="SweepStarted", unit=MetricUnit.Count, value=len(outcome.started))
    metrics.add_metric(name="SamplesMateMissing", unit=MetricUnit.Count, value=len(outcome.rejected))
    return outcome.as_dict()
