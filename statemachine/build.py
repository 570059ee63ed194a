"""Writes `statemachine/pipeline.asl.json` from the table of steps and the plan (genopipe.pipeline).

    python statemachine/build.py          # `make asl`: (re)write the committed file
    python statemachine/build.py --check  # exit 1 when the committed file is not what this writes

The file stays committed because SAM (DefinitionUri), asl-validator, cfn-lint and moto read it, and
reviewers read it; `tests/unit/test_asl_builder.py` fails `make test` when it drifts from here.
Every step becomes the named states users see in the console graph and the execution history:
Submit<Title> -> Wait<Title> -> Check<Title> -> <Title>Status, plus Submit<Title>OnDemand (a Spot
reclaim) and <Title>Failed. ARNs stay `${...}` placeholders filled by the template's
DefinitionSubstitutions.
"""

from __future__ import annotations

import argparse
import copy
import difflib
import json
import re
import sys
from pathlib import Path
from typing import Any

from genopipe.pipeline import PLAN, STEPS, Parallel, Stage, StepSpec, check_plan

ASL_PATH = Path(__file__).resolve().with_name("pipeline.asl.json")

State = dict[str, Any]
States = dict[str, State]

NOTIFY_SUCCESS = "NotifySuccess"
NOTIFY_FAILURE = "NotifyFailure"

# Lambda's own transient errors (throttling, a service hiccup), not the function's: every Task
# retries them with jittered backoff. The handlers are idempotent, so a retry is safe.
LAMBDA_RETRY: tuple[dict[str, Any], ...] = (
    {
        "ErrorEquals": [
            "Lambda.ServiceException",
            "Lambda.AWSLambdaException",
            "Lambda.SdkClientException",
            "Lambda.TooManyRequestsException",
        ],
        "IntervalSeconds": 2,
        "BackoffRate": 2.0,
        "MaxAttempts": 6,
        "MaxDelaySeconds": 60,
        "JitterStrategy": "FULL",
    },
)


# the job Lambdas' own errors of the moment, before any Catch: AWS throttling or a 5xx after the
# SDK's retries (genopipe.aws.clients.AwsUnavailable) and a Lambda timeout (`Sandbox.Timedout`;
# older runtimes report `Lambda.Unknown`). Safe: submit_job is idempotent, check_job only reads.
# Up to ~10 minutes of tries, so a sample that ran for hours does not fail on one throttled call.
JOB_LAMBDA_RETRY: dict[str, Any] = {
    "ErrorEquals": ["AwsUnavailable", "Sandbox.Timedout", "Lambda.Unknown"],
    "IntervalSeconds": 10,
    "BackoffRate": 2.0,
    "MaxAttempts": 6,
    "MaxDelaySeconds": 300,
    "JitterStrategy": "FULL",
}


def _lambda_task(
    comment: str,
    function: str,
    feed: State,
    result_path: str,
    on_error: str,
    then: State,
    error_path: str = "$.error",
    retry: tuple[dict[str, Any], ...] = LAMBDA_RETRY,
) -> State:
    """A Task invoking one of the stack's Lambdas; any error it still raises goes to `on_error`."""
    return {
        "Type": "Task",
        "Comment": comment,
        "Resource": f"${{{function}Arn}}",
        **feed,
        "ResultPath": result_path,
        "Retry": copy.deepcopy(list(retry)),
        "Catch": [{"ErrorEquals": ["States.ALL"], "ResultPath": error_path, "Next": on_error}],
        **then,
    }


def _failure(step: str, then: str) -> State:
    """Keeps the caught error as $.failure, naming where it happened, for the Sample Failed event."""
    return {
        "Type": "Pass",
        "Parameters": {"step": step, "error.$": "$.error.Error", "cause.$": "$.error.Cause"},
        "ResultPath": "$.failure",
        "Next": then,
    }


def _submit(spec: StepSpec, on_demand: bool) -> State:
    job = f"$.jobs.{spec.name}"
    parameters: State = {
        "step": spec.name,
        "capacity": "on-demand" if on_demand else "spot",
        "job_queue": "${OnDemandJobQueueArn}" if on_demand else "${SpotJobQueueArn}",
        "job_definition": f"${{{spec.job_definition_resource}Arn}}",
        "input.$": "$.input",
    }
    if on_demand:
        parameters["replaces.$"] = job  # submit_job records which Spot job this one replaces
    comment = (
        "The Spot host was reclaimed after Batch's own retries: run once more on On-Demand"
        if on_demand
        else f"Submit the {spec.name} job to the Spot queue"
    )
    return _lambda_task(
        comment,
        "SubmitJobFunction",
        {"Parameters": parameters},
        job,
        f"{spec.title}Failed",
        {"Next": f"Wait{spec.title}"},
        retry=(*LAMBDA_RETRY, JOB_LAMBDA_RETRY),
    )


def step_states(spec: StepSpec, on_success: str, on_failure: str) -> States:
    """One Batch job: submit on Spot, poll with the check's backoff, resubmit On-Demand once."""
    title, job = spec.title, f"$.jobs.{spec.name}"
    return {
        f"Submit{title}": _submit(spec, on_demand=False),
        f"Wait{title}": {"Type": "Wait", "SecondsPath": f"{job}.wait_seconds", "Next": f"Check{title}"},
        f"Check{title}": _lambda_task(
            "DescribeJobs; returns the status and the next wait (exponential backoff)",
            "CheckJobFunction",
            {"InputPath": job},
            job,
            f"{title}Failed",
            {"Next": f"{title}Status"},
            retry=(*LAMBDA_RETRY, JOB_LAMBDA_RETRY),
        ),
        f"{title}Status": {
            "Type": "Choice",
            "Choices": [
                {"Variable": f"{job}.status", "StringEquals": "SUCCEEDED", "Next": on_success},
                {"Variable": f"{job}.status", "StringEquals": "RECLAIMED", "Next": f"Submit{title}OnDemand"},
            ],
            "Default": f"Wait{title}",  # still queued or running
        },
        f"Submit{title}OnDemand": _submit(spec, on_demand=True),
        f"{title}Failed": _failure(spec.name, on_failure),
    }


def _merge(states: States, more: States) -> None:
    repeated = states.keys() & more.keys()
    if repeated:
        raise ValueError(f"state names repeat: {sorted(repeated)}")
    states.update(more)


def _names(states: States) -> list[str]:
    """Every state name, those inside Parallel branches included."""
    names = list(states)
    for state in states.values():
        for branch in state.get("Branches", []):
            names += _names(branch["States"])
    return names


def _sequence(names: tuple[str, ...], specs: dict[str, StepSpec], then: str, on_failure: str) -> States:
    """Steps one after another: each step's success submits the next one, the last goes to `then`."""
    states: States = {}
    for index, name in enumerate(names):
        after = f"Submit{specs[names[index + 1]].title}" if index + 1 < len(names) else then
        _merge(states, step_states(specs[name], after, on_failure))
    return states


def _snake(name: str) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower()


def _done(name: str) -> str:
    """Prepare -> Prepared: names the state that follows a Parallel once every branch succeeded."""
    return f"{name}d" if name.endswith("e") else f"{name}ed"


def _every(count: int) -> str:
    return "Both" if count == 2 else f"All {count}"


def parallel_states(
    parallel: Parallel, specs: dict[str, StepSpec], earlier: tuple[str, ...], then: str
) -> States:
    """Branches side by side. A branch never fails the Parallel (that would cancel the other branches'
    Batch jobs mid-run and lose their job states): it ends with {ok, jobs[, failure]}, and the Choice
    after it routes a failed branch to NotifyFailure with that branch's jobs."""
    done = _done(parallel.name)
    result = f"$.{_snake(done)}"
    branches: list[State] = []
    for branch in parallel.branches:
        title = branch.name.capitalize()
        own = _sequence(branch.steps, specs, f"{title}Ready", f"{title}Failed")
        _merge(
            own,
            {
                f"{title}Ready": {
                    "Type": "Pass",
                    "Comment": branch.purpose,
                    "Parameters": {"ok": True, "jobs.$": "$.jobs"},
                    "End": True,
                },
                f"{title}Failed": {
                    "Type": "Pass",
                    "Comment": f"End the branch with the failure; {done}Status routes it to {NOTIFY_FAILURE}",
                    "Parameters": {"ok": False, "jobs.$": "$.jobs", "failure.$": "$.failure"},
                    "End": True,
                },
            },
        )
        branches.append({"StartAt": f"Submit{specs[branch.steps[0]].title}", "States": own})

    # the jobs of steps before the Parallel are still in $.jobs; the branches' own come from their result
    folded = {f"{name}.$": f"$.jobs.{name}" for name in earlier}
    for branch in parallel.branches:
        folded |= {f"{name}.$": f"{result}.{branch.name}.jobs.{name}" for name in branch.steps}
    states: States = {
        parallel.name: {
            "Type": "Parallel",
            "Comment": f"{parallel.purpose}: run them side by side. "
            "Each branch ends with {ok, jobs[, failure]}",
            "Branches": branches,
            "ResultSelector": {
                f"{branch.name}.$": f"$[{index}]" for index, branch in enumerate(parallel.branches)
            },
            "ResultPath": result,
            "Catch": [
                {"ErrorEquals": ["States.ALL"], "ResultPath": "$.error", "Next": f"{parallel.name}Failed"}
            ],
            "Next": f"{done}Status",
        },
        f"{parallel.name}Failed": _failure(_snake(parallel.name), NOTIFY_FAILURE),
        f"{done}Status": {
            "Type": "Choice",
            "Choices": [
                {
                    "Variable": f"{result}.{branch.name}.ok",
                    "BooleanEquals": False,
                    "Next": f"{branch.name.capitalize()}NotReady",
                }
                for branch in parallel.branches
            ],
            "Default": done,
        },
        done: {
            "Type": "Pass",
            "Comment": f"{_every(len(parallel.branches))} branches succeeded: "
            "fold their job states into $.jobs",
            "Parameters": {"input.$": "$.input", "jobs": folded},
            "Next": then,
        },
    }
    for branch in parallel.branches:
        states[f"{branch.name.capitalize()}NotReady"] = {
            "Type": "Pass",
            "Comment": "A branch failed: notify with its failure and its job states",
            "Parameters": {
                "input.$": "$.input",
                "jobs.$": f"{result}.{branch.name}.jobs",
                "failure.$": f"{result}.{branch.name}.failure",
            },
            "Next": NOTIFY_FAILURE,
        }
    return states


def _notify_states() -> States:
    return {
        NOTIFY_SUCCESS: _lambda_task(
            "Promote staging to <sample>/ and put the Sample Completed event",
            "NotifyFunction",
            {
                "Parameters": {
                    "outcome": "SUCCEEDED",
                    "execution_arn.$": "$$.Execution.Id",
                    "input.$": "$.input",
                    "jobs.$": "$.jobs",
                }
            },
            "$.event",
            "NotifyFailed",
            {"End": True},
        ),
        "NotifyFailed": _failure("notify", NOTIFY_FAILURE),
        NOTIFY_FAILURE: _lambda_task(
            "Delete the staging prefix and put the Sample Failed event",
            "NotifyFunction",
            {
                "Parameters": {
                    "outcome": "FAILED",
                    "execution_arn.$": "$$.Execution.Id",
                    "input.$": "$.input",
                    "jobs.$": "$.jobs",
                    "failure.$": "$.failure",
                }
            },
            "$.event",
            "SampleFailed",
            {"Next": "SampleFailed"},
            # the execution fails either way; keep the notify error apart from the step's failure
            error_path="$.notify_error",
        ),
        "SampleFailed": {
            "Type": "Fail",
            "Error": "SampleFailed",
            "Cause": "A step failed; the Sample Failed event on EventBridge names the step, the error type "
            "and what to do",
        },
    }


def _entry(stage: Stage, specs: dict[str, StepSpec]) -> str:
    return stage.name if isinstance(stage, Parallel) else f"Submit{specs[stage].title}"


def _flow(plan: tuple[Stage, ...]) -> str:
    """The plan in one line for the machine's Comment: (validate -> qc) in parallel with reference."""
    parts: list[str] = []
    for stage in plan:
        if isinstance(stage, Parallel):
            branches = [
                " -> ".join(b.steps) if len(b.steps) == 1 else f"({' -> '.join(b.steps)})"
                for b in stage.branches
            ]
            parts.append(" in parallel with ".join(branches))
        else:
            parts.append(stage)
    return " -> ".join(parts)


def build(steps: tuple[StepSpec, ...] = STEPS, plan: tuple[Stage, ...] = PLAN) -> dict[str, Any]:
    """The state machine definition of `plan` over the rows of `steps`."""
    check_plan(steps, plan)
    specs = {spec.name: spec for spec in steps}
    states: States = {
        "Start": {
            "Type": "Pass",
            "Comment": "Keep the execution input under $.input; "
            "each step's job state goes under $.jobs.<step>",
            "Parameters": {"input.$": "$", "jobs": {}},
            "Next": _entry(plan[0], specs),
        }
    }
    earlier: tuple[str, ...] = ()
    for index, stage in enumerate(plan):
        then = _entry(plan[index + 1], specs) if index + 1 < len(plan) else NOTIFY_SUCCESS
        if isinstance(stage, Parallel):
            _merge(states, parallel_states(stage, specs, earlier, then))
            earlier += tuple(name for branch in stage.branches for name in branch.steps)
        else:
            _merge(states, step_states(specs[stage], then, NOTIFY_FAILURE))
            earlier += (stage,)
    _merge(states, _notify_states())
    # Step Functions wants each name once in the whole machine (a branch step named like a stage)
    names = _names(states)
    if len(set(names)) != len(names):
        raise ValueError(f"state names repeat: {sorted({n for n in names if names.count(n) > 1})}")
    return {
        "Comment": f"genopipe: FASTQ -> {_flow(plan)} -> notify. Each step: Submit (Batch SubmitJob) -> "
        "Wait (SecondsPath, backoff from the check) -> Check (Batch DescribeJobs) -> Choice.",
        "StartAt": "Start",
        "States": states,
    }


def render(steps: tuple[StepSpec, ...] = STEPS, plan: tuple[Stage, ...] = PLAN) -> str:
    """The file's text: two-space JSON, keys in the order built, a final newline."""
    return json.dumps(build(steps, plan), indent=2) + "\n"


def check(path: Path = ASL_PATH) -> list[str]:
    """What differs between the committed file and the builder's output (empty when they agree)."""
    expected = render()
    try:
        committed = path.read_text()
    except FileNotFoundError:
        return [f"{path} is missing: run `make asl` and commit it"]
    if committed == expected:
        return []
    diff = difflib.unified_diff(
        committed.splitlines(), expected.splitlines(), "committed", "built", lineterm="", n=1
    )
    return [
        f"{path} is not the builder's output (genopipe/pipeline.py or statemachine/build.py changed, "
        "or the JSON was edited by hand): run `make asl` and commit the result",
        *list(diff)[:40],
    ]


def main(argv: list[str] | None = None, path: Path = ASL_PATH) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--check", action="store_true", help="exit 1 when the committed file differs")
    args = parser.parse_args(argv)
    if args.check:
        problems = check(path)
        for line in problems:
            print(line, file=sys.stderr)
        return 1 if problems else 0
    path.write_text(render())
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
