"""Benchmark: `genopipe local run` against the same tools as one plain shell pipeline.

Issue 4's figure: the wall time of `genopipe local run` (a fresh local stack: moto server, the
template deployed, the reads uploaded through S3, the state machine and every Batch job, the
outputs downloaded) divided by the wall time of `bench/plain_pipeline.sh` (the same tools with the
same options on local files), on the same ~0.5M-read sample and the same cores. Target <= 1.10.

The sample and the plain pipeline are those of `bench/step_chain.py` (`hg002-x24`: 24 renamed,
5'-trimmed copies of the HG002 chr20 window, 504,336 reads, on the masked hg19 chr20 reference).
Runs alternate (plain, local run, ...). Both VCFs must hold the same records.

    .venv/bin/python bench/local_run.py [--reps 3]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import step_chain  # the data set and the plain pipeline runner
from harness import REPO, Dataset, free_port, machine, tool_versions, vcf_records

RESULTS = REPO / "bench" / "results" / "local_run.json"
TARGET_RATIO = 1.10


def run_local(dataset: Dataset, scratch: Path, rep: int) -> dict[str, object]:
    out = scratch / f"local-{rep}"
    command = [str(step_chain.GENOPIPE), "local", "run", "--port", str(free_port())]
    command += ["--r1", str(dataset.r1), "--r2", str(dataset.r2), "--reference", str(dataset.reference)]
    command += ["--sample", step_chain.SAMPLE, "--out", str(out)]
    started = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True, errors="replace")
    wall = time.perf_counter() - started
    if done.returncode != 0:
        sys.exit(f"bench: genopipe local run failed: {done.stdout[-1500:]} {done.stderr[-1500:]}")
    event = json.loads(done.stdout.strip().splitlines()[-1])
    pipeline = re.search(r"outcome\s+Sample Completed in ([0-9.]+) s", done.stdout)
    return {
        "wall_s": wall,
        "pipeline_s": float(pipeline.group(1)) if pipeline else None,  # upload -> event
        "records": vcf_records(out / step_chain.SAMPLE / f"{step_chain.SAMPLE}.vcf.gz"),
        "event_qc": event["detail"].get("qc"),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    threads = len(os.sched_getaffinity(0))
    plain_walls: list[float] = []
    local_runs: list[dict[str, object]] = []
    plain_records: list[list[str]] = []
    with tempfile.TemporaryDirectory(prefix="bench-local-run-") as work:
        scratch = Path(work)
        helpers = step_chain.write_helpers(scratch / "helpers")
        dataset = step_chain.hg002_repeated(step_chain.hg002_window(), step_chain.COPIES, scratch)
        for rep in range(args.reps):
            plain = step_chain.run_plain(dataset, threads, helpers)
            plain_walls.append(plain.wall_s)
            plain_records.append(plain.vcf_records)
            local_runs.append(run_local(dataset, scratch, rep))
            print(
                f"rep {rep + 1}: plain {plain.wall_s:.2f} s, local run {local_runs[-1]['wall_s']:.2f} s",
                flush=True,
            )
    local_walls = [float(str(run["wall_s"])) for run in local_runs]
    ratio = statistics.median(local_walls) / statistics.median(plain_walls)
    same_calls = all(run["records"] == plain_records[0] for run in local_runs) and all(
        records == plain_records[0] for records in plain_records
    )
    results = {
        "benchmark": "genopipe local run (whole local stack) vs the same tools as a plain shell pipeline",
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": machine(),
        "threads": threads,
        "repetitions": args.reps,
        "dataset": {
            "name": dataset.name,
            "read_pairs": dataset.read_pairs,
            "reference": str(dataset.reference),
        },
        "tool_versions": tool_versions(),
        "plain_wall_s": [round(w, 3) for w in plain_walls],
        "local_run_wall_s": [round(w, 3) for w in local_walls],
        "local_run_pipeline_s": [run["pipeline_s"] for run in local_runs],
        "median_plain_wall_s": round(statistics.median(plain_walls), 3),
        "median_local_run_wall_s": round(statistics.median(local_walls), 3),
        "ratio_local_run_over_plain": round(ratio, 3),
        "target_ratio": TARGET_RATIO,
        "within_target": ratio <= TARGET_RATIO,
        "same_vcf_records": same_calls,
        "vcf_records": len(plain_records[0]),
        "qc_from_event": local_runs[0]["event_qc"],
        "load_average_at_end": list(os.getloadavg()),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2) + "\n")
    print(
        json.dumps(
            {k: results[k] for k in ("ratio_local_run_over_plain", "within_target", "same_vcf_records")}
        )
    )
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
