"""A Batch job definition's RetryStrategy, decided the way AWS Batch decides it.

`attempts` (1-10) bounds the attempts. After a failed attempt, the `evaluateOnExit` entries are
tried in order; an entry matches when each of its patterns (`onStatusReason`, `onReason`,
`onExitCode`; glob, `*` allowed only at the end) matches; the first match's `action` (RETRY or
EXIT) decides. When none matches, the job is retried while attempts remain.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator


def _camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(part.title() for part in rest)


class ExitCondition(BaseModel):
    model_config = ConfigDict(alias_generator=_camel, populate_by_name=True)

    on_status_reason: str | None = None
    on_reason: str | None = None
    on_exit_code: str | None = None
    action: str

    @field_validator("action")
    @classmethod
    def _upper(cls, value: str) -> str:
        return value.upper()


class RetryStrategy(BaseModel):
    model_config = ConfigDict(alias_generator=_camel, populate_by_name=True)

    attempts: int = Field(default=1, ge=1, le=10)
    evaluate_on_exit: list[ExitCondition] = []

    @classmethod
    def from_job_definition(cls, raw: dict[str, Any] | None) -> RetryStrategy:
        """Accepts the API's camelCase or CloudFormation's PascalCase keys."""

        def lower_first(value: Any) -> Any:
            if isinstance(value, dict):
                return {k[:1].lower() + k[1:]: lower_first(v) for k, v in value.items()}
            if isinstance(value, list):
                return [lower_first(v) for v in value]
            return value

        return cls.model_validate(lower_first(raw or {}))

    def should_retry(
        self, attempts_made: int, status_reason: str, reason: str, exit_code: int | None
    ) -> bool:
        if attempts_made >= self.attempts:
            return False
        for condition in self.evaluate_on_exit:
            if _condition_matches(condition, status_reason, reason, exit_code):
                return condition.action == "RETRY"
        return True


def _glob(pattern: str | None, value: str) -> bool:
    if pattern is None:
        return True
    if pattern.endswith("*"):
        return value.startswith(pattern[:-1])
    return value == pattern


def _condition_matches(
    condition: ExitCondition, status_reason: str, reason: str, exit_code: int | None
) -> bool:
    if condition.on_exit_code is not None and exit_code is None:
        return False
    return (
        _glob(condition.on_status_reason, status_reason)
        and _glob(condition.on_reason, reason)
        and _glob(condition.on_exit_code, "" if exit_code is None else str(exit_code))
    )
