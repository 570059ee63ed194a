"""The check loop's wait schedule and what it costs in state transitions."""

from __future__ import annotations

import pytest

from genopipe.jobs.backoff import (
    DEFAULT_POLICY,
    PollingPolicy,
    detection_delay_seconds,
    fixed_polling_transitions,
    next_wait_seconds,
    policy_from_env,
    polls_until_done,
    transitions_per_step,
)

SIX_HOURS = 6 * 3600


def test_schedule_starts_at_10s_doubles_and_caps() -> None:
    waits, wait = [], None
    for _ in range(13):
        wait = next_wait_seconds(wait)
        waits.append(wait)
    assert waits == [10, 20, 40, 80, 160, 320, 640, 1280, 2560, 5120, 5120, 5120, 5120]


def test_six_hour_job_costs_at_most_40_transitions_against_1081_for_fixed_60s() -> None:
    assert polls_until_done(SIX_HOURS) == 13
    assert transitions_per_step(SIX_HOURS) == 40  # 1 submit + 13 x (wait, check, choice)
    assert fixed_polling_transitions(SIX_HOURS, 60) == 1081  # 1 + 360 x 3
    # the price: the end of a 6-hour job is noticed up to one capped wait late
    assert 0 <= detection_delay_seconds(SIX_HOURS) < DEFAULT_POLICY.max_seconds


@pytest.mark.parametrize("seconds, polls", [(1, 1), (10, 1), (11, 2), (30, 2), (31, 3), (5110, 9)])
def test_short_jobs_are_noticed_quickly(seconds: int, polls: int) -> None:
    assert polls_until_done(seconds) == polls


def test_policy_from_env_and_validation() -> None:
    assert policy_from_env({}) == DEFAULT_POLICY
    assert policy_from_env({"POLL_INITIAL_SECONDS": "1", "POLL_MAX_SECONDS": "1"}) == PollingPolicy(1, 2, 1)
    assert next_wait_seconds(1, PollingPolicy(1, 2, 1)) == 1
    with pytest.raises(ValueError, match="invalid polling policy"):
        PollingPolicy(initial_seconds=20, max_seconds=10)
