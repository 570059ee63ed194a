"""Run the intake sweep on demand on a local stack (on AWS an EventBridge schedule runs it; moto
does not fire schedules). `genopipe local sweep` calls this against a running `genopipe local up`."""

from __future__ import annotations

import json
from typing import Any

import boto3

SWEEP_FUNCTION_MARK = "SweepFunction"


class SweepError(Exception):
    pass


def sweep_function_name() -> str:
    """The deployed sweep Lambda (its name holds the template's logical id)."""
    names = [
        function["FunctionName"]
        for page in boto3.client("lambda").get_paginator("list_functions").paginate()
        for function in page["Functions"]
        if SWEEP_FUNCTION_MARK in function["FunctionName"]
    ]
    if len(names) != 1:
        raise SweepError(f"expected one {SWEEP_FUNCTION_MARK} Lambda on the local stack, found {names}")
    return names[0]


def run_sweep(
    mate_timeout_seconds: float | None = None, lane_settle_seconds: float | None = None
) -> dict[str, list[str]]:
    """Invoke the sweep once; returns its outcome (started, waiting, rejected, ...)."""
    request: dict[str, Any] = {"source": "genopipe.local", "detail-type": "Scheduled Event"}
    if mate_timeout_seconds is not None:
        request["mate_timeout_seconds"] = mate_timeout_seconds
    if lane_settle_seconds is not None:
        request["lane_settle_seconds"] = lane_settle_seconds
    response = boto3.client("lambda").invoke(FunctionName=sweep_function_name(), Payload=json.dumps(request))
    payload = json.loads(response["Payload"].read() or b"{}")
    if response.get("FunctionError"):
        raise SweepError(f"the sweep failed: {payload.get('errorType')}: {payload.get('errorMessage')}")
    return dict(payload)
