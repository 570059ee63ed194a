"""S3 ObjectCreated -> start one pipeline execution per sample whose files are all present."""

from __future__ import annotations

import os
from typing import Any
from urllib.parse import unquote_plus

from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext

from genopipe import __version__
from genopipe.aws import stepfunctions
from genopipe.aws.input_store import S3InputStore
from genopipe.events import S3Notification
from genopipe.intake import IntakeSettings, plan
from genopipe.pairing import PairingError
from genopipe.samplesheet import SamplesheetError

logger = Logger()
tracer = Tracer()
metrics = Metrics()

STATE_MACHINE_ARN = os.environ["STATE_MACHINE_ARN"]
SETTINGS = IntakeSettings(
    output_bucket=os.environ["OUTPUT_BUCKET"],
    reference=os.environ["REFERENCE_URI"],
    aligner="bwa" if os.environ.get("ALIGNER") == "bwa" else "minimap2",
    pipeline_version=__version__,
)
STORE = S3InputStore()


@logger.inject_lambda_context
@tracer.capture_lambda_handler
@metrics.log_metrics
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, list[str]]:
    notification = S3Notification.model_validate(event)
    outcomes = ("started", "duplicates", "waiting", "ignored", "rejected")
    summary: dict[str, list[str]] = {outcome: [] for outcome in outcomes}
    for record in notification.Records:
        if record.s3.object is None:  # not an object notification (e.g. s3:TestEvent)
            continue
        bucket, key = record.s3.bucket.name, unquote_plus(record.s3.object.key)
        try:
            decision = plan(bucket, key, STORE, SETTINGS)
        except (PairingError, SamplesheetError) as error:
            logger.error("input rejected", extra={"problem": str(error)})
            metrics.add_metric(name="InputsRejected", unit=MetricUnit.Count, value=1)
            summary["rejected"].append(str(error))
            continue
        if decision.ignored:
            logger.info("key ignored", extra={"reason": decision.ignored})
            metrics.add_metric(name="KeysIgnored", unit=MetricUnit.Count, value=1)
            summary["ignored"].append(decision.ignored)
        for reason in decision.waiting:
            logger.info("sample incomplete", extra={"reason": reason})
            summary["waiting"].append(reason)
        for request in decision.requests:
            about = {"execution": request.name, "sample": request.input.sample}
            if stepfunctions.start_execution(STATE_MACHINE_ARN, request.name, request.input_json()):
                logger.info("execution started", extra=about)
                metrics.add_metric(name="ExecutionsStarted", unit=MetricUnit.Count, value=1)
                summary["started"].append(request.name)
            else:
                logger.info("duplicate event", extra=about)
                metrics.add_metric(name="DuplicateEvents", unit=MetricUnit.Count, value=1)
                summary["duplicates"].append(request.name)
    return summary
