"""statemachine/build.py: the committed ASL is its output, and a step added to the table and the plan
gets its named states, chained where the plan puts it."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from genopipe.pipeline import PLAN, STEPS, Parallel, Stage
from tests.fakes import ANNOTATE

ROOT = Path(__file__).resolve().parents[2]
BUILDER = ROOT / "statemachine" / "build.py"
ASL = ROOT / "statemachine" / "pipeline.asl.json"


@pytest.fixture(scope="module")
def build() -> ModuleType:
    # a script, not a package module (`python statemachine/build.py`): load it from its path
    spec = importlib.util.spec_from_file_location("statemachine_build", BUILDER)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def with_stage_after(plan: tuple[Stage, ...], after: str, stage: Stage) -> tuple[Stage, ...]:
    index = plan.index(after)
    return (*plan[: index + 1], stage, *plan[index + 1 :])


def parallel_of(plan: tuple[Stage, ...]) -> Parallel:
    return next(stage for stage in plan if isinstance(stage, Parallel))


def test_the_committed_asl_is_the_builders_output_byte_for_byte(build: ModuleType) -> None:
    assert ASL.read_bytes() == build.render().encode(), "run `make asl` and commit the result"


def test_check_passes_on_the_committed_file() -> None:
    result = subprocess.run(
        [sys.executable, str(BUILDER), "--check"], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stderr


def test_check_fails_with_a_message_when_the_file_differs(
    build: ModuleType, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    edited = tmp_path / "pipeline.asl.json"
    edited.write_text(ASL.read_text().replace('"MaxAttempts": 6', '"MaxAttempts": 7', 1))
    assert build.main(["--check"], path=edited) == 1
    message = capsys.readouterr().err
    assert "is not the builder's output" in message and "make asl" in message
    assert '-                  "MaxAttempts": 7,' in message


def test_the_lambda_retry_is_one_definition_used_by_every_task(build: ModuleType) -> None:
    text = ASL.read_text()
    tasks = text.count('"Type": "Task"')
    assert tasks == 26  # eight steps x (Submit, Check, SubmitOnDemand) + NotifySuccess + NotifyFailure
    assert text.count('"Lambda.TooManyRequestsException"') == tasks
    states = json.loads(text)["States"]
    job_retry = [*build.LAMBDA_RETRY, build.JOB_LAMBDA_RETRY]
    assert states["SubmitAlign"]["Retry"] == states["CheckAlign"]["Retry"] == job_retry
    assert states["NotifySuccess"]["Retry"] == list(build.LAMBDA_RETRY)
    # the job Lambdas' errors of the moment are retried before the Catch sends the sample to fail
    assert text.count('"AwsUnavailable"') == 24  # eight steps x (Submit, Check, SubmitOnDemand)


def test_a_step_added_after_concat_gets_its_states_chained_between_concat_and_report(
    build: ModuleType,
) -> None:
    asl: dict[str, Any] = build.build((*STEPS, ANNOTATE), with_stage_after(PLAN, "concat", "annotate"))
    states = asl["States"]

    assert {"SubmitAnnotate", "WaitAnnotate", "CheckAnnotate", "AnnotateStatus"} <= states.keys()
    assert {"SubmitAnnotateOnDemand", "AnnotateFailed"} <= states.keys()
    success, reclaimed = states["ConcatStatus"]["Choices"]
    assert success == {
        "Variable": "$.jobs.concat.status",
        "StringEquals": "SUCCEEDED",
        "Next": "SubmitAnnotate",
    }
    assert reclaimed["Next"] == "SubmitConcatOnDemand"

    submit = states["SubmitAnnotate"]
    assert submit["Parameters"]["step"] == "annotate"
    assert submit["Parameters"]["job_definition"] == "${AnnotateJobDefinitionArn}"
    assert submit["ResultPath"] == "$.jobs.annotate"
    assert submit["Retry"] == [*build.LAMBDA_RETRY, build.JOB_LAMBDA_RETRY]
    assert submit["Catch"][0]["Next"] == "AnnotateFailed"
    assert submit["Next"] == "WaitAnnotate"
    assert states["WaitAnnotate"] == {
        "Type": "Wait",
        "SecondsPath": "$.jobs.annotate.wait_seconds",
        "Next": "CheckAnnotate",
    }
    assert states["CheckAnnotate"]["InputPath"] == "$.jobs.annotate"
    assert states["CheckAnnotate"]["Next"] == "AnnotateStatus"
    status = states["AnnotateStatus"]
    assert [choice["Next"] for choice in status["Choices"]] == ["SubmitReport", "SubmitAnnotateOnDemand"]
    assert status["Default"] == "WaitAnnotate"
    on_demand = states["SubmitAnnotateOnDemand"]["Parameters"]
    assert on_demand["capacity"] == "on-demand" and on_demand["replaces.$"] == "$.jobs.annotate"
    assert states["SubmitAnnotateOnDemand"]["Next"] == "WaitAnnotate"
    assert states["AnnotateFailed"]["Parameters"]["step"] == "annotate"
    assert states["AnnotateFailed"]["Next"] == "NotifyFailure"
    assert "-> concat -> annotate -> report -> notify." in asl["Comment"]
    # the states of a new step sit between those of the steps around it, as a reader expects
    order = list(states)
    assert order.index("ConcatFailed") < order.index("SubmitAnnotate") < order.index("SubmitReport")


def test_a_step_added_to_a_branch_runs_inside_it_and_is_folded_into_jobs(build: ModuleType) -> None:
    prepare = parallel_of(PLAN)
    reads, indexes = prepare.branches
    longer = reads.model_copy(update={"steps": (*reads.steps, "annotate")})
    plan = tuple(
        prepare.model_copy(update={"branches": (longer, indexes)}) if stage is prepare else stage
        for stage in PLAN
    )
    asl: dict[str, Any] = build.build((*STEPS, ANNOTATE), plan)
    reads_states = asl["States"]["Prepare"]["Branches"][0]["States"]

    assert reads_states["QcStatus"]["Choices"][0]["Next"] == "SubmitAnnotate"
    assert reads_states["AnnotateStatus"]["Choices"][0]["Next"] == "ReadsReady"
    assert reads_states["AnnotateFailed"]["Next"] == "ReadsFailed"
    assert "SubmitAnnotate" not in asl["States"]
    folded = asl["States"]["Prepared"]["Parameters"]["jobs"]
    assert folded["annotate.$"] == "$.prepared.reads.jobs.annotate"
    assert "(validate -> qc -> annotate) in parallel with reference" in asl["Comment"]


def test_a_step_before_the_parallel_keeps_its_job_when_the_branches_are_folded(build: ModuleType) -> None:
    asl: dict[str, Any] = build.build((*STEPS, ANNOTATE), ("annotate", *PLAN))
    states = asl["States"]

    assert states["Start"]["Next"] == "SubmitAnnotate"
    assert states["AnnotateStatus"]["Choices"][0]["Next"] == "Prepare"
    assert states["Prepared"]["Parameters"]["jobs"]["annotate.$"] == "$.jobs.annotate"


def test_the_builder_refuses_a_plan_that_misses_a_step_of_the_table(build: ModuleType) -> None:
    with pytest.raises(ValueError, match="do not hold the same steps"):
        build.build((*STEPS, ANNOTATE), PLAN)
