"""The end of a sample: promote its staging prefix to `<folder><sample>/` (docs/internals.md) and build the
EventBridge event (DESIGN.md), or, on failure, drop the staging prefix and say what went wrong.

Staged results are never dropped because publishing them failed (a timeout, throttling, a copy
error): hours of compute would be lost to an infrastructure error. Such a sample is reported as
`PublishFailed` with its staging prefix kept, and `genopipe publish <execution ARN>` publishes it
again (the same promotion, from the execution's own notify input).

No AWS in here: staging is reached through the `Staging` port, the bus through `EventBus`
(genopipe.aws adapts both).
"""

from __future__ import annotations

import json
from typing import Any, Protocol

from genopipe.contracts import (
    COMPLETED,
    FAILED,
    ErrorDetail,
    EventBus,
    Failure,
    NotifyRequest,
    Outputs,
    QcSummary,
    SampleEvent,
    SampleEventDetail,
)
from genopipe.layout import SUMMARY_JSON, SampleFiles, published_key, staged_key
from genopipe.notify.cost import Prices, estimate


class PromotionError(Exception):
    """The staging prefix lacks an output that a successful sample must have."""


class Staging(Protocol):
    def list_relative(self, prefix: str) -> list[str]:
        """Keys under the s3:// `prefix`, relative to it."""
        ...

    def copy(self, source: str, destination: str) -> None: ...

    def delete_prefix(self, prefix: str) -> int: ...

    def delete(self, uris: list[str]) -> None: ...

    def read_json(self, uri: str) -> Any: ...


def promotion_plan(sample: str, staged: list[str], staging: str) -> dict[str, str]:
    files = SampleFiles(sample)
    plan = {rel: dest for rel in staged if (dest := published_key(files, rel)) is not None}
    missing = sorted(set(files.required_outputs().values()) - set(plan.values()))
    if missing:
        where = ", ".join(staging + staged_key(m) for m in missing)
        raise PromotionError(
            f"{where}: missing after the report step succeeded; nothing was promoted "
            f"(rerun the sample; if it happens again, the report step's log says why)"
        )
    return plan


def _detail_base(request: NotifyRequest) -> dict[str, Any]:
    return {
        "sample": request.input.sample,
        "execution_arn": request.execution_arn,
        "pipeline_version": request.input.pipeline_version,
    }


def _usage(request: NotifyRequest) -> list[Any]:
    return [usage for job in request.jobs.values() for usage in job.usage()]


def complete(request: NotifyRequest, staging: Staging, bus: EventBus, prices: Prices) -> SampleEvent:
    """Publish the sample's outputs as a whole set under `<folder><sample>/`: copy the new set, then
    delete the files of an earlier run that the new set does not have (the bucket is versioned, so
    the earlier set stays as noncurrent versions), then drop staging. A failure on the way leaves
    staging in place, so publishing can be retried."""
    pipeline = request.input
    prefix = pipeline.staging if pipeline.staging.endswith("/") else pipeline.staging + "/"
    destination = pipeline.outputs_prefix
    plan = promotion_plan(pipeline.sample, staging.list_relative(prefix), prefix)
    qc = QcSummary.model_validate(staging.read_json(prefix + SUMMARY_JSON))
    for relative, promoted in sorted(plan.items()):
        staging.copy(prefix + relative, destination + promoted)
    files, published = SampleFiles(pipeline.sample), set(plan.values())
    stale = [
        key for key in staging.list_relative(destination) if key not in published and files.publishes(key)
    ]
    if stale:
        staging.delete(sorted(destination + key for key in stale))
    staging.delete_prefix(prefix)
    outputs = Outputs(
        **{name: destination + key for name, key in SampleFiles(pipeline.sample).required_outputs().items()}
    )
    event = SampleEvent(
        detail_type=COMPLETED,
        detail=SampleEventDetail(
            **_detail_base(request),
            status="SUCCEEDED",
            outputs=outputs,
            qc=qc,
            cost=estimate(_usage(request), prices),
        ),
    )
    bus.put(event)
    return event


def describe_failure(failure: Failure | None) -> ErrorDetail:
    """The step, the error type and a message a person can act on, from a caught error."""
    if failure is None:
        return ErrorDetail(step="unknown", type="Unknown", message="failed with no error record")
    error_type, message = failure.error, failure.cause
    try:
        cause = json.loads(failure.cause)
    except (json.JSONDecodeError, TypeError):
        cause = None
    if isinstance(cause, dict):  # a Lambda error: {"errorType", "errorMessage", "stackTrace"}
        error_type = str(cause.get("errorType") or error_type)
        message = str(cause.get("errorMessage") or message)
    if error_type == "States.Timeout":
        message = f"the {failure.step} step timed out; {message}".rstrip("; ")
    message = message or f"{error_type} in the {failure.step} step"
    return ErrorDetail(step=failure.step, type=error_type, message=message)


PUBLISH_STEP = "notify"  # the ASL's NotifyFailed records failures of publishing under this step


def publish_failed(failure: Failure, staging_prefix: str, execution_arn: str) -> ErrorDetail:
    """The results are staged and kept: what went wrong, and the command that publishes them."""
    cause = describe_failure(failure)
    return ErrorDetail(
        step=PUBLISH_STEP,
        type="PublishFailed",
        message=(
            f"publishing {staging_prefix} failed ({cause.type}: {cause.message}); the staged results "
            f"are kept: `genopipe publish {execution_arn}` publishes them again"
        ),
    )


def fail(request: NotifyRequest, staging: Staging, bus: EventBus, prices: Prices) -> SampleEvent:
    pipeline = request.input
    prefix = pipeline.staging if pipeline.staging.endswith("/") else pipeline.staging + "/"
    failure = request.failure
    if failure is not None and failure.step == PUBLISH_STEP:
        error = publish_failed(failure, prefix, request.execution_arn)  # keep what was computed
    else:
        staging.delete_prefix(prefix)  # a failed sample: nothing of it is worth keeping
        error = describe_failure(failure)
    event = SampleEvent(
        detail_type=FAILED,
        detail=SampleEventDetail(
            **_detail_base(request),
            status="FAILED",
            cost=estimate(_usage(request), prices),
            error=error,
        ),
    )
    bus.put(event)
    return event


def announce(request: NotifyRequest, staging: Staging, bus: EventBus, prices: Prices) -> SampleEvent:
    if request.outcome == "SUCCEEDED":
        return complete(request, staging, bus, prices)
    return fail(request, staging, bus, prices)
