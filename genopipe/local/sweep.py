"""The intake sweep on the local stack. On AWS an EventBridge Scheduler schedule (the template's
`SweepSchedule`) invokes it; moto fires no schedule, so the local stack runs a `SweepTimer` at the
schedule's rate times the wait scale, and `genopipe local sweep` invokes it once on demand."""

from __future__ import annotations

import json
import logging
import re
import threading
from collections.abc import Callable
from typing import Any

import boto3

log = logging.getLogger(__name__)

SWEEP_FUNCTION_MARK = "SweepFunction"
_RATE = re.compile(r"^rate\(\s*(\d+)\s+(minute|minutes|hour|hours|day|days)\s*\)$")
_UNIT_S = {"minute": 60, "hour": 3600, "day": 86400}


class SweepError(Exception):
    pass


def rate_seconds(expression: str) -> float:
    """Seconds between runs of an EventBridge `rate(N unit)` expression (cron ones are refused)."""
    match = _RATE.match(expression.strip())
    if match is None:
        raise SweepError(f"SweepSchedule {expression!r}: local stacks run rate(N minutes/hours/days) only")
    count, unit = int(match.group(1)), match.group(2).rstrip("s")
    if count < 1:
        raise SweepError(f"SweepSchedule {expression!r}: the rate must be at least 1")
    return float(count * _UNIT_S[unit])


def sweep_function_name() -> str:
    """The deployed sweep Lambda (its name holds the template's logical id)."""
    lambda_client = boto3.session.Session().client("lambda")
    names = [
        function["FunctionName"]
        for page in lambda_client.get_paginator("list_functions").paginate()
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
    # a session per call: the timer thread and the caller may sweep at the same time
    lambda_client = boto3.session.Session().client("lambda")
    response = lambda_client.invoke(FunctionName=sweep_function_name(), Payload=json.dumps(request))
    payload = json.loads(response["Payload"].read() or b"{}")
    if response.get("FunctionError"):
        raise SweepError(f"the sweep failed: {payload.get('errorType')}: {payload.get('errorMessage')}")
    return dict(payload)


class SweepTimer:
    """Invokes the sweep every `interval_s` seconds on a daemon thread, like the schedule does."""

    def __init__(
        self,
        interval_s: float,
        sweep: Callable[[], dict[str, list[str]]] = run_sweep,
        listener: Callable[[dict[str, list[str]]], None] | None = None,
    ) -> None:
        if interval_s <= 0:
            raise SweepError(f"sweep interval {interval_s}: must be > 0")
        self.interval_s = interval_s
        self.runs = 0
        self._sweep, self._listener = sweep, listener
        self._stopped = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="genopipe-sweep", daemon=True)

    def start(self) -> SweepTimer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stopped.set()
        if self._thread.is_alive():
            self._thread.join(timeout=30)

    def _loop(self) -> None:
        while not self._stopped.wait(self.interval_s):
            try:
                outcome = self._sweep()
            except Exception:  # a failed sweep is retried at the next tick, as the schedule would
                log.exception("local stack: the scheduled sweep failed")
                continue
            self.runs += 1
            if any(outcome.get(name) for name in ("started", "rejected")):
                log.info("local stack: sweep %s", outcome)
            if self._listener is not None:
                self._listener(outcome)
