"""Reliability benchmarks on the local stack (issue 6), too slow for `make test`:

- burst: N small samples dropped into the input bucket at once; all must complete; intake latency
  (upload of the second mate -> execution start) median and p95, and the total time; with
  `--deliveries 2 --intake-fault-rate 0.1` every S3 event is delivered twice and 10% of intake
  invocations fail their first try (genopipe.local.async_invoke): still exactly N executions.
  Every sample's outcome is recorded (and the reason of any that did not complete);
- spot: N samples with `--reclaim-rate 0.3` vs the same samples without faults; all complete,
  attempts per job, On-Demand fallbacks, and whether every VCF equals the fault-free one.

    .venv/bin/python bench/reliability.py burst --samples 100 [--deliveries 2 --intake-fault-rate 0.1]
    .venv/bin/python bench/reliability.py spot --samples 20

Results are merged into bench/results/reliability.json.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import threading
import time
from collections import defaultdict
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import boto3
from harness import vcf_records

from genopipe.aws import s3
from genopipe.local.batch import JobUpdate
from genopipe.local.cli import quiet_logs
from genopipe.local.sample_run import EventWaiter, RunError, upload_sample
from genopipe.local.server import free_port
from genopipe.local.stack import LocalStack, StackOptions
from genopipe.truth.simulate import SimulatedSample, simulate_sample

RESULTS = Path(__file__).resolve().parent / "results" / "reliability.json"
LENGTH = 20_000  # bp
RETRY_ATTEMPTS = 3  # the job definitions' RetryStrategy.Attempts
DEPTH = 10.0  # ~670 read pairs of 2x150 per sample: the per-job overhead dominates, not the data


def make_samples(folder: Path, count: int) -> dict[str, SimulatedSample]:
    first = simulate_sample(folder / "s000", seed=100, length=LENGTH, depth=DEPTH, sample="s000")
    samples = {"s000": first}
    for n in range(1, count):
        name = f"s{n:03d}"
        samples[name] = simulate_sample(
            folder / name, seed=100 + n, reference=first.reference, depth=DEPTH, sample=name
        )
    return samples


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(fraction * (len(ordered) - 1)))]


def drop_all(stack: LocalStack, samples: dict[str, SimulatedSample], timeout_s: float) -> dict[str, Any]:
    waiters = {name: EventWaiter(stack, name) for name in samples}
    uploaded: dict[str, float] = {}
    lock = threading.Lock()

    def drop(name: str) -> None:
        upload_sample(stack, samples[name].r1, samples[name].r2, name)
        with lock:
            uploaded[name] = time.time()

    started = time.time()
    with ThreadPoolExecutor(max_workers=16) as pool:
        list(pool.map(drop, samples))
    deadline = started + timeout_s
    events: dict[str, dict[str, Any] | None] = {}
    for name, waiter in waiters.items():
        try:
            events[name] = waiter.wait(max(1.0, deadline - time.time()))
        except RunError:
            events[name] = None
    total = time.time() - started
    sfn = boto3.client("stepfunctions")
    machine = stack.deployment.outputs["StateMachineArn"]
    starts: dict[str, float] = {}
    for page in sfn.get_paginator("list_executions").paginate(stateMachineArn=machine):
        for execution in page["executions"]:
            starts.setdefault(execution["name"].rsplit("-", 1)[0], execution["startDate"].timestamp())
    latencies = [max(0.0, starts[name] - uploaded[name]) for name in samples if name in starts]
    completed = [n for n, e in events.items() if e is not None and e["detail-type"] == "Sample Completed"]
    return {"events": events, "total_s": total, "latencies": latencies, "completed": completed}


def outcome_of(event: dict[str, Any] | None) -> dict[str, Any]:
    """One sample's end: its event, and why when it did not complete."""
    if event is None:
        return {
            "outcome": "no event",
            "reason": "no Sample Completed / Sample Failed event before the timeout",
        }
    error = event["detail"].get("error")
    if error is None:
        return {"outcome": event["detail-type"]}
    return {
        "outcome": event["detail-type"],
        "reason": f"{error['step']}: {error['type']}: {error['message']}",
    }


def burst(count: int, deliveries: int, intake_fault_rate: float, seed: int) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp:
        samples = make_samples(Path(tmp), count)
        options = StackOptions(
            port=free_port(),
            reference=samples["s000"].reference,
            deliveries=deliveries,
            intake_fault_rate=intake_fault_rate,
            seed=seed,
        )
        with LocalStack(options) as stack:
            outcome = drop_all(stack, samples, timeout_s=7200)
            names = [
                e["name"]
                for page in boto3.client("stepfunctions")
                .get_paginator("list_executions")
                .paginate(stateMachineArn=stack.deployment.outputs["StateMachineArn"])
                for e in page["executions"]
            ]
    latencies = outcome["latencies"]
    per_sample = {name: outcome_of(event) for name, event in sorted(outcome["events"].items())}
    for name in per_sample:
        per_sample[name]["executions"] = sum(1 for e in names if e.rsplit("-", 1)[0] == name)
    return {
        "samples": count,
        "deliveries_per_upload": deliveries,
        "intake_fault_rate": intake_fault_rate,
        "completed": len(outcome["completed"]),
        "executions": len(names),
        "not_completed": {n: o for n, o in per_sample.items() if o["outcome"] != "Sample Completed"},
        "per_sample": per_sample,
        "intake_latency_s": {
            "median": round(statistics.median(latencies), 3),
            "p95": round(percentile(latencies, 0.95), 3),
            "max": round(max(latencies), 3),
        },
        "total_s": round(outcome["total_s"], 1),
        "read_pairs_per_sample": samples_read_pairs(),
    }


def samples_read_pairs() -> str:
    return f"~{int(LENGTH * DEPTH / 300)} (simulated {LENGTH} bp at {DEPTH:g}x, 2x150)"


def described_jobs(ids: list[str]) -> list[dict[str, Any]]:
    batch = boto3.client("batch")
    chunks = (ids[i : i + 100] for i in range(0, len(ids), 100))
    return [job for chunk in chunks for job in batch.describe_jobs(jobs=chunk)["jobs"]]


def spot(count: int, rate: float, seed: int) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        samples = make_samples(folder, count)
        runs: dict[str, dict[str, Any]] = {}
        updates: list[JobUpdate] = []
        jobs: list[dict[str, Any]] = []
        for label, reclaim in (("clean", 0.0), ("faulty", rate)):
            options = StackOptions(
                port=free_port(), reference=samples["s000"].reference, reclaim_rate=reclaim, seed=seed
            )
            with LocalStack(options) as stack:
                if reclaim:
                    stack.batch.listeners.append(updates.append)
                runs[label] = drop_all(stack, samples, timeout_s=7200)
                for name in samples:  # published under the folder the reads were uploaded to
                    vcf = runs[label]["events"][name]["detail"]["outputs"]["vcf"]
                    s3.download(vcf, folder / label / f"{name}.vcf.gz")
                if reclaim:  # attempts as Batch reports them (DescribeJobs), like the e2e test reads them
                    jobs = described_jobs(sorted({update.job_id for update in updates}))
        equal = sum(
            vcf_records(folder / "clean" / f"{n}.vcf.gz") == vcf_records(folder / "faulty" / f"{n}.vcf.gz")
            for n in samples
        )
    reasons = {job["jobId"]: [a.get("statusReason", "") for a in job["attempts"]] for job in jobs}
    reclaimed = {job_id: sum(r.startswith("Host EC2") for r in rs) for job_id, rs in reasons.items()}
    by_name: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for job in jobs:
        by_name[job["jobName"]].append(job)
    fallbacks = {name: named for name, named in by_name.items() if len(named) > 1}
    return {
        "samples": count,
        "reclaim_rate": rate,
        "seed": seed,
        "completed_clean": len(runs["clean"]["completed"]),
        "completed_with_reclaims": len(runs["faulty"]["completed"]),
        "jobs": len(jobs),
        "attempts": sum(len(rs) for rs in reasons.values()),
        "attempts_reclaimed": sum(reclaimed.values()),
        "max_attempts_per_job": max((len(rs) for rs in reasons.values()), default=0),
        # RetryStrategy (3 attempts, retry on Host EC2* only): every retried attempt was reclaimed
        "jobs_retried_without_a_reclaim": sum(
            1
            for rs in reasons.values()
            if len(rs) > RETRY_ATTEMPTS or not all(r.startswith("Host EC2") for r in rs[:-1])
        ),
        "on_demand_fallbacks": len(fallbacks),
        # each: a FAILED Spot job reclaimed on all 3 attempts, then a SUCCEEDED On-Demand job
        "fallbacks_after_all_attempts_reclaimed": sum(
            1
            for named in fallbacks.values()
            if sorted((j["status"], "on-demand" in j["jobQueue"].lower()) for j in named)
            == [("FAILED", False), ("SUCCEEDED", True)]
            and any(reclaimed[j["jobId"]] == RETRY_ATTEMPTS for j in named)
        ),
        "vcfs_equal_to_clean_run": equal,
        "total_s_clean": round(runs["clean"]["total_s"], 1),
        "total_s_with_reclaims": round(runs["faulty"]["total_s"], 1),
    }


def record(name: str, result: dict[str, Any]) -> None:
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    existing = json.loads(RESULTS.read_text()) if RESULTS.exists() else {}
    existing[name] = {**result, "measured": time.strftime("%Y-%m-%d %H:%M:%S"), "cpus": 2}
    RESULTS.write_text(json.dumps(existing, indent=2, sort_keys=True) + "\n")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("kind", choices=["burst", "spot"])
    parser.add_argument("--samples", type=int, default=None)
    parser.add_argument("--reclaim-rate", type=float, default=0.3)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--deliveries", type=int, default=1, help="burst: deliveries of each S3 event")
    parser.add_argument(
        "--intake-fault-rate",
        type=float,
        default=0.0,
        help="burst: fraction of intake invocations failing once",
    )
    args = parser.parse_args(argv)
    quiet_logs(False)
    if args.kind == "burst":
        result = burst(args.samples or 100, args.deliveries, args.intake_fault_rate, args.seed)
    else:
        result = spot(args.samples or 20, args.reclaim_rate, args.seed)
    record(args.kind, result)
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
