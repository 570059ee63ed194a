"""The process environment, shared by in-process Lambda invocations and everything else.

An in-process Lambda handler sees its function's variables (as in its own sandbox on AWS) through
`os.environ`, which is process-wide: invocations run one at a time under `LOCK`, setting their
variables and setting them back after.

A variable is never removed while the stack runs: copying the environment (`dict(os.environ)`,
`os.environ.copy()`, which botocore does for every new client) lists the keys and then reads each,
so a key removed in between raised `KeyError('AWS_LAMBDA_FUNCTION_NAME')` in whatever thread was
copying (3 of 100 samples in a burst, and once in a CI run, measured 2026-11-30). A variable no
invocation had before is set back to "" instead, and `snapshot()` (what a Batch job is launched
with) leaves those out, so jobs never see a Lambda's variables.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager

LOCK = threading.RLock()
_EMPTIED: set[str] = set()  # names only Lambda invocations set: "" between invocations


def snapshot() -> dict[str, str]:
    """The process environment without any Lambda invocation's variables."""
    with LOCK:
        current = dict(os.environ)
    return {name: value for name, value in current.items() if not (name in _EMPTIED and value == "")}


@contextmanager
def lambda_variables(variables: dict[str, str]) -> Iterator[None]:
    """Set a function's variables for one invocation (the caller holds LOCK), then set each back:
    to its earlier value, or to "" if it had none (never removed: see the module docstring)."""
    saved = {}
    for name in variables:
        if name not in os.environ:
            _EMPTIED.add(name)
        saved[name] = os.environ.get(name, "")
    os.environ.update(variables)
    try:
        yield
    finally:
        os.environ.update(saved)


def forget_lambda_variables() -> None:
    """Remove the variables only invocations set, once none can run any more (the stack stopped):
    the process (a test session) goes on with the environment it had."""
    with LOCK:
        for name in sorted(_EMPTIED):
            if os.environ.get(name) == "":
                del os.environ[name]
        _EMPTIED.clear()
