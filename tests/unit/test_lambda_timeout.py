"""An in-process Lambda invocation honours the function's Timeout: cut off, reported as Lambda does."""

from __future__ import annotations

import json
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from genopipe.local import lambdas


class _NoLogs:
    def ensure_log_group(self, name: str) -> None: ...
    def create_log_stream(self, group: str, stream: str) -> None: ...
    def put_log_events(self, group: str, stream: str, events: list[dict[str, Any]]) -> None: ...


def test_a_handler_over_its_timeout_is_cut_off_as_lambda_reports_it(tmp_path: Path) -> None:
    folder = tmp_path / "slow"
    folder.mkdir()
    (folder / "app.py").write_text(
        "import time\n\ndef handler(event, context):\n    time.sleep(5)\n    return 'late'\n"
    )
    function = SimpleNamespace(
        function_name="slow",
        memory_size=128,
        version="$LATEST",
        logs_group_name="/aws/lambda/slow",
        environment_vars={},
        function_arn="arn:aws:lambda:us-east-1:123456789012:function:slow",
        timeout=1,
        code={"S3Key": "functions/slow"},
        handler="app.handler",
        role="",
        logs_backend=_NoLogs(),
    )
    lambdas.install({"functions/slow": folder})
    try:
        started = time.monotonic()
        payload, errored, _ = lambdas._invoke(
            lambdas.HandlerRegistry({"functions/slow": folder}), function, {}
        )  # type: ignore[arg-type]
        took = time.monotonic() - started
    finally:
        lambdas.uninstall()
    assert errored
    answer = json.loads(payload)
    assert answer["errorType"] == "Sandbox.Timedout"
    assert "Task timed out after 1.00 seconds" in answer["errorMessage"]
    assert took < 3.0


def test_an_invocations_variables_are_never_removed_from_the_environment() -> None:
    """Copying os.environ in another thread (botocore does, for every new client) must never meet a
    key removed between listing and reading it: set back to "", and left out of job snapshots."""
    import os

    from genopipe.local import environment

    name = "GENOPIPE_TEST_ONLY_IN_A_LAMBDA"
    assert name not in os.environ
    with environment.LOCK, environment.lambda_variables({name: "set"}):
        assert os.environ[name] == "set"
    assert os.environ[name] == ""  # still there: a concurrent copy cannot raise KeyError
    assert name not in environment.snapshot()  # a Batch job is not launched with it
    environment.forget_lambda_variables()  # when the stack stops
    assert name not in os.environ
