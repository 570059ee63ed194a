"""End of a sample: promote or drop staging, then put Sample Completed / Sample Failed."""

from __future__ import annotations

import os
from typing import Any

from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext

from genopipe.aws.eventbridge import EventBridgeBus
from genopipe.aws.staging import S3Staging
from genopipe.contracts import NotifyRequest
from genopipe.notify.announce import announce
from genopipe.notify.cost import Prices

logger = Logger()
tracer = Tracer()
metrics = Metrics()

PRICES = Prices(
    spot_per_vcpu_hour=float(os.environ["SPOT_PRICE_PER_VCPU_HOUR"]),
    on_demand_per_vcpu_hour=float(os.environ["ON_DEMAND_PRICE_PER_VCPU_HOUR"]),
)
BUS = EventBridgeBus(os.environ.get("EVENT_BUS_NAME") or "default")
STAGING = S3Staging()


@logger.inject_lambda_context(clear_state=True)  # no keys left by an earlier invocation
@tracer.capture_lambda_handler
@metrics.log_metrics
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    request = NotifyRequest.model_validate(event)
    logger.append_keys(sample=request.input.sample, outcome=request.outcome)
    event_out = announce(request, STAGING, BUS, PRICES)
    detail = event_out.detail.model_dump(mode="json", exclude_none=True)
    logger.info(event_out.detail_type, extra={"detail": detail})
    metric = "SamplesCompleted" if request.outcome == "SUCCEEDED" else "SamplesFailed"
    metrics.add_metric(name=metric, unit=MetricUnit.Count, value=1)
    return event_out.model_dump(mode="json", exclude_none=True)
