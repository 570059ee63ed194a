"""The local stack's stand-in for the template's sweep schedule: rate parsing, scaled timeouts, the timer."""

from __future__ import annotations

import argparse
import threading

import pytest

from genopipe.local.stack import REPO_ROOT, scaled_parameters
from genopipe.local.sweep import SweepError, SweepTimer, rate_seconds
from genopipe.local.template import load


@pytest.mark.parametrize(
    ("expression", "seconds"),
    [
        ("rate(5 minutes)", 300.0),
        ("rate(1 minute)", 60.0),
        ("rate(2 hours)", 7200.0),
        ("rate(1 day)", 86400.0),
    ],
)
def test_rate_expressions(expression: str, seconds: float) -> None:
    assert rate_seconds(expression) == seconds


@pytest.mark.parametrize("expression", ["cron(0 * * * ? *)", "rate(0 minutes)", "rate(5 weeks)", "5 minutes"])
def test_other_schedules_are_refused_by_name(expression: str) -> None:
    with pytest.raises(SweepError, match="SweepSchedule"):
        rate_seconds(expression)


def test_the_template_timeouts_are_scaled_unless_given() -> None:
    template = load(REPO_ROOT / "template.yaml")
    assert rate_seconds(template["Parameters"]["SweepSchedule"]["Default"]) == 300.0
    assert scaled_parameters(template, {}, 0.05) == {"MateTimeoutSeconds": "180", "LaneSettleSeconds": "15"}
    given = {"LaneSettleSeconds": "0", "Aligner": "bwa"}
    assert scaled_parameters(template, given, 0.05) == {**given, "MateTimeoutSeconds": "180"}
    assert scaled_parameters(template, {}, 1.0)["MateTimeoutSeconds"] == "3600"


def test_the_timer_sweeps_at_its_interval_survives_a_failure_and_stops() -> None:
    calls: list[int] = []
    heard: list[dict[str, list[str]]] = []
    enough = threading.Event()

    def sweep() -> dict[str, list[str]]:
        calls.append(1)
        if len(calls) == 2:
            raise RuntimeError("moto hiccup")
        if len(calls) >= 4:
            enough.set()
        return {"started": [f"s{len(calls)}"]}

    timer = SweepTimer(0.05, sweep, heard.append).start()
    assert enough.wait(10)
    timer.stop()
    ran = len(calls)
    assert timer.runs == ran - 1 and [h["started"] for h in heard[:3]] == [["s1"], ["s3"], ["s4"]]
    threading.Event().wait(0.2)
    assert len(calls) == ran  # stopped: no more sweeps


def test_a_timer_needs_a_positive_interval() -> None:
    with pytest.raises(SweepError, match="interval"):
        SweepTimer(0)


def test_parameter_overrides_are_parsed_like_sam_deploys() -> None:
    from genopipe.local.cli import parameter_override

    assert parameter_override("Caller=freebayes") == ("Caller", "freebayes")
    assert parameter_override("SweepSchedule=rate(5 minutes)") == ("SweepSchedule", "rate(5 minutes)")
    assert parameter_override("X=a=b") == ("X", "a=b")
    with pytest.raises(argparse.ArgumentTypeError, match="expected KEY=VALUE"):
        parameter_override("Caller")


def test_an_unknown_parameter_override_stops_the_stack_before_it_starts() -> None:
    from genopipe.local.stack import LocalStack, StackError, StackOptions

    with pytest.raises(StackError, match="no parameter Calller"):
        LocalStack(StackOptions(port=1, parameters={"Calller": "freebayes"})).start()


def test_a_stack_without_a_reference_stops_naming_the_parameter() -> None:
    """ReferenceUri has no default (template.yaml): as on AWS, a stack without it is not deployed."""
    from genopipe.local.stack import LocalStack, StackError, StackOptions

    with pytest.raises(StackError, match=r"parameter ReferenceUri has no default .*--reference FASTA"):
        LocalStack(StackOptions(port=1)).start()
