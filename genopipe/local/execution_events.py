"""Step Functions' execution status change events, and EventBridge rules that target Lambda.

On AWS every execution of a Standard state machine puts a "Step Functions Execution Status
Change" event (source `aws.states`) on the default bus when it starts and when it ends; the
template's rules on it (TerminateJobsFunction's `ExecutionEnded`) invoke their Lambda targets
asynchronously, through the function's resource policy (the AWS::Lambda::Permission SAM adds for
`events.amazonaws.com`, for that rule's ARN). moto's interpreter puts no such event, and moto's
EventBridge raises NotImplementedError for a Lambda target. Here, as on AWS:

- when moto's interpreter starts or ends an execution, the event, in AWS's shape (dates in epoch
  milliseconds, `input` as a JSON string, `resources` = the execution ARN), is put on the default
  bus through moto's own EventBridge backend, so moto's pattern matcher decides which rules match;
- a matching, ENABLED rule's Lambda target is invoked asynchronously (genopipe.local.async_invoke:
  Lambda's retries and destinations) only if the function's resource policy lets
  `events.amazonaws.com` invoke it for that rule; otherwise the delivery fails, as EventBridge's
  does on AWS, and a warning says so. The handler runs under its own execution role
  (genopipe.local.lambdas). Other targets go to moto's own delivery.

Not emulated: moto's StopExecution drops the call's `error` and `cause`, so a locally stopped
execution's event has neither (on AWS they are in the event and in the Sample Failed message).
"""

from __future__ import annotations

import copy
import fnmatch
import json
import logging
import threading
import time
from collections.abc import Callable
from typing import Any

from moto.awslambda.models import LambdaFunction
from moto.awslambda.utils import get_backend
from moto.events.models import Rule, events_backends
from moto.stepfunctions.parser.backend.execution import BaseExecutionWorkerCommunication, Execution
from moto.utilities.arns import parse_arn

from genopipe.local.async_invoke import AsyncFaults, invoke_async

log = logging.getLogger(__name__)

SOURCE = "aws.states"
DETAIL_TYPE = "Step Functions Execution Status Change"
EVENTS_PRINCIPAL = "events.amazonaws.com"

_ORIGINAL_TERMINATED: Callable[[BaseExecutionWorkerCommunication], None] = (
    BaseExecutionWorkerCommunication.terminated
)
_ORIGINAL_START: Callable[[Execution], None] = Execution.start
_ORIGINAL_SEND: Callable[..., None] = Rule.send_to_targets
deliveries: list[threading.Thread] = []  # the asynchronous invocations started (tests join them)


def _millis(value: Any) -> int | None:
    return None if value is None else int(value.timestamp() * 1000)


def status_change_detail(execution: Execution) -> dict[str, Any]:
    """The event's `detail`, as Step Functions writes it (EventBridge user guide, "Step Functions
    events"): output only for SUCCEEDED, error and cause only when set."""
    status = str(execution.exec_status.value if execution.exec_status else "RUNNING")
    succeeded = status == "SUCCEEDED"
    return {
        "executionArn": execution.exec_arn,
        "stateMachineArn": execution.state_machine_arn,
        "name": execution.name,
        "status": status,
        "startDate": _millis(execution.start_date),
        "stopDate": _millis(execution.stop_date),
        "input": json.dumps(execution.input_data, separators=(",", ":")),
        "output": json.dumps(execution.output, separators=(",", ":")) if succeeded else None,
        "inputDetails": {"included": True},
        "outputDetails": {"included": True} if succeeded else None,
        "error": execution.error,
        "cause": execution.cause,
        "redriveCount": 0,
        "redriveDate": None,
        "redriveStatus": "NOT_REDRIVABLE" if succeeded else "REDRIVABLE",
        "redriveStatusReason": None,
    }


def put_status_change(execution: Execution) -> None:
    backend = events_backends[execution.account_id][execution.region_name]
    entries = backend.put_events(
        [
            {
                "Source": SOURCE,
                "DetailType": DETAIL_TYPE,
                "Detail": json.dumps(status_change_detail(execution)),
                "Resources": [execution.exec_arn],
                "Time": time.time(),
            }
        ]
    )
    log.debug("local stack: %s %s: %s", DETAIL_TYPE, execution.exec_status, entries)


def _allows(function: LambdaFunction, rule_arn: str) -> bool:
    """Does the function's resource policy let EventBridge invoke it for `rule_arn`?"""
    for statement in getattr(function.policy, "statements", []):
        principal = statement.get("Principal", {})
        services = principal.get("Service", []) if isinstance(principal, dict) else principal
        services = [services] if isinstance(services, str) else services
        actions = statement.get("Action", [])
        actions = [actions] if isinstance(actions, str) else actions
        if statement.get("Effect") != "Allow" or EVENTS_PRINCIPAL not in services:
            continue
        if not any(fnmatch.fnmatch("lambda:InvokeFunction", action) for action in actions):
            continue
        conditions = statement.get("Condition", {})
        sources = [
            arn
            for operator in ("ArnLike", "ArnEquals", "StringEquals", "StringLike")
            for arn in [conditions.get(operator, {}).get("AWS:SourceArn")]
            if arn is not None
        ]
        if all(fnmatch.fnmatchcase(rule_arn, pattern) for pattern in sources):
            return True
    return False


def _event_for_target(target: dict[str, Any], event: dict[str, Any]) -> dict[str, Any]:
    if "Input" in target:
        return dict(json.loads(target["Input"]))
    if "InputPath" in target or "InputTransformer" in target:
        raise NotImplementedError(f"rule target {target['Id']}: InputPath/InputTransformer to Lambda")
    delivered = {key: value for key, value in event.items() if key != "ingestion-time"}
    if isinstance(delivered.get("time"), int | float):
        delivered["time"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(delivered["time"]))
    return delivered


def _deliver(rule: Rule, target: dict[str, Any], event: dict[str, Any]) -> None:
    arn = parse_arn(target["Arn"])
    function = get_backend(arn.account, arn.region).get_function(target["Arn"])
    if not _allows(function, rule.arn):
        log.warning(
            "EventBridge rule %s cannot invoke %s: its resource policy does not allow %s for the rule "
            "(AWS::Lambda::Permission); the event is not delivered",
            rule.name,
            function.function_name,
            EVENTS_PRINCIPAL,
        )
        return
    invoke_async(function, _event_for_target(target, event), AsyncFaults())


def _send_to_targets(rule: Rule, event: dict[str, Any], transform_input: bool = True) -> None:
    to_lambda = [t for t in rule.targets if parse_arn(t["Arn"]).service == "lambda"]
    others = [t for t in rule.targets if t not in to_lambda]
    if others:
        rest = copy.copy(rule)  # moto's own delivery, for the targets it has
        rest.targets = others
        _ORIGINAL_SEND(rest, event, transform_input)
    if not to_lambda or rule.state != "ENABLED" or not rule.event_pattern.matches_event(event):  # type: ignore[arg-type]
        return
    for target in to_lambda:
        thread = threading.Thread(
            target=_deliver, args=(rule, target, json.loads(json.dumps(event))), daemon=True
        )
        deliveries[:] = [*(t for t in deliveries if t.is_alive()), thread]  # a long `local up` keeps few
        thread.start()


def _put_or_log(execution: Execution) -> None:
    try:
        put_status_change(execution)
    except Exception:  # the execution stands; only its event is lost, and said so
        log.exception("local stack: could not put the status change of %s", execution.exec_arn)


def _terminated(comm: BaseExecutionWorkerCommunication) -> None:
    _ORIGINAL_TERMINATED(comm)
    _put_or_log(comm.execution)


def _start(execution: Execution) -> None:
    _put_or_log(execution)  # RUNNING (no status yet), before the worker can end it
    _ORIGINAL_START(execution)


def install() -> None:
    BaseExecutionWorkerCommunication.terminated = _terminated  # type: ignore[method-assign,assignment]
    Execution.start = _start  # type: ignore[method-assign,assignment]
    Rule.send_to_targets = _send_to_targets  # type: ignore[method-assign,assignment]


def uninstall() -> None:
    BaseExecutionWorkerCommunication.terminated = _ORIGINAL_TERMINATED  # type: ignore[method-assign,assignment]
    Execution.start = _ORIGINAL_START  # type: ignore[method-assign,assignment]
    Rule.send_to_targets = _ORIGINAL_SEND  # type: ignore[method-assign]
