"""Benchmark: used vs allocated vCPU-seconds of the call step, one stream vs one caller per region.

Utilisation = CPU seconds of the job's process tree (user + system of `genopipe job call` and
every tool it ran, from the children's rusage) / (vCPUs reserved x wall seconds). S3 is a moto
server (its CPU is not the job's: S3 is a service on AWS).

Data: a diploid sample simulated (genopipe.truth.simulate, dwgsim, 30x) on the first `--length`
bases of GRCh38 chr20 (../shared/data/human-ref), aligned by minimap2 | samtools sort (the call
step is what is measured; how the BAM was made does not matter to it). Runs, all on one BAM:

- `one_stream`: the call job as before scatter-gather: one group, `GENOPIPE_THREADS=1`, so one
  mpileup | call | norm | filters stream over the whole genome (and the gather). The job
  reserved 4 vCPUs (the call row before), so that is its denominator.
- `per_region`: one group of `REGIONS` regions (as a 100 Mb group of a genome has: the planner
  cuts a group into 32 regions of >= 1 Mb; the sample is smaller, so the bench sets the region
  size), `GENOPIPE_THREADS` = this machine's CPUs, one caller process per region, as many at once.
- `fixed`: a call job whose group is a 1 kb region (plan of two groups: no gather): the job's
  fixed costs (start-up, fetches, part sort and upload).
- `sharded`: the sample in `--groups` groups of `REGIONS` regions each, every call job then the
  concat job: the VCF records must equal `per_region`'s; the BAM bytes each job fetched.

Projection (computed from these figures, assumptions stated in the output): a 30x genome's call
group of 100 Mb real bases (the default CallShardBases) on V vCPUs: CPU = the callers' measured
CPU per real Mb (the `per_region` run's CPU less the fixed part) x 100, in 32 equal regions;
wall = the fixed wall + the group's BAM slice at an assumed download rate + the regions on V
slots (each caller pipeline uses up to the `one_stream` run's CPU/wall cores when fewer than V
run). CPU figures hold on a busy host; wall figures stretch with its load (recorded).

    .venv/bin/python bench/call_utilisation.py [--length 3000000] [--caller bcftools]
"""

from __future__ import annotations

import argparse
import json
import math
import os
import resource
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import boto3
from harness import REPO, SHARED_DATA, MotoServer, machine, moto_server, tool_versions, vcf_records

from genopipe import bai, shards
from genopipe.pipeline import step as table_row
from genopipe.truth.simulate import simulate_sample

RESULTS = REPO / "bench" / "results" / "call_utilisation.json"
GENOPIPE = Path(sys.executable).parent / "genopipe"
HUMAN = SHARED_DATA / "human-ref" / "grch38.chr20_chr21_first10M.fasta.gz"
SAMPLE = "S"
REGIONS = 32  # regions per group (genopipe.shards.REGIONS_PER_GROUP)
BEFORE_VCPUS = 4  # the call row's vCPUs before scatter-gather
# projection assumptions
GENOME_REAL_BASES = 2.9e9  # GRCh38 without N
WGS_READ_PAIRS = 400e6  # 30x of 2x150
GROUP_REAL_BASES = 100e6  # CallShardBases' default
# one job's ranged GETs from S3 into scratch: gp3's baseline is 125 MB/s, more when provisioned
DOWNLOAD_MB_PER_S = (100.0, 250.0, 500.0)
VCPU_CHOICES = (1, 2, 4, 8, 16)
TARGET = 0.8
REFERENCE_BGZF_MB = 900.0  # GRCh38 as BGZF, fetched by every call job (+ .fai, .gzi)


def children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def prepare(work: Path, length: int) -> tuple[Path, Path, int]:
    """reference.fa, sim.bam (+ .bai) in `work`, made once (reused when present)."""
    sim = work / "sim"
    bam = sim / "sim.bam"
    if not Path(f"{bam}.bai").exists():
        sample = simulate_sample(sim, seed=7, reference=HUMAN, length=length, depth=30.0)
        align = subprocess.Popen(
            [
                "minimap2",
                "-ax",
                "sr",
                "-t",
                str(len(os.sched_getaffinity(0))),
                "-R",
                f"@RG\\tID:{SAMPLE}\\tSM:{SAMPLE}",  # as the align step: the VCF's sample is SM
                str(sample.reference),
                str(sample.r1),
                str(sample.r2),
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
        )
        subprocess.run(["samtools", "sort", "-o", str(bam), "-"], stdin=align.stdout, check=True)
        if align.wait() != 0:
            sys.exit("bench: minimap2 failed")
        subprocess.run(["samtools", "index", str(bam)], check=True)
    pairs = int(
        subprocess.run(
            ["samtools", "view", "-c", "-f", "64", str(bam)], capture_output=True, text=True, check=True
        ).stdout
    )
    return sim / "reference.fa", bam, pairs


class Stage:
    """A bucket with the reference, BAM and plan, and `genopipe job` runs against it."""

    def __init__(self, moto: MotoServer, name: str, reference: Path, bam: Path) -> None:
        self.env = moto.env
        self.s3 = boto3.client(
            "s3",
            endpoint_url=self.env["AWS_ENDPOINT_URL"],
            region_name=self.env["AWS_DEFAULT_REGION"],
            aws_access_key_id=self.env["AWS_ACCESS_KEY_ID"],
            aws_secret_access_key=self.env["AWS_SECRET_ACCESS_KEY"],
        )
        self.bucket = f"bench-call-{name}"
        self.s3.create_bucket(Bucket=self.bucket)
        self.staging = f".staging/{name}/"
        self.s3.upload_file(str(reference), self.bucket, "refs/reference.fa")
        self.s3.upload_file(str(bam), self.bucket, f"{self.staging}{SAMPLE}.bam")
        self.s3.upload_file(f"{bam}.bai", self.bucket, f"{self.staging}{SAMPLE}.bam.bai")
        reads = [{"r1": f"s3://{self.bucket}/r1.fq.gz", "r2": f"s3://{self.bucket}/r2.fq.gz"}]
        self.args = ["--sample", SAMPLE, "--reads", json.dumps(reads), "--ploidy", "2"]
        self.args += ["--reference", f"s3://{self.bucket}/refs/reference.fa"]
        self.args += ["--staging", f"s3://{self.bucket}/{self.staging}"]
        self.job("reference", threads=1)  # reference.json (and a plan the bench replaces)

    def job(
        self, step: str, threads: int, shard: int | None = None, caller: str = "bcftools"
    ) -> dict[str, float]:
        env = dict(self.env, GENOPIPE_THREADS=str(threads))
        if shard is not None:
            env["AWS_BATCH_JOB_ARRAY_INDEX"] = str(shard)
        before, started = children_cpu(), time.perf_counter()
        done = subprocess.run(
            [str(GENOPIPE), "job", step, *self.args, "--caller", caller],
            env=env,
            capture_output=True,
            text=True,
        )
        wall, cpu = time.perf_counter() - started, children_cpu() - before
        if done.returncode != 0:
            sys.exit(f"bench: {step} failed: {done.stderr.strip()[-500:]}")
        return {"wall_s": round(wall, 2), "cpu_s": round(cpu, 2)}

    def plan(self, groups: list[shards.Group]) -> None:
        body = json.dumps(shards.plan_json(groups)).encode()
        self.s3.put_object(Bucket=self.bucket, Key=f"{self.staging}shards/call.json", Body=body)

    def records(self, work: Path) -> list[str]:
        vcf = work / f"{self.bucket}.vcf.gz"
        self.s3.download_file(self.bucket, f"{self.staging}{SAMPLE}.vcf.gz", str(vcf))
        return vcf_records(vcf)


def tiles(
    contigs: list[tuple[str, int]], gaps: list[tuple[str, int, int]], groups: int
) -> list[shards.Group]:
    """The planner's genome plan with `groups` groups of REGIONS regions each."""
    real = sum(length for _, length in contigs) - sum(end - start for _, start, end in gaps)
    saved = shards.MIN_REGION_BASES
    shards.MIN_REGION_BASES = math.ceil(real / groups / REGIONS)
    try:
        return shards.plan_genome(contigs, gaps, math.ceil(real / groups), groups)
    finally:
        shards.MIN_REGION_BASES = saved


def utilisation(run: dict[str, float], vcpus: int) -> float:
    return round(run["cpu_s"] / (vcpus * run["wall_s"]), 3)


def project(per_mb_cpu: float, fixed: dict[str, float], stream_cores: float, bytes_per_pair: float) -> dict:
    """A 100 Mb group of a 30x genome on V vCPUs, at a few download rates (module docstring)."""
    region_cpu = per_mb_cpu * GROUP_REAL_BASES / 1e6 / REGIONS
    slice_mb = bytes_per_pair * WGS_READ_PAIRS * GROUP_REAL_BASES / GENOME_REAL_BASES / 1e6
    cpu = fixed["cpu_s"] + REGIONS * region_cpu
    by_rate: dict[str, dict[str, dict[str, float]]] = {}
    for rate in DOWNLOAD_MB_PER_S:
        download_s = (slice_mb + REFERENCE_BGZF_MB) / rate
        by_rate[str(rate)] = {}
        for vcpus in VCPU_CHOICES:
            rounds, last = divmod(REGIONS, vcpus)
            makespan = rounds * region_cpu  # V pipelines on V vCPUs: one core each
            if last:
                makespan += region_cpu / min(max(stream_cores, 1.0), vcpus / last)
            wall = fixed["wall_s"] + download_s + makespan
            by_rate[str(rate)][str(vcpus)] = {
                "wall_s": round(wall, 1),
                "utilisation": round(cpu / (vcpus * wall), 3),
            }
    slowest = by_rate[str(DOWNLOAD_MB_PER_S[0])]
    chosen = max(v for v in VCPU_CHOICES if slowest[str(v)]["utilisation"] >= TARGET)
    return {
        "assumptions": {
            "group_real_bases": GROUP_REAL_BASES,
            "regions_per_group": REGIONS,
            "genome_real_bases": GENOME_REAL_BASES,
            "wgs_read_pairs": WGS_READ_PAIRS,
            "bam_bytes_per_read_pair": round(bytes_per_pair, 1),
            "group_bam_slice_mb": round(slice_mb, 1),
            "reference_bgzf_mb": REFERENCE_BGZF_MB,
            "caller_cpu_s_per_real_mb": round(per_mb_cpu, 2),
            "fixed": fixed,
            "depth_scaling": "CPU per Mb measured at 30x on simulated reads; taken as is for a 30x genome",
        },
        "group_cpu_s": round(cpu, 1),
        "by_download_mb_per_s_and_vcpus": by_rate,
        "rule": f"the most vCPUs whose utilisation is >= {TARGET} at {DOWNLOAD_MB_PER_S[0]} MB/s",
        "chosen_vcpus": chosen,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--length", type=int, default=3_000_000, help="bases of chr20 to simulate on")
    parser.add_argument("--groups", type=int, default=4, help="call jobs of the sharded run")
    parser.add_argument("--caller", default="bcftools")
    parser.add_argument("--work", type=Path, help="keep the simulated sample here (reused when present)")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    threads = len(os.sched_getaffinity(0))
    started_at = datetime.now(UTC).isoformat(timespec="seconds")
    work = args.work or Path(tempfile.mkdtemp(prefix="bench-call-"))
    reference, bam, pairs = prepare(work, args.length)
    contigs = shards.read_fai(Path(f"{reference}.fai"))
    gaps = list(shards.scan_gaps(reference))
    real = sum(length for _, length in contigs) - sum(end - start for _, start, end in gaps)
    runs: dict[str, object] = {}
    with moto_server() as moto:
        stage = Stage(moto, "one", reference, bam)
        stage.plan(tiles(contigs, gaps, 1))
        one_stream = stage.job("call", threads=1, caller=args.caller)
        one_records = stage.records(work)
        per_region = stage.job("call", threads=threads, caller=args.caller)
        per_region_records = stage.records(work)
        first = contigs[0][0]
        middle = gaps[0][2] + 100_000 if gaps and gaps[0][1] == 0 else 100_000
        tiny = shards.Region(contig=first, start=middle, end=middle + 1000, bases=1000)
        stage.plan([[tiny], tiles(contigs, gaps, 1)[0]])
        fixed = stage.job("call", threads=threads, shard=0, caller=args.caller)

        sharded_stage = Stage(moto, "sharded", reference, bam)
        plan = tiles(contigs, gaps, args.groups)
        sharded_stage.plan(plan)
        index, size = bai.read_bai(Path(f"{bam}.bai")), bam.stat().st_size
        jobs = []
        for shard, group in enumerate(plan):
            job = sharded_stage.job("call", threads=threads, shard=shard, caller=args.caller)
            queries = [(0, max(0, r.start - 1000), r.end + 1000) for r in group]
            fetched = sum(end - start for start, end in bai.byte_ranges(index, queries, size))
            jobs.append(
                {
                    **job,
                    "real_bases": sum(r.bases for r in group),
                    "bam_fraction_fetched": round(fetched / size, 3),
                    "utilisation": utilisation(job, threads),
                }
            )
        gather = (
            sharded_stage.job("concat", threads=threads, caller=args.caller) if "concat" in _steps() else None
        )
        if gather is None:  # before the concat row exists: the gather through the runner, in-process
            gather = _gather_in_process(sharded_stage, threads, args.caller)
        sharded_records = sharded_stage.records(work)

    # the callers' CPU per real Mb: the per-region run's (32 regions of ~90 kb) less the fixed
    # part; the sharded jobs' 128 regions of ~23 kb pay ~8 process starts each, which a genome's
    # 3 Mb regions do not (so that figure is reported, not projected)
    per_mb = (per_region["cpu_s"] - fixed["cpu_s"]) / (real / 1e6)
    sharded_cpu = sum(job["cpu_s"] for job in jobs) + gather["cpu_s"]
    stream_cores = one_stream["cpu_s"] / one_stream["wall_s"]
    runs = {
        "one_stream": {
            **one_stream,
            "vcpus_reserved": BEFORE_VCPUS,
            "utilisation": utilisation(one_stream, BEFORE_VCPUS),
        },
        "per_region": {
            **per_region,
            "cpu_over_one_stream": round(per_region["cpu_s"] / one_stream["cpu_s"], 3),
            "vcpus_reserved": threads,
            "utilisation": utilisation(per_region, threads),
            "regions": REGIONS,
        },
        "fixed": fixed,
        "sharded": {
            "groups": len(plan),
            "jobs": jobs,
            "concat": gather,
            "cpu_s": round(sharded_cpu, 2),
            "cpu_over_one_stream": round(sharded_cpu / one_stream["cpu_s"], 3),
        },
    }
    row = table_row("call")
    projection = project(per_mb, fixed, stream_cores, bam.stat().st_size / pairs)
    results = {
        "benchmark": "call step: used / allocated vCPU-seconds, one stream vs one caller per region",
        "date": started_at,
        "machine": machine(),
        "tool_versions": tool_versions(),
        "caller": args.caller,
        "sample": {
            "reference": f"{HUMAN.name}, first {args.length} bases",
            "real_bases": real,
            "read_pairs": pairs,
            "depth": 30.0,
            "bam_bytes": bam.stat().st_size,
        },
        "runs": runs,
        "records": {
            "one_stream": len(one_records),
            "per_region_equals_one_stream": per_region_records == one_records,
            "sharded_equals_one_stream": sharded_records == one_records,
        },
        "call_row": {
            "vcpus": row.vcpus,
            "memory_mib": row.memory_mib,
            "matches_projection": row.vcpus == projection["chosen_vcpus"],
        },
        "projection_100mb_group_30x": projection,
        "load_average_at_end": list(os.getloadavg()),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2) + "\n")
    print(json.dumps({k: results[k] for k in ("runs", "records", "projection_100mb_group_30x")}, indent=2))
    print(f"wrote {args.out}")
    return 0


def _steps() -> tuple[str, ...]:
    from genopipe.pipeline import STEP_NAMES

    return STEP_NAMES


def _gather_in_process(stage: Stage, threads: int, caller: str) -> dict[str, float]:
    """`genopipe job concat` where the table has no concat row yet: the same runner and function."""
    code = (
        "import sys; from genopipe.steps.cli import add_arguments, parse_params; import argparse;"
        "from genopipe.steps import concat; from genopipe.steps.runner import execute;"
        "p = argparse.ArgumentParser(); add_arguments(p);"
        "sys.exit(execute('concat', parse_params(p.parse_args(['call', *sys.argv[1:]])), concat.run))"
    )
    env = dict(stage.env, GENOPIPE_THREADS=str(threads))
    before, started = children_cpu(), time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-c", code, *stage.args, "--caller", caller], env=env, capture_output=True, text=True
    )
    if done.returncode != 0:
        sys.exit(f"bench: concat failed: {done.stderr.strip()[-500:]}")
    return {"wall_s": round(time.perf_counter() - started, 2), "cpu_s": round(children_cpu() - before, 2)}


if __name__ == "__main__":
    sys.exit(main())
