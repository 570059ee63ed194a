"""Scale down the waits of moto's Step Functions interpreter (Wait states, Retry intervals).

On AWS a check loop that waits 30 s between DescribeJobs calls costs nothing; locally the same
wait would dominate a one-minute sample. The ASL is unchanged: every wait it asks for is
multiplied by `factor` (1.0 = real time), and a Wait state also ends early when a local Batch job
reaches SUCCEEDED or FAILED (`job_finished()`), so the exponential backoff of the check loop does
not leave a finished step idle for up to as long again as it ran.
"""

from __future__ import annotations

import threading
import time
from types import SimpleNamespace
from typing import Any

from moto.stepfunctions.parser.asl.component.common.retry import retrier_decl
from moto.stepfunctions.parser.asl.component.state.wait.wait_function.wait_function import WaitFunction

DEFAULT_FACTOR = 0.05
_original_wait_interval = WaitFunction._wait_interval
_state = {"factor": 1.0}
_finished = threading.Condition()
_generation = [0]


def job_finished() -> None:
    """A Batch job ended: wake every Wait state, its check will see the news."""
    with _finished:
        _generation[0] += 1
        _finished.notify_all()


def _scaled_wait_interval(self: WaitFunction, env: Any, wait_seconds: int) -> None:
    deadline = time.monotonic() + wait_seconds * _state["factor"]
    with _finished:
        seen = _generation[0]
        while _generation[0] == seen and not env.program_state_event.is_set():
            left = deadline - time.monotonic()
            if left <= 0:
                return
            _finished.wait(min(left, 0.2))  # short slices: a stopped execution still interrupts it


def scaled(seconds: float) -> float:
    """A wait of the deployed stack (e.g. a queue's time limit) as it passes locally."""
    return seconds * _state["factor"]


def install(factor: float = DEFAULT_FACTOR) -> None:
    if factor <= 0:
        raise ValueError(f"wait scale {factor}: must be > 0")
    _state["factor"] = factor
    WaitFunction._wait_interval = _scaled_wait_interval  # type: ignore[method-assign]
    # the retrier sleeps with `time.sleep(interval)` from its module's `time`
    retrier_decl.time = SimpleNamespace(  # type: ignore[assignment]
        sleep=lambda seconds: time.sleep(seconds * _state["factor"]), time=time.time
    )


def uninstall() -> None:
    WaitFunction._wait_interval = _original_wait_interval  # type: ignore[method-assign]
    retrier_decl.time = time
