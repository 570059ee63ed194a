"""S3 ObjectCreated -> start one pipeline execution per sample whose files are all present
(exactly once; incomplete samples are recorded for the sweep; bad inputs fail at once)."""

from __future__ import annotations

import os
from typing import Any
from urllib.parse import unquote_plus

from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext

from genopipe.aws.admission import from_environment
from genopipe.contracts import S3Notification
from genopipe.intake.admission import Outcome

logger = Logger()
tracer = Tracer()
metrics = Metrics()

ADMISSION = from_environment(os.environ)
METRICS = {
    "started": "ExecutionsStarted",
    "duplicates": "DuplicateEvents",
    "rejected": "InputsRejected",
    "ignored": "KeysIgnored",
}


@logger.inject_lambda_context(clear_state=True)  # no keys left by an earlier invocation
@tracer.capture_lambda_handler
@metrics.log_metrics
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, list[str]]:
    notification = S3Notification.model_validate(event)
    summary = Outcome()
    for record in notification.Records:
        if record.s3.object is None:  # not an object notification (e.g. s3:TestEvent)
            continue
        key = unquote_plus(record.s3.object.key)  # S3 URL-encodes keys in events
        outcome = ADMISSION.on_object(record.s3.bucket.name, key)
        for name, values in outcome.as_dict().items():
            getattr(summary, name).extend(values)
    for name, values in summary.as_dict().items():
        if values:
            logger.info(name, extra={name: values})
            if name in METRICS:
                metrics.add_metric(name=METRICS[name], unit=MetricUnit.Count, value=len(values))
    return summary.as_dict()
