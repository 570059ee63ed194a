"""bench/reliability.py records what became of every sample of a burst, with the reason."""

from __future__ import annotations

import reliability


def test_every_outcome_is_recorded_with_its_reason() -> None:
    completed = {"detail-type": "Sample Completed", "detail": {"sample": "s1"}}
    failed = {
        "detail-type": "Sample Failed",
        "detail": {
            "sample": "s2",
            "error": {"step": "intake", "type": "MateMissing", "message": "R2 missing"},
        },
    }
    assert reliability.outcome_of(completed) == {"outcome": "Sample Completed"}
    assert reliability.outcome_of(failed) == {
        "outcome": "Sample Failed",
        "reason": "intake: MateMissing: R2 missing",
    }
    assert reliability.outcome_of(None)["outcome"] == "no event"
