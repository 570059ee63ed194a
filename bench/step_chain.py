"""Benchmark: the genopipe step chain against the same tools as one plain shell pipeline.

For each data set and repetition, on the same input files and the same cores:

- step chain: a moto server (`python -m moto.server` on a free loopback port, reached through
  `AWS_ENDPOINT_URL`) holds the inputs; `genopipe job <step>` runs as one process per step, in
  pipeline order, exactly as a Batch job would (S3 in, scratch, S3 out). A fresh bucket per run,
  so the reference cache starts cold just as the plain pipeline builds its indexes. The inputs
  are uploaded before the clock starts (in the real system they are already in S3).
- plain pipeline: `bench/plain_pipeline.sh` runs the same tools with the same options on local
  files, one stage after the other, intermediate files in a temp dir, no S3.

Runs alternate (plain, chain, plain, chain, ...) so that load from elsewhere on the machine hits
both alike. Reported: per-run wall times, per-stage times, medians and the ratio of the medians
(step chain / plain). Both produce a VCF; the harness checks that they hold the same records.

    .venv/bin/python bench/step_chain.py [--reps 3] [--datasets hg002-window,hg002-x24]

Data sets (none is copied into the repository):
- `hg002-window`: ../shared/data/hg002-chr20-window (10,507 pairs of 2x148), reference
  ../shared/data/human-ref/hg19.chr20.masked.fasta.gz (chr20, 63 Mb, mostly N).
- `hg002-x24`: the same reads repeated 24 times (504,336 reads, 252,168 pairs) into a temp dir;
  copy k renames its reads (`:c<k>`) and trims k bases off the 5' end of both mates, so the
  copies are not collapsed as PCR duplicates and every stage does 24x the work.
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from harness import (
    REPO,
    SHARED_DATA,
    Dataset,
    MotoServer,
    count_records,
    machine,
    moto_server,
    reset_moto,
    tool_versions,
    vcf_records,
    write_results,
)

from genopipe.pipeline import STEP_NAMES

PLAIN_PIPELINE = REPO / "bench" / "plain_pipeline.sh"
RESULTS = REPO / "bench" / "results" / "step_chain.json"
GENOPIPE = Path(sys.executable).parent / "genopipe"
STEPS = STEP_NAMES  # the table of steps, genopipe/pipeline.py
SAMPLE = "HG002"
COPIES = 24
TARGET_RATIO = 1.10


def hg002_window() -> Dataset:
    folder = SHARED_DATA / "hg002-chr20-window"
    reference = SHARED_DATA / "human-ref" / "hg19.chr20.masked.fasta.gz"
    for path in (folder / "HG002_R1.fastq.gz", folder / "HG002_R2.fastq.gz", reference):
        if not path.is_file():
            sys.exit(f"bench: {path}: missing (the benchmark needs ../shared/data)")
    r1, r2 = folder / "HG002_R1.fastq.gz", folder / "HG002_R2.fastq.gz"
    return Dataset("hg002-window", r1, r2, reference, count_records(r1))


def hg002_repeated(base: Dataset, copies: int, folder: Path) -> Dataset:
    """`copies` renamed, 5'-trimmed copies of the window's pairs (see the module docstring)."""
    out_paths = (folder / f"{SAMPLE}x{copies}_R1.fastq.gz", folder / f"{SAMPLE}x{copies}_R2.fastq.gz")
    for source, target in zip((base.r1, base.r2), out_paths, strict=True):
        with gzip.open(source, "rt") as handle:
            lines = handle.read().splitlines()
        records = [lines[i : i + 4] for i in range(0, len(lines), 4)]
        with target.open("wb") as raw:
            compressor = subprocess.Popen(["pigz", "-n", "-p", "2", "-c"], stdin=subprocess.PIPE, stdout=raw)
            assert compressor.stdin is not None
            for k in range(copies):
                chunk = []
                for header, seq, _plus, qual in records:
                    name, _, comment = header.partition(" ")
                    chunk.append(f"{name}:c{k}{' ' + comment if comment else ''}\n{seq[k:]}\n+\n{qual[k:]}\n")
                compressor.stdin.write("".join(chunk).encode())
            compressor.stdin.close()
            if compressor.wait() != 0:
                sys.exit(f"bench: {target}: pigz failed")
    return Dataset(f"hg002-x{copies}", out_paths[0], out_paths[1], base.reference, base.read_pairs * copies)


# ---------------------------------------------------------------------------------------------
# the two contenders


@dataclass
class RunResult:
    wall_s: float
    cpu_s: float  # user + system of every process of the run (for the chain: with the moto server's)
    moto_cpu_s: float  # the moto server's share of cpu_s (0 for the plain pipeline)
    stages_s: dict[str, float]
    vcf_records: list[str]


def children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def process_cpu(pid: int) -> float:
    """user + system seconds of a running process (the moto server)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def run_step_chain(dataset: Dataset, moto: MotoServer, threads: int, run_id: str) -> RunResult:
    import boto3  # the harness's own uploads; the steps are separate processes

    env = moto.env
    s3 = boto3.client(
        "s3",
        endpoint_url=env["AWS_ENDPOINT_URL"],
        region_name=env["AWS_DEFAULT_REGION"],
        aws_access_key_id=env["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=env["AWS_SECRET_ACCESS_KEY"],
    )
    bucket = f"bench-{run_id}"
    s3.create_bucket(Bucket=bucket)
    inputs = {"r1": f"in/{dataset.r1.name}", "r2": f"in/{dataset.r2.name}"}
    s3.upload_file(str(dataset.r1), bucket, inputs["r1"])
    s3.upload_file(str(dataset.r2), bucket, inputs["r2"])
    s3.upload_file(str(dataset.reference), bucket, f"refs/{dataset.reference.name}")
    lanes = [{"r1": f"s3://{bucket}/{inputs['r1']}", "r2": f"s3://{bucket}/{inputs['r2']}"}]
    common = ["--sample", SAMPLE, "--reads", json.dumps(lanes)]
    common += ["--reference", f"s3://{bucket}/refs/{dataset.reference.name}"]
    common += ["--staging", f"s3://{bucket}/.staging/{run_id}/", "--aligner", "minimap2", "--ploidy", "2"]
    step_env = dict(env, GENOPIPE_THREADS=str(threads))
    stages: dict[str, float] = {}
    moto_before, cpu_before = process_cpu(moto.pid), children_cpu()
    for step in STEPS:
        started = time.perf_counter()
        command = [str(GENOPIPE), "job", step, *common]
        done = subprocess.run(command, env=step_env, capture_output=True, text=True, errors="replace")
        stages[step] = time.perf_counter() - started
        if done.returncode != 0:
            sys.exit(f"bench: step chain, {step} failed on {dataset.name}: {done.stderr.strip()[-500:]}")
    moto_cpu = process_cpu(moto.pid) - moto_before
    cpu = children_cpu() - cpu_before + moto_cpu
    with tempfile.TemporaryDirectory(prefix="bench-chain-vcf-") as work:
        vcf = Path(work) / "chain.vcf.gz"
        s3.download_file(bucket, f".staging/{run_id}/{SAMPLE}.vcf.gz", str(vcf))
        records = vcf_records(vcf)
    reset_moto(env)
    return RunResult(sum(stages.values()), cpu, moto_cpu, stages, records)


def run_plain(dataset: Dataset, threads: int, helper_dir: Path) -> RunResult:
    with tempfile.TemporaryDirectory(prefix="bench-plain-") as work:
        timings = Path(work) / "timings.tsv"
        command = ["bash", str(PLAIN_PIPELINE), str(dataset.r1), str(dataset.r2), str(dataset.reference)]
        command += [SAMPLE, str(threads), str(Path(work) / "out"), str(timings)]
        env = dict(os.environ, BENCH_HELPERS=str(helper_dir), MULTIQC=str(GENOPIPE.parent / "multiqc"))
        cpu_before = children_cpu()
        started = time.perf_counter()
        done = subprocess.run(command, capture_output=True, text=True, errors="replace", env=env)
        wall = time.perf_counter() - started
        cpu = children_cpu() - cpu_before
        if done.returncode != 0:
            sys.exit(f"bench: plain pipeline failed on {dataset.name}: {done.stderr.strip()[-800:]}")
        stages = {}
        for line in timings.read_text().splitlines():
            name, seconds = line.split("\t")
            stages[name] = float(seconds)
        records = vcf_records(Path(work) / "out" / f"{SAMPLE}.vcf.gz")
    return RunResult(wall, cpu, 0.0, stages, records)


def write_helpers(folder: Path, ploidy: int = 2) -> Path:
    """What the plain pipeline shares with the steps, taken from the steps so the two cannot drift:
    the FASTQ pair check (awk), the soft filters and the tool settings."""
    from genopipe.steps import align, call, qc, validate

    folder.mkdir(parents=True, exist_ok=True)
    (folder / "fastq_pair_check.awk").write_text(validate.FASTQ_PAIR_CHECK)
    (folder / "call_filters.tsv").write_text(
        "".join(f"{name}\t{expression}\n" for name, expression in call.soft_filters(ploidy))
    )
    settings = {
        "PLOIDY": ploidy,
        "TRIMMED_COMPRESSION": qc.TRIMMED_COMPRESSION,
        "SORT_MEMORY_PER_THREAD": align.SORT_MEMORY_PER_THREAD,
        "MIN_MAPPING_QUALITY": call.MIN_MAPPING_QUALITY,
        "ADJUST_MAPPING_QUALITY": call.ADJUST_MAPPING_QUALITY,
        "MAX_DEPTH": call.MAX_DEPTH,
    }
    (folder / "settings.sh").write_text("".join(f"{key}={value}\n" for key, value in settings.items()))
    return folder


def summarise(runs: list[RunResult]) -> dict[str, object]:
    walls = [run.wall_s for run in runs]
    return {
        "wall_s": [round(w, 3) for w in walls],
        "cpu_s": [round(run.cpu_s, 3) for run in runs],
        "median_wall_s": round(statistics.median(walls), 3),
        "median_cpu_s": round(statistics.median(run.cpu_s for run in runs), 3),
        "median_moto_server_cpu_s": round(statistics.median(run.moto_cpu_s for run in runs), 3),
        "median_stage_s": {
            name: round(statistics.median(run.stages_s[name] for run in runs), 3) for name in runs[0].stages_s
        },
    }


def compare(plain_runs: list[RunResult], chain_runs: list[RunResult]) -> dict[str, object]:
    plain, chain = summarise(plain_runs), summarise(chain_runs)
    wall_ratio = statistics.median(r.wall_s for r in chain_runs) / statistics.median(
        r.wall_s for r in plain_runs
    )
    cpu_ratio = statistics.median(r.cpu_s for r in chain_runs) / statistics.median(
        r.cpu_s for r in plain_runs
    )
    everywhere = set.intersection(*(set(run.vcf_records) for run in plain_runs + chain_runs))
    anywhere = set.union(*(set(run.vcf_records) for run in plain_runs + chain_runs))
    return {
        "plain": plain,
        "step_chain": chain,
        "ratio_chain_over_plain": round(wall_ratio, 3),
        "cpu_ratio_chain_over_plain": round(cpu_ratio, 3),
        "within_target": wall_ratio <= TARGET_RATIO,
        "vcf_records": len(plain_runs[0].vcf_records),
        "vcf_records_not_in_every_run": sorted(anywhere - everywhere)[:50],
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--reps", type=int, default=3, help="repetitions per pipeline and data set")
    parser.add_argument("--threads", type=int, default=len(os.sched_getaffinity(0)))
    parser.add_argument("--datasets", default="hg002-window,hg002-x24")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()

    chosen = args.datasets.split(",")
    started_at = datetime.now(UTC).isoformat(timespec="seconds")
    datasets_out: dict[str, object] = {}
    results: dict[str, object] = {
        "benchmark": "step chain (genopipe job per step, S3 on a moto server) vs plain shell pipeline",
        "date": started_at,
        "machine": machine(),
        "threads": args.threads,
        "repetitions": args.reps,
        "tool_versions": tool_versions(),
        "datasets": datasets_out,
    }
    with tempfile.TemporaryDirectory(prefix="bench-step-chain-") as scratch, moto_server() as moto:
        helpers = write_helpers(Path(scratch) / "helpers")
        base = hg002_window()
        datasets = [base] if "hg002-window" in chosen else []
        if f"hg002-x{COPIES}" in chosen:
            datasets.append(hg002_repeated(base, COPIES, Path(scratch)))
        for dataset in datasets:
            plain_runs, chain_runs = [], []
            for rep in range(args.reps):
                plain_runs.append(run_plain(dataset, args.threads, helpers))
                chain_runs.append(run_step_chain(dataset, moto, args.threads, f"{dataset.name}-{rep}"))
                print(
                    f"{dataset.name} rep {rep + 1}: plain {plain_runs[-1].wall_s:.2f} s, "
                    f"chain {chain_runs[-1].wall_s:.2f} s",
                    flush=True,
                )
            figures = compare(plain_runs, chain_runs)
            datasets_out[dataset.name] = {
                "r1": str(dataset.r1) if dataset.name == "hg002-window" else f"generated: {dataset.r1.name}",
                "reference": str(dataset.reference),
                "read_pairs": dataset.read_pairs,
                **figures,
            }
            print(f"{dataset.name}: {json.dumps(figures)}", flush=True)
    write_results(args.out, results)
    return 0


if __name__ == "__main__":
    sys.exit(main())
