"""What the terminate_jobs Lambda does with an execution's status change (genopipe.jobs.abort),
on in-memory Batch and bus; the event is the one `sam local invoke` uses (events/)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from genopipe.jobs.abort import ExecutionStatusChange, InputUnavailable, ListedJob, clean_up
from tests.fakes import MemoryBus

EVENT = json.loads((Path(__file__).parents[2] / "events" / "execution_aborted.json").read_text())
STAGING = json.loads(EVENT["detail"]["input"])["staging"]
STARTED = EVENT["detail"]["startDate"]


class MemoryJobs:
    def __init__(self, jobs: list[ListedJob]) -> None:
        self.jobs = jobs
        self.terminated: list[tuple[str, str]] = []
        self.prefixes: list[str] = []

    def named_like(self, name_prefix: str) -> list[ListedJob]:
        self.prefixes.append(name_prefix)
        return [job for job in self.jobs if job.job_name.lower().startswith(name_prefix.lower())]

    def terminate(self, job_id: str, reason: str) -> None:
        self.terminated.append((job_id, reason))


def job(
    job_id: str, name: str, status: str, staging: str = STAGING, created: int = STARTED + 5000
) -> ListedJob:
    return ListedJob(job_id=job_id, job_name=name, status=status, staging=staging, created_at=created)


def change(**detail: Any) -> ExecutionStatusChange:
    return ExecutionStatusChange.model_validate({**EVENT["detail"], **detail})


def test_only_this_executions_unfinished_jobs_are_terminated() -> None:
    jobs = MemoryJobs(
        [
            job("a", "NA12878-validate", "SUCCEEDED"),
            job("b", "NA12878-align", "RUNNING"),
            job("c", "NA12878-call", "RUNNABLE"),
            job("d", "NA12878-align", "RUNNING", staging="s3://out/.staging/NA12878-other/"),  # another run
            job("e", "NA12878-align", "RUNNING", created=STARTED - 1),  # before this execution
            job("f", "NA12878x-align", "RUNNING", staging="s3://out/.staging/NA12878x-1/"),  # another sample
        ]
    )
    bus = MemoryBus()
    outcome = clean_up(change(), jobs, bus)
    assert [job_id for job_id, _ in jobs.terminated] == ["b", "c"]
    assert jobs.terminated[0][1] == f"genopipe: execution {EVENT['detail']['name']} ABORTED"
    assert jobs.prefixes == ["NA12878-"]
    assert outcome.terminated == ["NA12878-align", "NA12878-call"]
    (event,) = bus
    assert event.detail_type == "Sample Failed"
    assert event.detail.execution_arn == EVENT["detail"]["executionArn"]
    assert event.detail.error is not None
    assert event.detail.error.type == "ExecutionAborted"
    assert event.detail.error.step == "align,call"
    assert "NA12878-align, NA12878-call" in event.detail.error.message


def test_a_timed_out_execution_is_announced_as_such() -> None:
    bus = MemoryBus()
    clean_up(change(status="TIMED_OUT"), MemoryJobs([]), bus)
    (event,) = bus
    assert event.detail.error is not None
    assert event.detail.error.type == "ExecutionTimedOut"
    assert "no job was running" in event.detail.error.message


def test_a_failure_the_state_machine_announced_is_not_announced_twice() -> None:
    jobs = MemoryJobs([job("b", "NA12878-reference", "RUNNING")])  # the other branch of Prepare
    bus = MemoryBus()
    outcome = clean_up(change(status="FAILED", error="SampleFailed", cause="A step failed"), jobs, bus)
    assert [job_id for job_id, _ in jobs.terminated] == ["b"]
    assert outcome.event is None and not bus


def test_an_uncaught_failure_is_announced_with_its_error() -> None:
    bus = MemoryBus()
    clean_up(change(status="FAILED", error="States.Runtime", cause="bad path"), MemoryJobs([]), bus)
    (event,) = bus
    assert event.detail.error is not None
    assert event.detail.error.type == "States.Runtime"
    assert "bad path" in event.detail.error.message


def test_an_event_without_the_input_says_so() -> None:
    with pytest.raises(InputUnavailable, match="carries no input"):
        clean_up(change(input=None), MemoryJobs([]), MemoryBus())
