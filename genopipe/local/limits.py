"""Service limits the local stack enforces where moto does not (docs/internals.md, "Limits").

- S3: a single-request copy (CopyObject) of a source over 5 GB is rejected with AWS's
  `InvalidRequest` (the limit is `LIMITS.s3_single_copy_bytes`, so a test can lower it).
- Batch SubmitJob: a request over 30 KiB, or container overrides over 8 KiB (the ECS task
  overrides limit Batch passes them through; the job's command, its `Ref::` parameters
  substituted, is one of them: a list of lanes inline in a parameter held ~30 lanes), or an
  `arrayProperties.size` outside 2..10,000, is rejected with `ClientException`.
- Step Functions: moto's interpreter already fails a state whose output is over 256 KB with
  `States.DataLimitExceeded`; nothing to add here.
- Lambda Timeout and Batch memory / AttemptDurationSeconds are enforced where the local stack
  runs them (genopipe.local.lambdas, genopipe.local.batch and .executors).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from moto.batch.exceptions import ClientException
from moto.batch.responses import BatchResponse
from moto.s3.exceptions import S3ClientError
from moto.s3.models import S3Backend

GIB = 1024**3


@dataclass
class ServiceLimits:
    s3_single_copy_bytes: int = 5 * GIB
    batch_submit_job_bytes: int = 30 * 1024
    batch_container_overrides_bytes: int = 8 * 1024
    batch_array_size_min: int = 2
    batch_array_size_max: int = 10_000


LIMITS = ServiceLimits()

_ORIGINAL_COPY = S3Backend.copy_object
_ORIGINAL_SUBMIT = BatchResponse.submitjob


class CopySourceTooLarge(S3ClientError):
    def __init__(self, size: int) -> None:
        super().__init__(
            "InvalidRequest",
            "The specified copy source is larger than the maximum allowable size for a copy source: "
            f"{LIMITS.s3_single_copy_bytes} (this one: {size} bytes; copy it in parts with UploadPartCopy)",
        )


def _copy_object(self: S3Backend, src_key: Any, *args: Any, **kwargs: Any) -> Any:
    if int(src_key.size) > LIMITS.s3_single_copy_bytes:
        raise CopySourceTooLarge(int(src_key.size))
    return _ORIGINAL_COPY(self, src_key, *args, **kwargs)


def _submit_job(self: BatchResponse) -> Any:
    body = self.body if isinstance(self.body, str | bytes) else json.dumps(self.body)
    size = len(body.encode() if isinstance(body, str) else body)
    if size > LIMITS.batch_submit_job_bytes:
        raise ClientException(
            f"SubmitJob request of {size} bytes exceeds the maximum job payload size "
            f"({LIMITS.batch_submit_job_bytes} bytes)"
        )
    array = self._get_param("arrayProperties") or {}
    if "size" in array:
        size = int(array["size"])
        if not LIMITS.batch_array_size_min <= size <= LIMITS.batch_array_size_max:
            raise ClientException(
                f"Array properties size must be between {LIMITS.batch_array_size_min} and "
                f"{LIMITS.batch_array_size_max} (this one: {size})"
            )
    overrides = dict(self._get_param("containerOverrides") or {})
    if "command" not in overrides:
        command = _resolved_command(self)
        if command:
            overrides["command"] = command
    if overrides:
        overrides_size = len(json.dumps(overrides, separators=(",", ":")).encode())
        if overrides_size > LIMITS.batch_container_overrides_bytes:
            raise ClientException(
                f"Container Overrides length must be at most {LIMITS.batch_container_overrides_bytes} "
                f"bytes (this one: {overrides_size}, the job's command with its parameters included)"
            )
    return _ORIGINAL_SUBMIT(self)


def _resolved_command(response: BatchResponse) -> list[str]:
    """The job definition's command with the job's `Ref::` parameters substituted: what Batch
    hands ECS as the task's command override."""
    definition = response.batch_backend.get_job_definition(response._get_param("jobDefinition"))
    if definition is None or not definition.container_properties:
        return []
    parameters = {**definition.parameters, **(response._get_param("parameters") or {})}
    return [
        str(parameters.get(part.removeprefix("Ref::"), part))
        if isinstance(part, str) and part.startswith("Ref::")
        else str(part)
        for part in definition.container_properties.get("command", [])
    ]


def install() -> None:
    S3Backend.copy_object = _copy_object  # type: ignore[method-assign]
    BatchResponse.submitjob = _submit_job  # type: ignore[method-assign]


def uninstall() -> None:
    S3Backend.copy_object = _ORIGINAL_COPY  # type: ignore[method-assign]
    BatchResponse.submitjob = _ORIGINAL_SUBMIT  # type: ignore[method-assign]
