"""Benchmark: orchestration cost, state transitions and Lambda invocations, backoff vs fixed polling.

Nothing is estimated by hand: the state machine itself (`statemachine/pipeline.asl.json`) is
walked state by state, the way Step Functions runs it, for a sample whose every Batch job takes
1 min, 1 h or 6 h. Task states call the Lambdas; the check Lambda's next wait is the real
schedule (`genopipe.jobs.backoff.next_wait_seconds`, the function `genopipe.jobs.status` uses), and the
check reports SUCCEEDED once the simulated clock has reached the job's end. Each state entered is
one state transition (what Standard workflows bill); each Task entered is one Lambda invocation.
The baseline is the seed's v1 design: the same loop polling every 60 s.

Also reported: execution history events (Step Functions keeps at most 25,000 per execution):
per Lambda Task 5 (entered, scheduled, started, succeeded, exited), per Wait/Choice/Pass 2.

    .venv/bin/python bench/orchestration.py [--out bench/results/orchestration.json]
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from harness import REPO

from genopipe.jobs.backoff import DEFAULT_POLICY, PollingPolicy, next_wait_seconds

ASL = REPO / "statemachine" / "pipeline.asl.json"
DURATIONS_S = {"1 min": 60, "1 h": 3600, "6 h": 6 * 3600}
FIXED_60S = PollingPolicy(initial_seconds=60, factor=1, max_seconds=60)
HISTORY_EVENTS = {"Task": 5, "Wait": 2, "Choice": 2, "Pass": 2, "Fail": 1, "Succeed": 1}
HISTORY_LIMIT = 25_000
# list prices, us-east-1, as of the date below (assumption: check the pricing pages)
PRICES: dict[str, str | float] = {
    "date": "2026-11-24",
    "step_functions_standard_usd_per_1000_transitions": 0.025,
    "lambda_usd_per_million_requests": 0.20,
    "lambda_usd_per_gb_second": 0.0000166667,
    "lambda_assumed_duration_s": 0.3,
    "lambda_assumed_memory_gb": 0.25,
    "basis": "ASSUMPTION: AWS list prices for us-east-1 (Standard workflows, x86 Lambda); the check "
    "Lambda's duration and memory are assumed, not measured",
}


@dataclass
class Tally:
    transitions: int = 0
    lambda_invocations: int = 0
    history_events: int = 0
    per_step: dict[str, dict[str, int]] = field(default_factory=dict)
    detection_delay_s: dict[str, int] = field(default_factory=dict)


def lambda_task(state: dict[str, Any]) -> bool:
    return state.get("Type") == "Task" and "Function" in str(state.get("Resource", ""))


def step_of(name: str, state: dict[str, Any], steps: list[str]) -> str:
    """Which pipeline step a state belongs to (by its parameters or its name), else 'sample'."""
    declared = state.get("Parameters", {}).get("step")
    if isinstance(declared, str) and declared in steps:
        return declared
    lowered = name.lower()
    for step in steps:
        if lowered.startswith(("submit" + step, "wait" + step, "check" + step, step)):
            return step
    return "sample"


def _lookup(data: dict[str, Any], variable: str) -> Any:
    """A Choice rule's `$.a.b[0].c` in the walker's data (None when absent)."""
    value: Any = data
    for part in variable.removeprefix("$.").split("."):
        name, _, index = part.partition("[")
        value = value.get(name) if isinstance(value, dict) else None
        if index:
            position = int(index.rstrip("]"))
            value = value[position] if isinstance(value, list) and position < len(value) else None
    return value


def choose(state: dict[str, Any], data: dict[str, Any]) -> str:
    for rule in state.get("Choices", []):
        if set(rule) - {"Variable", "StringEquals", "BooleanEquals", "Next"}:
            raise ValueError(f"{ASL}: Choice rule not understood by this walker: {rule}")
        value = _lookup(data, rule["Variable"])
        for test in ("StringEquals", "BooleanEquals"):
            if test in rule and value == rule[test]:
                return str(rule["Next"])
    return str(state["Default"])


def walk(asl: dict[str, Any], job_seconds: dict[str, float], policy: PollingPolicy) -> Tally:
    """Run the state machine for a successful sample; `job_seconds` per step from submission.

    A Parallel state runs its branches from the same clock (each with its own transitions and
    Lambda calls, as Step Functions bills them) and ends when the slowest branch ends."""
    tally = Tally()
    data: dict[str, Any] = {"jobs": {}}
    _walk_states(asl, list(job_seconds), job_seconds, policy, tally, data, 0.0, {})
    return tally


def _walk_states(
    machine: dict[str, Any],
    steps: list[str],
    job_seconds: dict[str, float],
    policy: PollingPolicy,
    tally: Tally,
    data: dict[str, Any],
    clock: float,
    submitted_at: dict[str, float],
) -> float:
    """Walk one state machine or Parallel branch from its StartAt; returns the clock at its end."""
    states = machine["States"]
    name = machine["StartAt"]
    for _ in range(1_000_000):
        state = states[name]
        kind = state["Type"]
        step = step_of(name, state, steps)
        tally.transitions += 1
        tally.history_events += HISTORY_EVENTS.get(kind, 2)
        counts = tally.per_step.setdefault(step, {"transitions": 0, "lambda_invocations": 0, "polls": 0})
        counts["transitions"] += 1
        if lambda_task(state):
            tally.lambda_invocations += 1
            counts["lambda_invocations"] += 1
        if kind == "Parallel":
            ends = [
                _walk_states(branch, steps, job_seconds, policy, tally, data, clock, submitted_at)
                for branch in state["Branches"]
            ]
            clock = max(ends, default=clock)
            # a successful sample: every branch ends {"ok": true, ...}, placed by ResultSelector
            outputs: list[Any] = [{"ok": True} for _ in ends]
            selector = state.get("ResultSelector")
            if selector:
                outputs = {k.removesuffix(".$"): outputs[int(v.strip("$[]"))] for k, v in selector.items()}
            data[state.get("ResultPath", "$").removeprefix("$.")] = outputs
        if kind in ("Succeed", "Fail") or state.get("End"):
            return clock
        if kind == "Task" and lambda_task(state) and name.lower().startswith("submit"):
            submitted_at[step] = clock
            data["jobs"][step] = {"status": "SUBMITTED", "wait_seconds": next_wait_seconds(None, policy)}
        elif kind == "Task" and name.lower().startswith("check"):
            job = data["jobs"][step]
            counts["polls"] += 1
            done = clock - submitted_at[step] >= job_seconds[step]
            job["status"] = "SUCCEEDED" if done else "RUNNING"
            if done:
                tally.detection_delay_s[step] = int(clock - submitted_at[step] - job_seconds[step])
            job["wait_seconds"] = next_wait_seconds(job["wait_seconds"], policy)
        elif kind == "Wait":
            seconds_path = state.get("SecondsPath", "")
            clock += data["jobs"][step]["wait_seconds"] if seconds_path else state.get("Seconds", 0)
        name = choose(state, data) if kind == "Choice" else state["Next"]
    raise RuntimeError(f"{ASL}: the walk did not end (a loop that never exits?)")


def steps_in(asl: dict[str, Any]) -> list[str]:
    """The pipeline steps, in order, from the Submit states' parameters (a Parallel state's
    branches in the order they are listed)."""
    ordered: list[str] = []
    name = asl["StartAt"]
    seen = set()
    while name not in seen:
        seen.add(name)
        state = asl["States"][name]
        step = state.get("Parameters", {}).get("step")
        if name.startswith("Submit") and step and step not in ordered:
            ordered.append(step)
        for branch in state.get("Branches", []):
            ordered += [s for s in steps_in(branch) if s not in ordered]
        if state["Type"] == "Choice":
            succeeded = [r["Next"] for r in state["Choices"] if r.get("StringEquals") == "SUCCEEDED"]
            name = succeeded[0] if succeeded else state["Default"]
        elif "Next" in state:
            name = state["Next"]
        else:
            break
    return ordered


def usd(tally: Tally) -> float:
    p = {k: float(v) for k, v in PRICES.items() if isinstance(v, int | float)}
    transitions = tally.transitions * p["step_functions_standard_usd_per_1000_transitions"] / 1000
    requests = tally.lambda_invocations * p["lambda_usd_per_million_requests"] / 1e6
    gb_seconds = tally.lambda_invocations * p["lambda_assumed_duration_s"] * p["lambda_assumed_memory_gb"]
    return round(transitions + requests + gb_seconds * p["lambda_usd_per_gb_second"], 6)


def summarise(tally: Tally, steps: list[str], intake_invocations: int) -> dict[str, Any]:
    one_step = tally.per_step[steps[len(steps) // 2]]
    return {
        "per_sample": {
            "state_transitions": tally.transitions,
            "lambda_invocations": tally.lambda_invocations + intake_invocations,
            "lambda_invocations_in_state_machine": tally.lambda_invocations,
            "history_events": tally.history_events,
            "within_history_limit": tally.history_events <= HISTORY_LIMIT,
            "usd": usd(tally),
        },
        "per_step": {
            "state_transitions": one_step["transitions"],
            "lambda_invocations": one_step["lambda_invocations"],
            "polls": one_step["polls"],
        },
        "detection_delay_s": max(tally.detection_delay_s.values()),
    }


def curve(asl: dict[str, Any], step: str, policy: PollingPolicy) -> list[list[int]]:
    """(job seconds, transitions of that step) for the plot: 10 s to 12 h."""
    points = []
    seconds = 10.0
    while seconds <= 12 * 3600:
        durations = dict.fromkeys(steps_in(asl), 1.0)
        durations[step] = seconds
        tally = walk(asl, durations, policy)
        points.append([int(seconds), tally.per_step[step]["transitions"]])
        seconds *= 1.05
    return points


def sweep_schedule(template: Path) -> dict[str, Any] | None:
    """The scheduled sweep Lambda (template parameter SweepSchedule, `rate(N minutes)`): a cost per
    stack and day, whatever the number of samples."""
    if not template.is_file():
        return None
    pattern = r"SweepSchedule:.*?Default:\s*\"?rate\((\d+) minutes?\)"
    match = re.search(pattern, template.read_text(), re.DOTALL)
    if not match:
        return None
    minutes = int(match.group(1))
    per_day = 24 * 60 // minutes
    return {
        "schedule": f"rate({minutes} minutes)",
        "lambda_invocations_per_day": per_day,
        "usd_per_day": round(
            per_day * float(PRICES["lambda_usd_per_million_requests"]) / 1e6
            + per_day
            * float(PRICES["lambda_assumed_duration_s"])
            * float(PRICES["lambda_assumed_memory_gb"])
            * float(PRICES["lambda_usd_per_gb_second"]),
            6,
        ),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=REPO / "bench" / "results" / "orchestration.json")
    args = parser.parse_args()
    asl = json.loads(ASL.read_text())
    steps = steps_in(asl)
    if not steps:
        sys.exit(f"bench: {ASL}: no Submit states with a 'step' parameter")
    intake = 2  # one S3 event per FASTQ of a one-lane sample (R1, R2) reaches the intake Lambda
    policies = {"backoff": DEFAULT_POLICY, "fixed_60s": FIXED_60S}
    scenarios: dict[str, Any] = {}
    for label, seconds in DURATIONS_S.items():
        scenarios[label] = {
            name: summarise(walk(asl, dict.fromkeys(steps, seconds), policy), steps, intake)
            for name, policy in policies.items()
        }
        backoff, fixed = scenarios[label]["backoff"], scenarios[label]["fixed_60s"]
        scenarios[label]["fixed_over_backoff_transitions"] = round(
            fixed["per_sample"]["state_transitions"] / backoff["per_sample"]["state_transitions"], 2
        )
    result = {
        "benchmark": "state transitions and Lambda invocations per sample and per step, "
        "backoff vs fixed 60 s",
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "state_machine": str(ASL.relative_to(REPO)),
        "steps": steps,
        "method": __doc__.split("\n\n")[1].replace("\n", " "),
        "backoff_policy": vars(DEFAULT_POLICY),
        "fixed_policy": vars(FIXED_60S),
        "scenario": "every one of the sample's jobs takes the stated time from submission to end; "
        "per-sample Lambda invocations include the intake Lambda (2: one S3 event per FASTQ)",
        "prices": PRICES,
        "history_limit": HISTORY_LIMIT,
        "durations": scenarios,
        "per_stack_sweep": sweep_schedule(REPO / "template.yaml"),
        "curve_transitions_per_step": {
            name: curve(asl, steps[len(steps) // 2], policy) for name, policy in policies.items()
        },
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    for label, figures in scenarios.items():
        b, f = figures["backoff"], figures["fixed_60s"]
        print(
            f"{label}: backoff {b['per_step']['state_transitions']} transitions/step, "
            f"{b['per_sample']['state_transitions']}/sample; fixed 60 s "
            f"{f['per_step']['state_transitions']}/step, {f['per_sample']['state_transitions']}/sample"
        )
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
