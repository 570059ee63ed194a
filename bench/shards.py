"""Benchmark: what sharding costs: `genopipe local run` with 1, 4 and 16 align and call shards.

Issue 13's "Measure" item: on a simulated sample of >= 2M read pairs on >= 10 Mb of real human
sequence, shard counts 1, 4 and 16 on the local stack give the VCF records of the unsharded run,
and sharding costs at most 10% more CPU in all.

The sample is bench/scale.py's (`genopipe simulate` on ../shared/data/human-ref's 20 Mb of GRCh38
chr20/chr21, 13.6 Mb of real bases, 2.93M pairs of 2x150, seed 13), reused from its work folder.
Each configuration is one `genopipe local run` (a fresh local stack: the moto server, the template
deployed, the reads uploaded, every Batch job, the outputs downloaded) with
`--parameter-overrides AlignShardReadPairs=ceil(pairs / n) CallShardBases=real bases / n`; the
shard counts are then read back from the run's manifest.json, not assumed.

CPU is measured three ways, all exact (no sampling):
- the whole run: this process's `RUSAGE_CHILDREN` before and after the run (the `genopipe local
  run` process, the moto server and Lambdas in its threads, and every job process with its tools);
- each Batch job: a `sitecustomize` module put on the jobs' PYTHONPATH (bench-only, nothing in
  genopipe/ changes) writes, at the exit of every `genopipe job` process, its own CPU plus that of
  the tools it waited for (`RUSAGE_SELF` + `RUSAGE_CHILDREN`), its step, array index and times;
- the stack itself (moto, Step Functions, Lambdas, the Batch emulator, uploads/downloads): the
  `genopipe local run` process's own `RUSAGE_SELF` at its exit, written the same way.

Wall times are stretched by whatever else runs on the host (2 cores shared with other sessions):
CPU seconds are the robust figure, and the host's load is sampled during every run.

    .venv/bin/python bench/shards.py [--shards 1,4,16] [--work /tmp/scale13]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import os
import resource
import statistics
import subprocess
import sys
import threading
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from harness import REPO, free_port, machine, tool_versions, vcf_records, write_results
from scale import real_bases

RESULTS = REPO / "bench" / "results" / "shards.json"
GENOPIPE = Path(sys.executable).with_name("genopipe")
SAMPLE = "scale"
TARGET_OVERHEAD = 0.10
LOAD_INTERVAL_S = 5.0

# written into a temporary folder put first on PYTHONPATH: every Python process of the run
# (`genopipe local run` and each `genopipe job`) records its CPU when it exits
_SITECUSTOMIZE = """
import atexit, json, os, resource, sys, time

_STARTED = time.time()


def _record():
    folder = os.environ.get("GENOPIPE_BENCH_RUSAGE")
    argv = list(sys.argv)
    if not folder or len(argv) < 2:
        return
    own = resource.getrusage(resource.RUSAGE_SELF)
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    record = {
        "argv": argv[1:4],
        "array_index": os.environ.get("AWS_BATCH_JOB_ARRAY_INDEX"),
        "started": _STARTED,
        "ended": time.time(),
        "self_cpu_s": own.ru_utime + own.ru_stime,
        "children_cpu_s": children.ru_utime + children.ru_stime,
    }
    path = os.path.join(folder, f"{os.getpid()}.json")
    with open(path, "w") as out:
        json.dump(record, out)


atexit.register(_record)
"""


def children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


class LoadSampler:
    """The host's 1-minute load average every few seconds while a run goes on."""

    def __init__(self) -> None:
        self.samples: list[float] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.samples.append(os.getloadavg()[0])
            self._stop.wait(LOAD_INTERVAL_S)

    def __enter__(self) -> LoadSampler:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join()

    def summary(self) -> dict[str, float]:
        return {
            "median": round(statistics.median(self.samples), 2),
            "min": round(min(self.samples), 2),
            "max": round(max(self.samples), 2),
        }


def bam_records_digest(bam: Path) -> dict[str, Any]:
    """An order-free digest of every record (the whole SAM line, header left out): the sum mod
    2^64 of each line's BLAKE2b, so records tied on a coordinate may come in any order. Plus
    flagstat's counts."""
    total = 0
    count = 0
    view = subprocess.Popen(["samtools", "view", str(bam)], stdout=subprocess.PIPE)
    assert view.stdout is not None
    for line in view.stdout:
        total = (total + int.from_bytes(hashlib.blake2b(line, digest_size=8).digest(), "little")) % 2**64
        count += 1
    if view.wait() != 0:
        sys.exit(f"bench: samtools view {bam} failed")
    flagstat = subprocess.run(
        ["samtools", "flagstat", "-O", "json", str(bam)], capture_output=True, text=True, check=True
    ).stdout
    return {"records": count, "digest": f"{total:016x}", "flagstat": json.loads(flagstat)}


def job_figures(folder: Path) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """The `genopipe local run` process's record and every job's, from the sitecustomize files."""
    stack: dict[str, Any] = {}
    jobs = []
    for path in sorted(folder.glob("*.json")):
        record = json.loads(path.read_text())
        argv = record["argv"]
        if argv[:2] == ["local", "run"]:
            stack = record
        elif argv[0] == "job":
            jobs.append(
                {
                    "step": argv[1],
                    "array_index": record["array_index"],
                    "cpu_s": round(record["self_cpu_s"] + record["children_cpu_s"], 2),
                    "python_cpu_s": round(record["self_cpu_s"], 2),  # genopipe job itself: imports, S3
                    "tools_cpu_s": round(record["children_cpu_s"], 2),
                    "wall_s": round(record["ended"] - record["started"], 2),
                    "started": record["started"],
                }
            )
    jobs.sort(key=lambda job: job["started"])
    return stack, jobs


def per_step(jobs: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    steps: dict[str, dict[str, Any]] = {}
    for job in jobs:
        step = steps.setdefault(
            job["step"], {"jobs": 0, "cpu_s": 0.0, "python_cpu_s": 0.0, "tools_cpu_s": 0.0, "job_wall_s": []}
        )
        step["jobs"] += 1
        for key in ("cpu_s", "python_cpu_s", "tools_cpu_s"):
            step[key] = round(step[key] + job[key], 2)
        step["job_wall_s"].append(job["wall_s"])
    return steps


def found(folder: Path, name: str) -> Path:
    """The one downloaded output called `name`, wherever the published layout puts it."""
    paths = sorted(folder.rglob(name))
    if len(paths) != 1:
        sys.exit(f"bench: {len(paths)} files named {name} under {folder}")
    return paths[0]


def run_config(
    n: int,
    pairs: int,
    real: int,
    r1: Path,
    r2: Path,
    reference: Path,
    work: Path,
    tag: str = "",
    patch: str = "",
) -> dict[str, Any]:
    out = work / f"shards-{n}{tag}"
    subprocess.run(["rm", "-rf", str(out)], check=True)
    out.mkdir(parents=True)
    rusage_dir = out / "rusage"
    rusage_dir.mkdir()
    site = out / "site"
    site.mkdir()
    (site / "sitecustomize.py").write_text(_SITECUSTOMIZE + patch)
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(site), env.get("PYTHONPATH", "")]))
    env["GENOPIPE_BENCH_RUSAGE"] = str(rusage_dir)
    parameters = {}
    if n > 1:
        parameters = {"AlignShardReadPairs": math.ceil(pairs / n), "CallShardBases": real // n}
    command = [str(GENOPIPE), "local", "run", "--port", str(free_port()), "--timeout", "5400"]
    command += ["--r1", str(r1), "--r2", str(r2), "--reference", str(reference)]
    command += ["--sample", SAMPLE, "--out", str(out / "out")]
    if parameters:
        command += ["--parameter-overrides", *(f"{k}={v}" for k, v in parameters.items())]
    print(f"shards {n}: {' '.join(command[3:])}", flush=True)
    load_start = os.getloadavg()
    cpu_before = children_cpu()
    started = time.perf_counter()
    with LoadSampler() as load, open(out / "local-run.log", "w") as log:
        done = subprocess.run(command, env=env, stdout=log, stderr=subprocess.STDOUT)
    wall = time.perf_counter() - started
    total_cpu = children_cpu() - cpu_before
    if done.returncode != 0:
        tail = (out / "local-run.log").read_text(errors="replace")[-2000:]
        sys.exit(f"bench: genopipe local run with {n} shards failed (exit {done.returncode}): {tail}")
    results = out / "out" / SAMPLE
    manifest = json.loads(found(results, "manifest.json").read_text())
    stack, jobs = job_figures(rusage_dir)
    jobs_cpu = sum(job["cpu_s"] for job in jobs)
    steps = per_step(jobs)
    print(
        f"shards {n}: wall {wall:.1f} s, cpu {total_cpu:.1f} s (jobs {jobs_cpu:.1f} s), "
        f"manifest shards {manifest.get('shards')}",
        flush=True,
    )
    return {
        "requested_shards": n,
        "parameter_overrides": parameters,
        "manifest_shards": manifest.get("shards"),
        "wall_s": round(wall, 1),
        "total_cpu_s": round(total_cpu, 1),
        "jobs_cpu_s": round(jobs_cpu, 1),
        "jobs_tools_cpu_s": round(sum(job["tools_cpu_s"] for job in jobs), 1),
        "jobs_python_cpu_s": round(sum(job["python_cpu_s"] for job in jobs), 1),
        "stack_cpu_s": round(stack.get("self_cpu_s", float("nan")), 1),  # moto, SFN, Lambdas, transfers
        "steps": steps,
        "jobs": jobs,
        "load_average": {"at_start": list(load_start), "during": load.summary()},
        "vcf": str(found(results, f"{SAMPLE}.vcf.gz")),
        "bam_path": str(found(results, f"{SAMPLE}.bam")),
    }


def compare(runs: dict[str, dict[str, Any]]) -> dict[str, float]:
    """VCF records and BAM records of every run against the (first) 1-shard run's; CPU against the
    median of the 1-shard runs (a repeat of it shows how far CPU seconds move on this host)."""
    base = runs["1"]
    unsharded = [run for run in runs.values() if run["requested_shards"] == 1 and "vcf" in run]
    base_cpu = statistics.median(run["total_cpu_s"] for run in unsharded)
    base_jobs_cpu = statistics.median(run["jobs_cpu_s"] for run in unsharded)
    base_records = vcf_records(Path(base["vcf"]))
    base_bam = bam_records_digest(Path(base["bam_path"]))
    base["vcf_records"] = len(base_records)
    base["bam"] = base_bam
    for key, run in runs.items():
        if key == "1" or "vcf" not in run:  # the base, or a failed run (recorded, not compared)
            continue
        records = vcf_records(Path(run["vcf"]))
        only_base = sorted(set(base_records) - set(records))
        only_here = sorted(set(records) - set(base_records))
        run["vcf_records"] = len(records)
        run["vcf_records_equal"] = records == base_records
        run["vcf_only_unsharded"] = only_base[:50]
        run["vcf_only_sharded"] = only_here[:50]
        bam = bam_records_digest(Path(run["bam_path"]))
        run["bam"] = bam
        run["bam_records_equal"] = bam["digest"] == base_bam["digest"]  # the digest covers the count
        run["cpu_overhead"] = round(run["total_cpu_s"] / base_cpu - 1, 4)
        run["jobs_cpu_overhead"] = round(run["jobs_cpu_s"] / base_jobs_cpu - 1, 4)
        run["within_target"] = run["cpu_overhead"] <= TARGET_OVERHEAD
    return {"total_cpu_s": base_cpu, "jobs_cpu_s": base_jobs_cpu, "runs": len(unsharded)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--shards", default="1,4,16")
    parser.add_argument("--work", type=Path, default=Path("/tmp/scale13"), help="scale.py's work folder")
    parser.add_argument("--out", type=Path, default=RESULTS)
    parser.add_argument(
        "--diagnostic-patch",
        type=Path,
        help="Python appended to the runs' sitecustomize (a labelled diagnostic, recorded in the run)",
    )
    parser.add_argument(
        "--tag", default="", help="a repeat: recorded as runs['<n><tag>'] beside the first (e.g. -rep2)"
    )
    args = parser.parse_args()
    sim = args.work / "sim"
    r1, r2, reference = sim / f"{SAMPLE}_R1.fastq.gz", sim / f"{SAMPLE}_R2.fastq.gz", sim / "reference.fa"
    if not (sim / "simulate.json").exists():
        sys.exit(f"bench: no simulated sample in {sim}: run bench/scale.py --sections validate first")
    pairs = json.loads((sim / "simulate.json").read_text())["read_pairs"]
    real = real_bases(reference)
    results: dict[str, Any] = json.loads(args.out.read_text()) if args.out.exists() else {}
    results.update(
        {
            "benchmark": "genopipe local run with 1, 4 and 16 align and call shards (issue 13)",
            "date": datetime.now(UTC).isoformat(timespec="seconds"),
            "machine": machine(),
            "tool_versions": tool_versions(),
            "dataset": {
                "sample": f"bench/scale.py's simulated sample ({sim})",
                "read_pairs": pairs,
                "reference": str(reference),
                "reference_real_bases": real,
            },
            "target_cpu_overhead": TARGET_OVERHEAD,
        }
    )
    runs: dict[str, dict[str, Any]] = results.setdefault("runs", {})
    for n in (int(part) for part in args.shards.split(",")):
        patch = args.diagnostic_patch.read_text() if args.diagnostic_patch else ""
        run = run_config(n, pairs, real, r1, r2, reference, args.work, args.tag, patch)
        if patch:
            run["diagnostic_patch"] = patch
        runs[f"{n}{args.tag}"] = run
        args.out.write_text(json.dumps(results, indent=2) + "\n")
    if "1" in runs and len(runs) > 1:
        results["unsharded_cpu_basis"] = compare(runs)
    results["repetitions"] = {
        str(n): sum(run["requested_shards"] == n for run in runs.values())
        for n in sorted({run["requested_shards"] for run in runs.values()})
    }
    write_results(args.out, results)
    return 0


if __name__ == "__main__":
    sys.exit(main())
