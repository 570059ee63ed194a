"""Scheduled sweep: run the intake again for uploads whose intake invocation failed (the intake's
on-failure queue); start waiting samples that are now complete and quiet; report a sample whose
mate (or lane, or sample-sheet file) is still missing after the timeout as `Sample Failed`."""

from __future__ import annotations

import os
from typing import Any

from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext
from pydantic import BaseModel, ConfigDict

from genopipe.aws.admission import from_environment
from genopipe.aws.failed_uploads import SqsFailedUploads
from genopipe.intake.admission import AdmissionSettings

logger = Logger()
tracer = Tracer()
metrics = Metrics()

ADMISSION = from_environment(os.environ)
FAILED_UPLOADS = SqsFailedUploads(os.environ["INTAKE_FAILURE_QUEUE_URL"])


class SweepRequest(BaseModel):
    """The scheduled event carries neither field; a manual invocation (`genopipe local sweep`) may
    ask for other timeouts for this sweep only."""

    model_config = ConfigDict(extra="ignore")

    mate_timeout_seconds: float | None = None
    lane_settle_seconds: float | None = None

    def overrides(self, defaults: AdmissionSettings) -> AdmissionSettings | None:
        if self.mate_timeout_seconds is None and self.lane_settle_seconds is None:
            return None
        mate = self.mate_timeout_seconds
        settle = self.lane_settle_seconds
        return AdmissionSettings(
            mate_timeout_s=defaults.mate_timeout_s if mate is None else mate,
            lane_settle_s=defaults.lane_settle_s if settle is None else settle,
        )


@logger.inject_lambda_context(clear_state=True)  # no keys left by an earlier invocation
@tracer.capture_lambda_handler
@metrics.log_metrics
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, list[str]]:
    request = SweepRequest.model_validate(event or {})
    outcome = ADMISSION.retry_failed(FAILED_UPLOADS)
    for name, values in ADMISSION.sweep(request.overrides(ADMISSION.admission)).as_dict().items():
        getattr(outcome, name).extend(values)
    for name, values in outcome.as_dict().items():
        if values:
            logger.info(name, extra={name: values})
    metrics.add_metric(name="SweepStarted", unit=MetricUnit.Count, value=len(outcome.started))
    metrics.add_metric(name="SamplesMateMissing", unit=MetricUnit.Count, value=len(outcome.rejected))
    return outcome.as_dict()
