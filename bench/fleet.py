"""A discrete simulation of a Batch fleet running one sample's plan, from measured per-piece costs.

    .venv/bin/python bench/fleet.py [--measured bench/results/scale-measured.json]

Reads the figures bench/scale.py measured (CPU seconds per read pair, per base, per shard), scales
them to a 30x human genome and a 100x exome, and plays the plan

    validate -> qc -> align[shards] -> markdup -> call[regions] -> concat -> report

(the reference indexes cached: each align shard downloads and loads the index) on a fleet of Spot
instances, one event at a time. Writes `bench/results/scale.json` (the projection at the stack's
defaults, the curves against shard counts, every assumption as a number) and `scale.png`.

The model, in order of events:
- A stage's jobs are submitted together; each becomes runnable after `batch_scheduling_s`.
- A runnable job goes on the first running instance with enough free vCPUs and memory (first-fit,
  in submission order); if none has room and the fleet is under MaxvCpus, an instance is launched
  (ready after `instance_start_s`); the job then waits for the first instance that frees room.
- A job's first start on an instance pulls its image (`image_pull_s`, once per image and instance).
- A job runs: download its input (`bytes / s3_mb_per_s`), load the index (align), compute
  (CPU seconds / usable cores), upload its output; expected Spot rework is added to it.
- The state machine notices a finished job after its polling backoff (genopipe/jobs/backoff.py,
  the check loop's `wait_seconds`): the next stage starts when the last job of the stage is seen.
- An instance with no job is kept `idle_instance_kept_s`, then terminated; every second an
  instance runs is billed for all its vCPUs, so idle vCPUs are part of the dollars.

Per-piece CPU costs are linear in the work unit (read pairs for validate, qc, align, markdup and
report; aligned bases for call): reads are aligned independently, and the pileup's work is per
base and read; what is not linear is kept apart as a fixed cost per job (process start, index
load, region set-up) measured on a tiny input.
"""

from __future__ import annotations

import argparse
import heapq
import json
import math
import statistics
import sys
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from genopipe.jobs.backoff import PollingPolicy, detection_delay_seconds

RESULTS = Path(__file__).resolve().parent / "results"
QC_VARIANT = "detect_adapter"  # fastp as genopipe/steps/qc.py runs it now


# ---------------------------------------------------------------------------------------------
# the fleet


@dataclass(frozen=True)
class Fleet:
    """The compute environment and the stated assumptions about AWS (all numbers, all in the JSON)."""

    instance_vcpus: int = 16  # m6i.4xlarge / c6i.4xlarge / r6i.4xlarge class: the packing unit
    instance_memory_mib: int = 61_440  # 64 GiB minus what ECS and the OS keep
    instance_type: str = (
        "m6i.4xlarge (16 vCPU, 64 GiB) for packing; Batch may pick any of c6i/m6i/r6i/c5/m5/r5"
    )
    max_vcpus: int = 256  # template.yaml MaxvCpus default
    spot_usd_per_vcpu_hour: float = 0.015  # template.yaml SpotPricePerVcpuHour default
    batch_scheduling_s: float = 30.0  # SUBMITTED -> RUNNABLE -> placed, with capacity present
    instance_start_s: float = 120.0  # Spot request to ECS agent registered
    image_pull_s: float = 30.0  # a step image from ECR, once per image per instance
    idle_instance_kept_s: float = 300.0  # Batch scales an empty instance in after minutes
    s3_mb_per_s: float = 200.0  # per job, S3 <-> instance over the gateway endpoint (multipart)
    spot_reclaims_per_instance_hour: float = 0.05  # pessimistic; a reclaim loses half a job on average
    # the check loop's backoff cap (genopipe/jobs/backoff.py); 0: a job's end is seen at once (an
    # EventBridge rule on Batch job state changes instead of polling)
    poll_max_seconds: int = 5120
    billing_minimum_s: float = 60.0  # EC2 per-second billing, one minute minimum


@dataclass(frozen=True)
class Job:
    name: str
    stage: str
    vcpus: int
    memory_mib: int
    cpu_s: float  # compute, all threads together
    usable_cores: float  # how many cores the tool can keep busy (<= vcpus)
    input_bytes: float = 0.0  # downloaded from S3 before computing
    output_bytes: float = 0.0  # uploaded after
    fixed_s: float = 0.0  # per-job set-up that does not parallelise (index load, process start)
    image: str = ""

    def run_seconds(self, fleet: Fleet) -> float:
        """Seconds on the instance once placed (image pull excluded), with the expected Spot rework."""
        transfer = (self.input_bytes + self.output_bytes) / (fleet.s3_mb_per_s * 1e6)
        compute = self.cpu_s / max(min(self.usable_cores, self.vcpus), 1e-9)
        seconds = transfer + self.fixed_s + compute
        return seconds * (1 + expected_rework_fraction(seconds, fleet.spot_reclaims_per_instance_hour))


def expected_rework_fraction(seconds: float, reclaims_per_hour: float) -> float:
    """Expected extra work from Spot reclaims: a reclaim arrives with probability rate * duration
    and loses on average half the job (it restarts from the start; Batch retries on `Host EC2*`)."""
    hours = seconds / 3600
    return min(reclaims_per_hour * hours, 1.0) * 0.5


@dataclass
class Instance:
    number: int
    ready_at: float
    free_vcpus: int
    free_memory_mib: int
    busy_until: float = 0.0  # when its last job ends
    images: set[str] = field(default_factory=set)
    jobs: int = 0
    started_at: float = 0.0
    stopped_at: float | None = None


@dataclass
class Placed:
    job: Job
    instance: int
    start: float
    end: float


@dataclass
class Outcome:
    wall_s: float
    usd: float
    instance_seconds: float
    vcpu_seconds_allocated: float  # every instance second times its vCPUs
    vcpu_seconds_used: float  # the tools' CPU seconds (what the jobs compute)
    stages: dict[str, dict[str, float]]
    instances: int

    @property
    def idle_share(self) -> float:
        if self.vcpu_seconds_allocated == 0:
            return 0.0
        return 1 - self.vcpu_seconds_used / self.vcpu_seconds_allocated


def simulate(stages: list[list[Job]], fleet: Fleet) -> Outcome:
    """Play the stages one after the other on the fleet; every figure of the outcome in seconds/USD."""
    policy = PollingPolicy(max_seconds=fleet.poll_max_seconds) if fleet.poll_max_seconds else None
    instances: list[Instance] = []
    now = 0.0
    stage_figures: dict[str, dict[str, float]] = {}
    used = 0.0
    for jobs in stages:
        if not jobs:
            continue
        stage_start = now
        # running jobs' ends per instance: (end, instance, vcpus, memory)
        releases: list[tuple[float, int, int, int]] = []
        last_seen = now
        last_end = now
        for job in jobs:
            runnable = stage_start + fleet.batch_scheduling_s
            placed = place(job, runnable, instances, releases, fleet)
            instance = instances[placed.instance]
            instance.busy_until = max(instance.busy_until, placed.end)
            heapq.heappush(releases, (placed.end, placed.instance, job.vcpus, job.memory_mib))
            used += job.cpu_s
            delay = detection_delay_seconds(placed.end - stage_start, policy) if policy else 0
            seen = placed.end + delay
            last_seen = max(last_seen, seen)
            last_end = max(last_end, placed.end)
        # free the stage's remaining jobs (the next stage starts after all are done and seen)
        while releases:
            _, number, vcpus, memory = heapq.heappop(releases)
            instances[number].free_vcpus += vcpus
            instances[number].free_memory_mib += memory
        stage_figures[jobs[0].stage] = {
            "jobs": len(jobs),
            "start_s": round(stage_start, 1),
            "last_job_end_s": round(last_end, 1),
            "seen_s": round(last_seen, 1),
            "polling_delay_s": round(last_seen - last_end, 1),
            "cpu_s": round(sum(j.cpu_s for j in jobs), 1),
            "job_vcpus": jobs[0].vcpus,
        }
        # instances idle between stages past their keep time are stopped (and relaunched later)
        for instance in instances:
            if instance.stopped_at is None and instance.busy_until + fleet.idle_instance_kept_s < last_seen:
                instance.stopped_at = instance.busy_until + fleet.idle_instance_kept_s
        now = last_seen
    instance_seconds = vcpu_seconds = 0.0
    for instance in instances:
        stop = (
            instance.stopped_at
            if instance.stopped_at is not None
            else instance.busy_until + fleet.idle_instance_kept_s
        )
        stop = min(stop, max(now, instance.busy_until) + fleet.idle_instance_kept_s)
        billed = max(stop - instance.started_at, fleet.billing_minimum_s)
        instance_seconds += billed
        vcpu_seconds += billed * fleet.instance_vcpus
    usd = vcpu_seconds / 3600 * fleet.spot_usd_per_vcpu_hour
    return Outcome(
        wall_s=now,
        usd=usd,
        instance_seconds=instance_seconds,
        vcpu_seconds_allocated=vcpu_seconds,
        vcpu_seconds_used=used,
        stages=stage_figures,
        instances=len(instances),
    )


def place(
    job: Job,
    runnable: float,
    instances: list[Instance],
    releases: list[tuple[float, int, int, int]],
    fleet: Fleet,
) -> Placed:
    """Start `job` at the earliest moment an instance has room (launching one if the fleet may grow)."""
    if job.vcpus > fleet.instance_vcpus or job.memory_mib > fleet.instance_memory_mib:
        raise ValueError(f"{job.name}: {job.vcpus} vCPUs / {job.memory_mib} MiB do not fit one instance")
    while True:
        for instance in instances:
            if instance.stopped_at is not None:
                continue
            if instance.free_vcpus >= job.vcpus and instance.free_memory_mib >= job.memory_mib:
                start = max(runnable, instance.ready_at)
                return start_on(job, instance, start, fleet)
        allocated = sum(fleet.instance_vcpus for i in instances if i.stopped_at is None)
        if allocated + fleet.instance_vcpus <= fleet.max_vcpus:
            instance = Instance(
                number=len(instances),
                ready_at=runnable + fleet.instance_start_s,
                free_vcpus=fleet.instance_vcpus,
                free_memory_mib=fleet.instance_memory_mib,
                started_at=runnable,
            )
            instances.append(instance)
            return start_on(job, instance, instance.ready_at, fleet)
        if not releases:
            raise ValueError(f"{job.name}: no room and nothing running")
        end, number, vcpus, memory = heapq.heappop(releases)  # wait for the next job to end
        instances[number].free_vcpus += vcpus
        instances[number].free_memory_mib += memory
        runnable = max(runnable, end)


def start_on(job: Job, instance: Instance, start: float, fleet: Fleet) -> Placed:
    if job.image not in instance.images:
        instance.images.add(job.image)
        start += fleet.image_pull_s
    instance.free_vcpus -= job.vcpus
    instance.free_memory_mib -= job.memory_mib
    instance.jobs += 1
    return Placed(job, instance.number, start, start + job.run_seconds(fleet))


# ---------------------------------------------------------------------------------------------
# the sample and the plan


@dataclass(frozen=True)
class SampleSize:
    name: str
    read_pairs: float
    gz_bytes: float
    called_bases: float  # real bases the caller walks (genome without N, or the padded targets)
    depth: float  # mean depth over `called_bases`
    reference_real_bases: float  # what the index holds
    description: str


GRCH38_BASES = 3_099_734_149  # GRCh38 primary assembly, all contigs (NCBI GCA_000001405.15 stats)
GRCH38_REAL_BASES = 2_948_611_470  # its ungapped length (not N)
WGS30X = SampleSize(
    "wgs30x",
    read_pairs=400e6,
    gz_bytes=100e9,
    called_bases=GRCH38_REAL_BASES,
    depth=400e6 * 300 / GRCH38_REAL_BASES,
    reference_real_bases=GRCH38_REAL_BASES,
    description="30x WGS: 400M pairs of 2x150 (~40x raw over the 2.95 Gb ungapped GRCh38), 100 GB gz FASTQ",
)
EXOME_TARGET_BASES = 60e6  # ~35-40 Mb of capture targets, padded by 100 bp each side
EXOME100X = SampleSize(
    "exome100x",
    read_pairs=100 * EXOME_TARGET_BASES / 0.6 / 300,  # 100x on target, 60% of bases on target
    gz_bytes=100 * EXOME_TARGET_BASES / 0.6 / 300 * 250,
    called_bases=EXOME_TARGET_BASES,
    depth=100.0,
    reference_real_bases=GRCH38_REAL_BASES,
    description="100x exome: 60 Mb of padded targets, 60% on-target, 2x150: 33M pairs, ~8 GB gzipped",
)


@dataclass(frozen=True)
class Rates:
    """Per-unit costs from the measurements (bench/scale.py), scaled to the human genome."""

    validate_cpu_per_pair: float
    validate_cores: float
    qc_cpu_per_pair: float
    qc_fixed_cpu_s: float
    qc_cores: float  # fastp's usable threads
    align_cpu_per_pair: float  # minimap2 | fixmate | sort, on the measured genome
    align_cores: float
    align_fixed_s: float  # process start + index load on the measured genome
    index_bytes_per_real_base: float  # the .mmi
    index_load_mb_per_s: float  # reading the .mmi into memory
    human_align_factor: float  # per-pair CPU on 3.1 Gb vs on the measured 13.6 Mb (assumption)
    markdup_cpu_per_pair: float
    markdup_cores: float
    bam_bytes_per_pair: float
    call_cpu_per_aligned_base: float  # bcftools per (base x depth)
    call_fixed_s: float
    call_cores: float  # bcftools mpileup | call: one core plus the pipe
    concat_cpu_per_region: float
    report_cpu_per_pair: float  # samtools stats + flagstat + coverage over the BAM
    report_cores: float
    trimmed_gz_bytes_per_pair: float
    vcf_bytes: float = 300e6


@dataclass(frozen=True)
class Plan:
    align_shard_pairs: float = 10e6  # AlignShardReadPairs
    call_shard_bases: float = 100e6  # CallShardBases
    max_shards: int = 100  # MaxShards
    # the fixes the report names, off by default: validate and qc per chunk of reads (the lanes of
    # a 30x genome, or fastp's own split), and the gather (markdup) and report per region group
    validate_qc_chunks: int = 1
    markdup_by_region: bool = False
    report_in_call: bool = False
    validate_vcpus: int = 1
    qc_vcpus: int = 4
    align_vcpus: int = 8
    call_vcpus: int = 1  # one region per vCPU: bcftools is single-threaded
    markdup_vcpus: int = 8
    report_vcpus: int = 2


def shard_count(total: float, per_shard: float, cap: int) -> int:
    return max(1, min(cap, math.ceil(total / per_shard)))


def plan_jobs(size: SampleSize, rates: Rates, plan: Plan) -> list[list[Job]]:
    """The sample's stages as Batch jobs."""
    pairs = size.read_pairs
    chunks = max(1, plan.validate_qc_chunks)
    validate = [
        Job(
            f"validate{c}",
            "validate",
            plan.validate_vcpus,
            2048,
            rates.validate_cpu_per_pair * pairs / chunks,
            rates.validate_cores,
            input_bytes=size.gz_bytes / chunks,
            image="validate",
        )
        for c in range(chunks)
    ]
    qc = [
        Job(
            f"qc{c}",
            "qc",
            plan.qc_vcpus,
            8192,
            rates.qc_cpu_per_pair * pairs / chunks + rates.qc_fixed_cpu_s,
            rates.qc_cores,
            input_bytes=size.gz_bytes / chunks,
            output_bytes=rates.trimmed_gz_bytes_per_pair * pairs / chunks,
            image="qc",
        )
        for c in range(chunks)
    ]
    n_align = shard_count(pairs, plan.align_shard_pairs, plan.max_shards)
    index_bytes = rates.index_bytes_per_real_base * size.reference_real_bases
    index_load_s = index_bytes / (rates.index_load_mb_per_s * 1e6)
    align = [
        Job(
            f"align{s}",
            "align",
            plan.align_vcpus,
            30720,
            rates.align_cpu_per_pair * rates.human_align_factor * pairs / n_align,
            rates.align_cores,
            input_bytes=rates.trimmed_gz_bytes_per_pair * pairs / n_align + index_bytes,
            output_bytes=rates.bam_bytes_per_pair * pairs / n_align,
            fixed_s=rates.align_fixed_s + index_load_s,
            image="align",
        )
        for s in range(n_align)
    ]
    n_call = shard_count(size.called_bases, plan.call_shard_bases, plan.max_shards)
    bam_bytes = rates.bam_bytes_per_pair * pairs
    markdup_jobs = n_call if plan.markdup_by_region else 1
    markdup = [
        Job(
            f"markdup{m}",
            "markdup",
            plan.markdup_vcpus,
            16384,
            rates.markdup_cpu_per_pair * pairs / markdup_jobs,
            rates.markdup_cores,
            input_bytes=bam_bytes / markdup_jobs,
            output_bytes=bam_bytes / markdup_jobs,
            image="align",
        )
        for m in range(markdup_jobs)
    ]
    aligned_bases = size.called_bases * size.depth
    report_cpu = rates.report_cpu_per_pair * pairs
    call = [
        Job(
            f"call{r}",
            "call",
            plan.call_vcpus,
            2048,
            rates.call_cpu_per_aligned_base * aligned_bases / n_call
            + rates.call_fixed_s
            + (report_cpu / n_call if plan.report_in_call else 0.0),
            rates.call_cores,
            input_bytes=bam_bytes / n_call,
            output_bytes=rates.vcf_bytes / n_call,
            image="call",
        )
        for r in range(n_call)
    ]
    concat = [
        Job(
            "concat",
            "concat",
            1,
            2048,
            rates.concat_cpu_per_region * n_call,
            1.0,
            input_bytes=rates.vcf_bytes,
            output_bytes=rates.vcf_bytes,
            image="call",
        )
    ]
    report = [
        Job(
            "report",
            "report",
            plan.report_vcpus,
            4096,
            0.0 if plan.report_in_call else report_cpu,
            rates.report_cores,
            input_bytes=0.0 if plan.report_in_call else bam_bytes,
            image="report",
        )
    ]
    return [validate, qc, align, markdup, call, concat, report]


def project(size: SampleSize, rates: Rates, plan: Plan, fleet: Fleet) -> dict[str, Any]:
    outcome = simulate(plan_jobs(size, rates, plan), fleet)
    return {
        "wall_hours": round(outcome.wall_s / 3600, 3),
        "usd": round(outcome.usd, 3),
        "idle_share_of_allocated_vcpu_s": round(outcome.idle_share, 3),
        "idle_usd": round(outcome.usd * outcome.idle_share, 3),
        "vcpu_hours_allocated": round(outcome.vcpu_seconds_allocated / 3600, 2),
        "vcpu_hours_used": round(outcome.vcpu_seconds_used / 3600, 2),
        "instances_launched": outcome.instances,
        "align_shards": shard_count(size.read_pairs, plan.align_shard_pairs, plan.max_shards),
        "call_regions": shard_count(size.called_bases, plan.call_shard_bases, plan.max_shards),
        "stages": {
            name: figures
            | {"hours_on_critical_path": round((figures["seen_s"] - figures["start_s"]) / 3600, 3)}
            for name, figures in outcome.stages.items()
        },
    }


# ---------------------------------------------------------------------------------------------
# rates from the measurements


def rates_from(measured: dict[str, Any], human_align_factor: float) -> Rates:
    """The per-unit costs, each from the section of scale-measured.json named beside it."""
    smp = measured["sample"]
    pairs = smp["read_pairs"]
    v = measured["validate"]
    f = measured["fastp"]
    qc_big = f[f"{QC_VARIANT}/main/t2"]
    a = measured["align"]
    fixed = a["minimap2/1000/t2"]["median_cpu_s"]
    shards = a["minimap2/shards/t2"]
    align_per_pair = (shards["sum_cpu_s"] - shards["shards"] * fixed) / shards["read_pairs"]
    m = measured["markdup"]["shards/t2"]
    c = measured["call"]
    ten_mb = c["bcftools/10Mb"]
    call_fixed = c["bcftools/10kb"]["median_cpu_s"]
    bam_pairs = m["read_pairs"]  # the pieces after validate ran on the sample's first pairs
    depth = bam_pairs * 300 / smp["reference_real_bases"]
    call_per_base = (ten_mb["median_cpu_s"] - call_fixed) / (ten_mb["real_bases"] * depth)
    regions = c["4 regions vs whole chr20"]
    r = measured["report"]
    report_cpu = (
        r["stats/t2"]["median_cpu_s"] + r["flagstat/t2"]["median_cpu_s"] + r["coverage/t1"]["median_cpu_s"]
    )
    refprep = measured["refprep"]["points"]["20Mb"]
    return Rates(
        validate_cpu_per_pair=v["median_cpu_s"] / pairs,
        validate_cores=cores(v),
        qc_cpu_per_pair=qc_big["median_cpu_s"] / qc_big["read_pairs"],
        qc_fixed_cpu_s=0.0,
        qc_cores=4.0,
        align_cpu_per_pair=align_per_pair,
        align_cores=8.0,
        align_fixed_s=fixed,
        index_bytes_per_real_base=refprep["mmi_bytes"] / refprep["real_bases"],
        index_load_mb_per_s=refprep["mmi_bytes"] / 1e6 / max(fixed, 1e-3),
        human_align_factor=human_align_factor,
        markdup_cpu_per_pair=m["median_cpu_s"] / bam_pairs,
        markdup_cores=cores(m),
        bam_bytes_per_pair=m["bam_bytes"] / bam_pairs,
        call_cpu_per_aligned_base=call_per_base,
        call_fixed_s=call_fixed,
        call_cores=1.0,
        concat_cpu_per_region=regions["concat"]["cpu_s"] / len(regions["regions"]),
        report_cpu_per_pair=report_cpu / bam_pairs,
        report_cores=cores(r["stats/t2"]),
        trimmed_gz_bytes_per_pair=qc_big["output_gz_bytes"] / qc_big["read_pairs"],
    )


def cores(result: dict[str, Any]) -> float:
    """Cores the piece kept busy at 2 threads: CPU / wall, at most 2 (the machine's)."""
    return round(min(result["median_cpu_s"] / result["median_wall_s"], 2.0), 2)


def _first(section: dict[str, Any], prefix: str, suffix: str, big: bool) -> dict[str, Any]:
    keys = [k for k in section if k.startswith(prefix) and k.endswith(suffix)]
    keys.sort(key=lambda k: int(k.split("/")[1]), reverse=big)
    return section[keys[0]]


ALIGN_SHARD_COUNTS = (1, 2, 4, 8, 16, 25, 40, 64, 100, 160, 250)
CALL_REGION_COUNTS = (1, 2, 4, 8, 16, 31, 64, 100, 160, 250)
HUMAN_ALIGN_FACTORS = (1.0, 2.0, 3.0)
DEFAULT_HUMAN_ALIGN_FACTOR = 2.0
FIXED_POLL_MAX_S = 300  # the recommended backoff cap: a finished stage is seen within 5 minutes


def scenarios(plan: Plan, fleet: Fleet) -> dict[str, tuple[Plan, Fleet, str]]:
    """The plan as it is being built, then each fix added on top of the previous ones."""
    fixed_poll = replace(fleet, poll_max_seconds=FIXED_POLL_MAX_S)
    chunks = replace(plan, validate_qc_chunks=40)
    gather = replace(chunks, markdup_by_region=True, report_in_call=True)
    return {
        "as_built": (
            plan,
            fleet,
            "the issue's plan at the template defaults: one validate, one qc, "
            "align shards, one markdup, call regions, one concat, one report",
        ),
        "poll_cap_300s": (plan, fixed_poll, f"+ the check loop's backoff capped at {FIXED_POLL_MAX_S} s"),
        "scatter_validate_qc": (
            chunks,
            fixed_poll,
            "+ validate and qc per chunk of 10M pairs (40 jobs), e.g. per lane file or on the align shards",
        ),
        "scatter_gather": (
            gather,
            fixed_poll,
            "+ markdup per call region group (from the sorted shards, "
            "mates resolved by fixmate's MC tags) and report's BAM passes inside the call jobs",
        ),
    }


def curve(size: SampleSize, rates: Rates, plan: Plan, fleet: Fleet, what: str) -> list[dict[str, Any]]:
    points = []
    if what == "align":
        for n in ALIGN_SHARD_COUNTS:
            p = replace(
                plan, align_shard_pairs=math.ceil(size.read_pairs / n), max_shards=max(n, plan.max_shards)
            )
            points.append({"shards": n} | brief(project(size, rates, p, fleet)))
    else:
        for n in CALL_REGION_COUNTS:
            p = replace(
                plan, call_shard_bases=math.ceil(size.called_bases / n), max_shards=max(n, plan.max_shards)
            )
            points.append({"regions": n} | brief(project(size, rates, p, fleet)))
    return points


def brief(result: dict[str, Any]) -> dict[str, Any]:
    keys = ("wall_hours", "usd", "idle_share_of_allocated_vcpu_s", "idle_usd", "instances_launched")
    return {k: result[k] for k in keys} | {
        f"{stage}_hours": figures["hours_on_critical_path"] for stage, figures in result["stages"].items()
    }


def scratch_table(measured: dict[str, Any]) -> dict[str, Any]:
    """Peak bytes on disk per GB of the sample's gzipped FASTQ, per step, from the measured pieces."""
    smp = measured["sample"]
    gz = smp["gz_bytes"]
    f = measured["fastp"]
    qc_run = f[f"{QC_VARIANT}/main/t2"]
    shard = measured["align"]["minimap2/250000/t2"]
    md = measured["markdup"]["shards/t2"]
    return {
        "validate": {
            "gb_per_input_gb": 1.0,
            "how": "the lanes it downloads (the check itself streams: pigz | fold | awk writes nothing); "
            "0 if it streamed from S3",
        },
        "qc": {
            "gb_per_input_gb": round(qc_run["peak_scratch_bytes"] / gz, 2),
            "how": "measured: the lanes plus fastp's trimmed copies (-z 1) and reports",
        },
        "align": {
            "gb_per_input_gb": round(shard["peak_scratch_bytes"] / shard["input_gz_bytes"], 2),
            "how": "measured per shard (its reads, samtools sort's temporary files, the shard BAM), per GB "
            "of the shard's gz reads; one shard holds 1/N of the sample",
        },
        "markdup": {
            "gb_per_input_gb": round((md["input_bam_bytes"] + md["peak_scratch_bytes"]) / gz, 2),
            "how": "measured: the shard BAMs downloaded plus markdup's output BAM and temporary files",
        },
        "call": {
            "gb_per_input_gb": round(md["bam_bytes"] / gz, 2),
            "how": "the whole BAM if downloaded (a region's slice only, or 0, if htslib reads it from S3)",
        },
        "report": {"gb_per_input_gb": round(md["bam_bytes"] / gz, 2), "how": "the BAM"},
    }


def refprep_projection(measured: dict[str, Any]) -> dict[str, Any]:
    """minimap2 -d and bwa index: a line through the measured points (CPU s and peak RSS against
    real bases for minimap2, all bases for bwa, which indexes N as random bases), at GRCh38's size."""
    points = measured["refprep"]["points"]
    out: dict[str, Any] = {"points": {}}
    for tool, key, basis, total in (
        ("minimap2 -x sr -d", "minimap2_d", "real_bases", GRCH38_REAL_BASES),
        ("bwa index -a bwtsw", "bwa_index", "bases", GRCH38_BASES),
    ):
        xs = [p[basis] for p in points.values()]
        cpu = [p[key]["median_cpu_s"] for p in points.values()]
        rss = [p[key]["max_rss_mib"] for p in points.values()]
        cpu_slope, cpu_fixed = fit(xs, cpu)
        rss_slope, rss_fixed = fit(xs, rss)
        out[tool] = {
            "basis": basis,
            "cpu_s_per_mb": round(cpu_slope * 1e6, 3),
            "rss_mib_per_mb": round(rss_slope * 1e6, 3),
            "projected_cpu_hours_grch38": round((cpu_fixed + cpu_slope * total) / 3600, 2),
            "projected_peak_rss_gib_grch38": round((rss_fixed + rss_slope * total) / 1024, 1),
            "index_bytes_per_base": round(
                statistics.fmean(
                    p["mmi_bytes" if key == "minimap2_d" else "bwa_bytes"] / p[basis] for p in points.values()
                ),
                3,
            ),
        }
        out[tool]["projected_index_gb_grch38"] = round(out[tool]["index_bytes_per_base"] * total / 1e9, 1)
        out["points"][tool] = [
            {"bases": x, "cpu_s": c, "max_rss_mib": r} for x, c, r in zip(xs, cpu, rss, strict=True)
        ]
    return out


def fit(xs: list[float], ys: list[float]) -> tuple[float, float]:
    """Least-squares line: (slope, intercept)."""
    slope, intercept = statistics.linear_regression(xs, ys)
    return slope, intercept


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--measured", type=Path, default=RESULTS / "scale-measured.json")
    parser.add_argument("--out", type=Path, default=RESULTS / "scale.json")
    args = parser.parse_args()
    measured = json.loads(args.measured.read_text())
    rates = rates_from(measured, DEFAULT_HUMAN_ALIGN_FACTOR)
    plan, fleet = Plan(), Fleet()
    result: dict[str, Any] = {
        "method": __doc__.split("\n\n", 2)[2].strip(),
        "measured_from": str(args.measured.relative_to(RESULTS.parent.parent))
        if args.measured.is_relative_to(RESULTS.parent.parent)
        else str(args.measured),
        "assumptions": {
            "fleet": asdict(fleet),
            "plan_defaults": asdict(plan),
            "human_align_factor": DEFAULT_HUMAN_ALIGN_FACTOR,
            "human_align_factor_why": (
                "per-pair minimap2 CPU on GRCh38 over that on the measured 13.6 Mb: not measurable here (no "
                "bigger real genome); repeats give more candidate hits and the ~7 GB index misses the CPU "
                "caches. The sensitivity section shows 1x-3x."
            ),
            "rates": asdict(rates),
            "samples": {s.name: asdict(s) for s in (WGS30X, EXOME100X)},
        },
    }
    for size in (WGS30X, EXOME100X):
        block: dict[str, Any] = {"description": size.description}
        for name, (p, f, why) in scenarios(plan, fleet).items():
            projected = project(size, rates, p, f)
            block[name] = {"what": why, **projected}
        block["projected_wall_hours"] = block["as_built"]["wall_hours"]
        block["projected_usd"] = block["as_built"]["usd"]
        block["curves"] = {
            "align_shards": curve(size, rates, plan, fleet, "align"),
            "call_regions": curve(size, rates, plan, fleet, "call"),
            "align_shards_scatter_gather": curve(
                size, rates, *scenarios(plan, fleet)["scatter_gather"][:2], "align"
            ),
            "call_regions_scatter_gather": curve(
                size, rates, *scenarios(plan, fleet)["scatter_gather"][:2], "call"
            ),
        }
        block["sensitivity_human_align_factor"] = {
            f"{factor:g}x": brief(
                project(size, rates_from(measured, factor), *scenarios(plan, fleet)["scatter_gather"][:2])
            )
            | {"as_built_wall_hours": project(size, rates_from(measured, factor), plan, fleet)["wall_hours"]}
            for factor in HUMAN_ALIGN_FACTORS
        }
        result[size.name] = block
    result["reference_preparation"] = refprep_projection(measured)
    result["scratch_gb_per_input_gb"] = scratch_table(measured)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    plot(result, args.out.with_suffix(".png"))
    print(f"wrote {args.out} and {args.out.with_suffix('.png')}")
    w = result["wgs30x"]
    print(
        f"wgs30x as built: {w['projected_wall_hours']} h, ${w['projected_usd']}; "
        f"scatter-gather: {w['scatter_gather']['wall_hours']} h, ${w['scatter_gather']['usd']}"
    )
    return 0


def plot(result: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(2, 2, figsize=(11, 7.5))
    wgs = result["wgs30x"]["curves"]
    for column, (key, unit) in enumerate((("align_shards", "shards"), ("call_regions", "regions"))):
        for label, series, style in (
            ("as built", wgs[key], "-o"),
            ("scatter-gather fixes", wgs[f"{key}_scatter_gather"], "-s"),
        ):
            xs = [p[unit] for p in series]
            axes[0][column].plot(xs, [p["wall_hours"] for p in series], style, label=label)
            axes[1][column].plot(xs, [p["usd"] for p in series], style, label=f"{label}: total")
            axes[1][column].plot(xs, [p["idle_usd"] for p in series], ":", label=f"{label}: idle vCPUs")
        for row in (0, 1):
            axes[row][column].set_xscale("log")
            axes[row][column].set_xlabel(f"{unit} ({'align' if column == 0 else 'call'})")
            axes[row][column].grid(True, alpha=0.3)
        axes[0][column].axhline(2.0, color="red", lw=0.8, ls="--", label="target 2 h")
        axes[0][column].axhline(1.0, color="orange", lw=0.8, ls="--", label="aim 1 h")
        axes[1][column].axhline(1.5, color="red", lw=0.8, ls="--", label="target $1.50")
        axes[0][column].set_ylabel("wall hours")
        axes[1][column].set_ylabel("USD (Spot, allocated vCPUs)")
        axes[0][column].legend(fontsize=7)
        axes[1][column].legend(fontsize=7)
    fig.suptitle("30x WGS projection: where more shards stop helping (bench/fleet.py)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


if __name__ == "__main__":
    sys.exit(main())
