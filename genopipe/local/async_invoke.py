"""S3 notifications invoke Lambda the way AWS does: asynchronously, with retries and a destination.

moto calls the function once and swallows any error, so an intake that raised would lose its
upload's event without a trace, which AWS does not do when the function has an on-failure
destination. Here, as on AWS: a failed invocation is retried `MaximumRetryAttempts` times (the
function's EventInvokeConfig, default 2; AWS waits about 1 and 2 minutes between tries, the
local stack does not), then Lambda's destination record goes to the `OnFailure` SQS queue; with
no destination the event is dropped, as on AWS, and a warning says so.

Fault injection for the reliability benchmark: `deliveries` sends every notification that many
times (S3 delivers at least once), and `fail_first` makes that fraction of invocations fail
their first try, as a Lambda that crashed would.
"""

from __future__ import annotations

import json
import logging
import random
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import moto.s3.notifications as s3_notifications
from moto.awslambda.models import LambdaFunction
from moto.awslambda.utils import get_backend
from moto.sqs.models import sqs_backends

log = logging.getLogger(__name__)

DEFAULT_RETRIES = 2  # Lambda's default for asynchronous invocations


@dataclass
class AsyncFaults:
    """Fault injection (off by default)."""

    deliveries: int = 1
    fail_first: float = 0.0
    seed: int = 0

    def __post_init__(self) -> None:
        self._random = random.Random(self.seed)
        self._lock = threading.Lock()

    def fails_first_try(self) -> bool:
        with self._lock:
            return self._random.random() < self.fail_first


_ORIGINAL: Callable[..., None] = s3_notifications._invoke_awslambda


def _destination_record(function: LambdaFunction, event: Any, response: Any, tries: int) -> dict[str, Any]:
    """What Lambda sends to an on-failure destination (AWS Lambda developer guide, "Destinations")."""
    return {
        "version": "1.0",
        "timestamp": time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime()),
        "requestContext": {
            "requestId": str(uuid.uuid4()),
            "functionArn": f"{function.function_arn}:$LATEST",
            "condition": "RetriesExhausted",
            "approximateInvokeCount": tries,
        },
        "requestPayload": event,
        "responseContext": {"statusCode": 200, "executedVersion": "$LATEST", "functionError": "Unhandled"},
        "responsePayload": response,
    }


def _send_to_queue(queue_arn: str, body: str) -> None:
    _, _, _, region, account, name = queue_arn.split(":", 5)
    sqs_backends[account][region].send_message(name, body)


def invoke_async(function: LambdaFunction, event: Any, faults: AsyncFaults) -> None:
    """One asynchronous invocation: retried, then sent to the on-failure destination."""
    configs = getattr(function, "event_invoke_config", [])
    config: dict[str, Any] = configs[0].config if configs else {}
    tries = 1 + int(config.get("MaximumRetryAttempts", DEFAULT_RETRIES))
    payload = json.dumps(event)
    response: Any = None
    for attempt in range(1, tries + 1):
        if attempt == 1 and faults.fails_first_try():
            response = {"errorType": "InjectedFault", "errorMessage": "fault injected on the first try"}
            continue
        result, errored, _ = function._invoke_lambda(event=json.loads(payload))
        if not errored:
            return
        response = json.loads(result)
    destination = config.get("DestinationConfig", {}).get("OnFailure", {}).get("Destination")
    if destination:
        _send_to_queue(destination, json.dumps(_destination_record(function, event, response, tries)))
        log.info("%s failed %d times: event sent to %s", function.function_name, tries, destination)
    else:
        log.warning(
            "%s failed %d times and has no on-failure destination: event dropped",
            function.function_name,
            tries,
        )


def install(faults: AsyncFaults | None = None) -> None:
    """Route moto's S3 -> Lambda notifications through `invoke_async`."""
    chosen = faults or AsyncFaults()

    def notify(account_id: str, event_body: Any, fn_arn: str, region_name: str) -> None:
        function = get_backend(account_id, region_name).get_function(fn_arn)
        for _ in range(max(1, chosen.deliveries)):
            invoke_async(function, event_body, chosen)

    s3_notifications._invoke_awslambda = notify


def uninstall() -> None:
    s3_notifications._invoke_awslambda = _ORIGINAL
