"""bench/orchestration.py walks the real ASL; its per-step counts must agree with genopipe.jobs.backoff's."""

from __future__ import annotations

import json
from pathlib import Path

import orchestration
import pytest

from genopipe.jobs.backoff import DEFAULT_POLICY, fixed_polling_transitions, transitions_per_step

REPO = Path(__file__).resolve().parents[2]


ASL = json.loads((REPO / "statemachine" / "pipeline.asl.json").read_text())


def test_steps_are_read_from_the_state_machine_in_order() -> None:
    assert orchestration.steps_in(ASL) == [
        "validate", "qc", "reference", "align", "markdup", "call", "concat", "report"
    ]  # fmt: skip


@pytest.mark.parametrize("seconds", [5, 60, 600, 3600, 6 * 3600, 24 * 3600])
def test_walk_matches_the_backoff_arithmetic(seconds: int) -> None:
    steps = orchestration.steps_in(ASL)
    for policy, expected in (
        (DEFAULT_POLICY, transitions_per_step(seconds)),
        (orchestration.FIXED_60S, fixed_polling_transitions(seconds)),
    ):
        tally = orchestration.walk(ASL, dict.fromkeys(steps, seconds), policy)
        assert tally.per_step["align"]["transitions"] == expected
        # one Lambda per Submit and per Check
        assert tally.per_step["align"]["lambda_invocations"] == 1 + tally.per_step["align"]["polls"]
        # Start, the Parallel state with its two branch ends (ReadsReady, IndexesReady), Prepared,
        # PreparedStatus (Pass/Choice) and NotifySuccess (Task) belong to the sample, not to a step
        assert tally.transitions == sum(s["transitions"] for s in tally.per_step.values())
        assert tally.per_step["sample"] == {"transitions": 7, "lambda_invocations": 1, "polls": 0}


def test_six_hour_jobs_cost_far_fewer_transitions_with_backoff() -> None:
    steps = orchestration.steps_in(ASL)
    backoff = orchestration.walk(ASL, dict.fromkeys(steps, 6 * 3600), DEFAULT_POLICY)
    fixed = orchestration.walk(ASL, dict.fromkeys(steps, 6 * 3600), orchestration.FIXED_60S)
    assert backoff.per_step["align"]["transitions"] <= 40
    assert fixed.transitions > 20 * backoff.transitions
