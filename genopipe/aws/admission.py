"""The intake and sweep Lambdas' `Admission`, wired to S3, DynamoDB, Step Functions and EventBridge
from the environment the template sets."""

from __future__ import annotations

import time
from collections.abc import Mapping

from genopipe import __version__
from genopipe.aws.eventbridge import EventBridgeBus
from genopipe.aws.input_store import S3InputStore
from genopipe.aws.ledger import DynamoLedger
from genopipe.aws.stepfunctions import StepFunctionsExecutions
from genopipe.intake.admission import Admission, AdmissionSettings
from genopipe.intake.plan import IntakeSettings


def from_environment(environ: Mapping[str, str]) -> Admission:
    settings = IntakeSettings(
        output_bucket=environ["OUTPUT_BUCKET"],
        reference=environ["REFERENCE_URI"],
        aligner="bwa" if environ.get("ALIGNER") == "bwa" else "minimap2",
        default_caller="freebayes" if environ.get("CALLER") == "freebayes" else "bcftools",
        pipeline_version=__version__,
    )
    admission = AdmissionSettings(
        mate_timeout_s=float(environ.get("MATE_TIMEOUT_SECONDS") or "3600"),
        lane_settle_s=float(environ.get("LANE_SETTLE_SECONDS") or "300"),
        upload_wait_cap_s=float(environ.get("UPLOAD_WAIT_CAP_SECONDS") or "86400"),
    )
    return Admission(
        store=S3InputStore(),
        ledger=DynamoLedger(environ["INTAKE_TABLE"]),
        executions=StepFunctionsExecutions(environ["STATE_MACHINE_ARN"]),
        bus=EventBridgeBus(environ.get("EVENT_BUS_NAME") or "default"),
        settings=settings,
        admission=admission,
        clock=time.time,
    )
