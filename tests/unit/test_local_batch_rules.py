"""The local Batch executor's rules: RetryStrategy decisions, Spot reclaim draws, bin-packing."""

from __future__ import annotations

import threading
import time

import pytest

from genopipe.local.batch import SpotReclaims
from genopipe.local.capacity import HostCapacity
from genopipe.local.retry_strategy import RetryStrategy

RECLAIM = "Host EC2 (instance i-0123456789abcdef0) terminated."
TEMPLATE_STRATEGY = {  # as template.yaml writes it (CloudFormation casing)
    "Attempts": 3,
    "EvaluateOnExit": [
        {"OnStatusReason": "Host EC2*", "Action": "RETRY"},
        {"OnReason": "*", "Action": "EXIT"},
    ],
}


def test_spot_reclaims_are_retried_until_attempts_run_out() -> None:
    strategy = RetryStrategy.from_job_definition(TEMPLATE_STRATEGY)
    assert strategy.should_retry(1, RECLAIM, "", None)
    assert strategy.should_retry(2, RECLAIM, "", None)
    assert not strategy.should_retry(3, RECLAIM, "", None)


def test_a_failing_step_exits_at_once() -> None:
    strategy = RetryStrategy.from_job_definition(TEMPLATE_STRATEGY)
    assert not strategy.should_retry(1, "Essential container in task exited", "", 1)


def test_api_casing_and_exit_codes() -> None:
    strategy = RetryStrategy.from_job_definition(
        {
            "attempts": 2,
            "evaluateOnExit": [{"onExitCode": "13*", "action": "retry"}, {"onReason": "*", "action": "exit"}],
        }
    )
    assert strategy.should_retry(1, "Essential container in task exited", "", 137)
    assert not strategy.should_retry(1, "Essential container in task exited", "", 1)
    assert not strategy.should_retry(1, RECLAIM, "", None)  # no exit code: onExitCode cannot match


def test_no_matching_condition_retries_and_no_strategy_means_one_attempt() -> None:
    assert RetryStrategy.from_job_definition(
        {"attempts": 2, "evaluateOnExit": [{"onExitCode": "2", "action": "EXIT"}]}
    ).should_retry(1, "x", "", 1)
    assert not RetryStrategy.from_job_definition(None).should_retry(1, RECLAIM, "", None)


def test_reclaims_are_reproducible_and_close_to_the_rate() -> None:
    first, again = SpotReclaims(0.3, seed=5), SpotReclaims(0.3, seed=5)
    draws = [first.plan(f"s{n}-align", 1) for n in range(1000)]
    assert draws == [again.plan(f"s{n}-align", 1) for n in range(1000)]
    assert 240 <= sum(d is not None for d in draws) <= 360
    assert all(d is None or (d[1].startswith("i-") and len(d[1]) == 19) for d in draws)
    assert SpotReclaims(0.0, seed=5).plan("s-align", 1) is None
    with pytest.raises(ValueError, match="reclaim-rate"):
        SpotReclaims(1.5, seed=0)


def test_capacity_admits_jobs_only_while_they_fit() -> None:
    capacity = HostCapacity(vcpus=2, memory_mib=4096)
    assert capacity.fit(8, 30720) == (2, 4096)  # a job bigger than the machine gets the machine
    running: list[int] = []
    peak: list[int] = []
    never = threading.Event()

    def job(vcpus: int) -> None:
        with capacity.reserved(vcpus, 1024, never) as admitted:
            assert admitted
            running.append(vcpus)
            peak.append(sum(running))
            time.sleep(0.2)
            running.remove(vcpus)

    threads = [threading.Thread(target=job, args=(v,)) for v in (1, 1, 2, 1)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert max(peak) <= 2


def test_a_cancelled_job_leaves_the_queue() -> None:
    capacity = HostCapacity(vcpus=1, memory_mib=1024)
    cancelled = threading.Event()
    cancelled.set()
    with capacity.reserved(1, 512, threading.Event()), capacity.reserved(1, 512, cancelled) as admitted:
        assert not admitted
