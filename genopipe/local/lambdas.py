"""Lambda invocations run the real handlers in this process (moto alone would need Docker).

`moto.awslambda.models.LambdaFunction._invoke_lambda` is the one seam every invocation goes
through (the Lambda API, Step Functions tasks, S3 notifications). Ours imports the handler from
the function's code folder (the template's `CodeUri`), sets the function's environment for the
call, and returns the handler's JSON result, or `{"errorType", "errorMessage"}` marked as errored
so Step Functions applies Retry/Catch by the exception's class name, as on AWS.
"""

from __future__ import annotations

import contextvars
import importlib.util
import io
import json
import logging
import sys
import threading
import time
import traceback
import uuid
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

from moto.awslambda.models import LambdaFunction

from genopipe.local import environment, iam

log = logging.getLogger(__name__)


@dataclass
class LambdaContext:
    """The attributes of the AWS Lambda Python runtime's context object that handlers use."""

    function_name: str
    function_version: str
    invoked_function_arn: str
    memory_limit_in_mb: int
    log_group_name: str
    log_stream_name: str
    timeout_s: float
    aws_request_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    started: float = field(default_factory=time.monotonic)

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int((self.timeout_s - (time.monotonic() - self.started)) * 1000))


class _PerThreadStdout(io.TextIOBase):
    """sys.stdout that a handler's thread can capture without hiding other threads' output."""

    def __init__(self, real: Any) -> None:
        self._real = real
        self._local = threading.local()

    def write(self, text: str) -> int:
        target = getattr(self._local, "buffer", None) or self._real
        return int(target.write(text))

    def flush(self) -> None:
        (getattr(self._local, "buffer", None) or self._real).flush()

    def isatty(self) -> bool:
        return bool(self._real.isatty())

    def fileno(self) -> int:
        return int(self._real.fileno())

    @contextmanager
    def captured(self) -> Iterator[io.StringIO]:
        self._local.buffer = io.StringIO()
        try:
            yield self._local.buffer
        finally:
            self._local.buffer = None


_STDOUT: _PerThreadStdout | None = None


class HandlerRegistry:
    """Where each function's code lives, and its imported handler modules."""

    def __init__(self, code_folders: dict[str, Path]) -> None:
        self._folders = code_folders  # S3 key of the code package -> folder on disk
        self._modules: dict[tuple[Path, str], ModuleType] = {}

    def handler_for(self, function: LambdaFunction) -> Callable[[Any, Any], Any]:
        key = function.code.get("S3Key", "")
        folder = self._folders.get(key)
        if folder is None:
            raise RuntimeError(f"{function.function_name}: no local code for package s3://.../{key}")
        module_name, _, attribute = str(function.handler).rpartition(".")
        module = self._module(folder, module_name)
        handler = getattr(module, attribute, None)
        if not callable(handler):
            raise RuntimeError(f"{folder}/{module_name}.py: no handler function {attribute!r}")
        return handler

    def _module(self, folder: Path, dotted: str) -> ModuleType:
        cached = self._modules.get((folder, dotted))
        if cached is not None:
            return cached
        path = folder.joinpath(*dotted.split(".")).with_suffix(".py")
        # every function has an `app` module: give each a unique name so they do not collide
        unique = f"genopipe_lambda_{folder.name}_{dotted.replace('.', '_')}"
        spec = importlib.util.spec_from_file_location(unique, path)
        if spec is None or spec.loader is None:
            raise RuntimeError(f"{path}: cannot import the handler module")
        module = importlib.util.module_from_spec(spec)
        sys.path.insert(0, str(folder))  # sibling imports, as in the Lambda runtime's /var/task
        try:
            sys.modules[unique] = module
            spec.loader.exec_module(module)
        finally:
            sys.path.remove(str(folder))
        self._modules[(folder, dotted)] = module
        return module


def _invoke(registry: HandlerRegistry, function: LambdaFunction, event: Any) -> tuple[str, bool, str]:
    if isinstance(event, str | bytes):
        event = json.loads(event or "{}")
    variables = {
        "AWS_LAMBDA_FUNCTION_NAME": function.function_name,
        "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": str(function.memory_size),
        "AWS_LAMBDA_FUNCTION_VERSION": str(function.version),
        "AWS_LAMBDA_LOG_GROUP_NAME": function.logs_group_name,
        "AWS_SAM_LOCAL": "true",  # as under `sam local`: Powertools' tracer stays off (no X-Ray here)
        **{k: str(v) for k, v in function.environment_vars.items()},
    }
    context = LambdaContext(
        function_name=function.function_name,
        function_version=str(function.version),
        invoked_function_arn=function.function_arn,
        memory_limit_in_mb=int(function.memory_size),
        log_group_name=function.logs_group_name,
        log_stream_name=f"local/{uuid.uuid4().hex}",
        timeout_s=float(function.timeout),
    )
    assert _STDOUT is not None
    stdout = _STDOUT
    enforcement = iam.active()
    outcome: dict[str, Any] = {}

    def run_handler() -> None:
        """In a thread of its own, so that the invocation can be cut off at the function's Timeout."""
        with stdout.captured() as output:
            try:
                # the function's own execution role, for this invocation only (other threads keep theirs)
                principal = enforcement.role(str(function.role), "lambda") if enforcement else None
                handler = registry.handler_for(function)
                with iam.acting_as(principal):
                    outcome["result"] = handler(event, context)
            except Exception as error:
                outcome["error"] = error
            finally:
                outcome["logs"] = output.getvalue()

    # os.environ is process-wide, so handlers run one at a time (they are short: API calls only)
    with environment.LOCK, environment.lambda_variables(variables):
        worker = threading.Thread(
            target=contextvars.copy_context().run,
            args=(run_handler,),
            daemon=True,
            name=function.function_name,
        )
        worker.start()
        worker.join(context.timeout_s)
    if worker.is_alive():
        # as Lambda does: the invocation ends at its Timeout with Sandbox.Timedout, which Step Functions
        # sees as the error name (the abandoned thread cannot be killed; its late calls go nowhere)
        payload = json.dumps(
            {
                "errorType": "Sandbox.Timedout",
                "errorMessage": f"RequestId: {context.aws_request_id} Error: Task timed out after "
                f"{context.timeout_s:.2f} seconds",
            }
        )
        errored = True
        log.debug("lambda %s timed out after %.2f s", function.function_name, context.timeout_s)
    elif "error" in outcome:
        error = outcome["error"]
        payload = json.dumps(
            {
                "errorType": type(error).__name__,
                "errorMessage": str(error),
                "stackTrace": traceback.format_tb(error.__traceback__),
            }
        )
        errored = True
        log.debug("lambda %s raised %s: %s", function.function_name, type(error).__name__, error)
    else:
        payload, errored = json.dumps(outcome.get("result"), default=str), False
    logs = str(outcome.get("logs", ""))
    _store_logs(function, context.log_stream_name, logs + ("" if not errored else payload))
    return payload, errored, logs


def _store_logs(function: LambdaFunction, stream: str, text: str) -> None:
    lines = [line for line in text.splitlines() if line.strip()]
    if not lines:
        return
    backend = function.logs_backend
    backend.ensure_log_group(function.logs_group_name)
    backend.create_log_stream(function.logs_group_name, stream)
    now = int(time.time() * 1000)
    backend.put_log_events(
        function.logs_group_name, stream, [{"timestamp": now, "message": line} for line in lines]
    )


_ORIGINAL_INVOKE = LambdaFunction._invoke_lambda


def uninstall() -> None:
    """Give moto back its own Lambda invocation and the process its stdout."""
    global _STDOUT
    LambdaFunction._invoke_lambda = _ORIGINAL_INVOKE  # type: ignore[method-assign]
    environment.forget_lambda_variables()
    if _STDOUT is not None and sys.stdout is _STDOUT:
        sys.stdout = _STDOUT._real
    _STDOUT = None


def install(code_folders: dict[str, Path]) -> None:
    """Route every Lambda invocation of this process's moto to the in-process runtime."""
    global _STDOUT
    registry = HandlerRegistry(code_folders)
    # on AWS this warning lands in the function's log; here it would interrupt the progress display
    warnings.filterwarnings("ignore", message="No application metrics to publish", category=UserWarning)
    if _STDOUT is None:  # handlers (Powertools) log JSON to stdout: keep it in their log streams
        _STDOUT = _PerThreadStdout(sys.stdout)
        sys.stdout = _STDOUT

    def invoke_in_process(self: LambdaFunction, event: Any = None) -> tuple[str, bool, str]:
        return _invoke(registry, self, event)

    LambdaFunction._invoke_lambda = invoke_in_process  # type: ignore[method-assign]
