"""How long the state machine waits between two checks of a Batch job.

The check Lambda returns the next wait: 10 s, doubling, capped at 5120 s. A poll costs three state
transitions (Wait, Check, Choice) and the submit one, so the cap is chosen to keep a 6-hour job at
<= 40 transitions for its step while short jobs (validate: seconds) are still noticed quickly.
`transitions_per_step` computes the figure for any job length and schedule.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

TRANSITIONS_PER_POLL = 3  # Wait + Check (Task) + Choice
TRANSITIONS_TO_SUBMIT = 1  # the Submit task


@dataclass(frozen=True)
class PollingPolicy:
    initial_seconds: int = 10
    factor: int = 2
    max_seconds: int = 5120

    def __post_init__(self) -> None:
        if self.initial_seconds < 0 or self.max_seconds < self.initial_seconds or self.factor < 1:
            raise ValueError(f"invalid polling policy: {self}")


DEFAULT_POLICY = PollingPolicy()


def policy_from_env(environ: Mapping[str, str]) -> PollingPolicy:
    """`POLL_INITIAL_SECONDS` / `POLL_MAX_SECONDS` (set by the template; the local stack and tests
    shrink them), the defaults otherwise."""
    return PollingPolicy(
        initial_seconds=int(environ.get("POLL_INITIAL_SECONDS") or DEFAULT_POLICY.initial_seconds),
        max_seconds=int(environ.get("POLL_MAX_SECONDS") or DEFAULT_POLICY.max_seconds),
    )


def next_wait_seconds(previous: int | None, policy: PollingPolicy = DEFAULT_POLICY) -> int:
    """The wait before the next check, given the wait before the last one (None: first check)."""
    if previous is None:
        return policy.initial_seconds
    grown = max(previous, policy.initial_seconds) * policy.factor
    return max(policy.initial_seconds, min(policy.max_seconds, grown))


def polls_until_done(job_seconds: float, policy: PollingPolicy = DEFAULT_POLICY) -> int:
    """How many checks it takes to see a job that finishes `job_seconds` after its submission."""
    if policy.max_seconds == 0:
        raise ValueError("a policy that never waits polls forever")
    waited, wait, polls = 0, next_wait_seconds(None, policy), 0
    while True:
        waited += wait
        polls += 1
        if waited >= job_seconds:
            return polls
        wait = next_wait_seconds(wait, policy)


def transitions_per_step(job_seconds: float, policy: PollingPolicy = DEFAULT_POLICY) -> int:
    return TRANSITIONS_TO_SUBMIT + TRANSITIONS_PER_POLL * polls_until_done(job_seconds, policy)


def fixed_polling_transitions(job_seconds: float, interval_seconds: int = 60) -> int:
    """The same figure for a loop that checks every `interval_seconds`."""
    return TRANSITIONS_TO_SUBMIT + TRANSITIONS_PER_POLL * max(1, math.ceil(job_seconds / interval_seconds))


def detection_delay_seconds(job_seconds: float, policy: PollingPolicy = DEFAULT_POLICY) -> int:
    """How long after the job ends the state machine notices it."""
    waited, wait = 0, next_wait_seconds(None, policy)
    for _ in range(polls_until_done(job_seconds, policy)):
        waited += wait
        wait = next_wait_seconds(wait, policy)
    return int(waited - job_seconds)


if __name__ == "__main__":
    six_hours = 6 * 3600
    print(
        f"6-hour job: {transitions_per_step(six_hours)} transitions with backoff {DEFAULT_POLICY} "
        f"(noticed {detection_delay_seconds(six_hours)} s late), "
        f"{fixed_polling_transitions(six_hours)} with fixed 60 s polling"
    )
