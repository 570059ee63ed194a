"""Step Functions StartExecution for the intake Lambda."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

import boto3

from genopipe.aws.clients import sdk_client

if TYPE_CHECKING:
    from mypy_boto3_stepfunctions import SFNClient
else:
    SFNClient = Any


@sdk_client
def client() -> SFNClient:
    return boto3.client("stepfunctions")


def start_execution(state_machine_arn: str, name: str, input_json: str) -> bool:
    """Start it; False when an execution of that name already exists (a duplicate S3 event)."""
    sfn = client()
    try:
        sfn.start_execution(stateMachineArn=state_machine_arn, name=name, input=input_json)
    except sfn.exceptions.ExecutionAlreadyExists:
        return False
    return True


class StepFunctionsExecutions:
    """genopipe.intake.admission.Executions: starts executions of one state machine."""

    def __init__(self, state_machine_arn: str) -> None:
        self.state_machine_arn = state_machine_arn

    def start(self, name: str, input_json: str) -> None:
        start_execution(self.state_machine_arn, name, input_json)


def notify_request(execution_arn: str) -> dict[str, Any] | None:
    """The input the execution gave its notify Lambda for publishing (NotifySuccess), from the
    execution's history, newest first; None if it never got that far."""
    pages = (
        client()
        .get_paginator("get_execution_history")
        .paginate(executionArn=execution_arn, reverseOrder=True)
    )
    for page in pages:
        for event in page["events"]:
            details = event.get("lambdaFunctionScheduledEventDetails") or event.get(
                "taskScheduledEventDetails"
            )
            if not details:
                continue
            payload = json.loads(details.get("input") or details.get("parameters") or "{}")
            if isinstance(payload, dict) and payload.get("outcome") == "SUCCEEDED":
                return payload
    return None
