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
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from genopipe.jobs.backoff import PollingPolicy, detection_delay_seconds

RESULTS = Path(__file__).resolve().parent / "results"


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
    qc_big = (
        f[f"detect_adapter/{pairs}/t2"]
        if f"detect_adapter/{pairs}/t2" in f
        else _first(f, "detect_adapter/", "/t2", big=True)
    )
    a = measured["align"]
    fixed = a["minimap2/1000/t2"]["median_cpu_s"]
    whole = a["minimap2/all/t2"]
    align_per_pair = (whole["median_cpu_s"] - fixed) / whole["read_pairs"]
    m = measured["markdup"]["8/t2"]
    c = measured["call"]
    ten_mb = c["bcftools/10Mb"]
    call_fixed = c["bcftools/10kb"]["median_cpu_s"]
    depth = smp["read_pairs"] * 300 / smp["reference_real_bases"]
    call_per_base = (ten_mb["median_cpu_s"] - call_fixed) / (ten_mb["real_bases"] * depth)
    regions = c["8 regions vs whole"]
    r = measured["report"]
    report_cpu = (
        r["stats/t2"]["median_cpu_s"] + r["flagstat/t2"]["median_cpu_s"] + r["coverage/t1"]["median_cpu_s"]
    )
    refprep = measured["refprep"]["points"]["20Mb"]
    return Rates(
        validate_cpu_per_pair=v["median_cpu_s"] / pairs,
        validate_cores=cores(v),
        qc_cpu_per_pair=qc_big["median_cpu_s"] / pairs,
        qc_fixed_cpu_s=0.0,
        qc_cores=4.0,
        align_cpu_per_pair=align_per_pair,
        align_cores=8.0,
        align_fixed_s=fixed,
        index_bytes_per_real_base=refprep["mmi_bytes"] / refprep["real_bases"],
        index_load_mb_per_s=refprep["mmi_bytes"] / 1e6 / max(fixed, 1e-3),
        human_align_factor=human_align_factor,
        markdup_cpu_per_pair=m["median_cpu_s"] / pairs,
        markdup_cores=cores(m),
        bam_bytes_per_pair=m["bam_bytes"] / pairs,
        call_cpu_per_aligned_base=call_per_base,
        call_fixed_s=call_fixed,
        call_cores=1.0,
        concat_cpu_per_region=regions["concat"]["cpu_s"] / len(regions["regions"]),
        report_cpu_per_pair=report_cpu / pairs,
        report_cores=cores(r["stats/t2"]),
        trimmed_gz_bytes_per_pair=qc_big["output_gz_bytes"] / pairs,
    )


def cores(result: dict[str, Any]) -> float:
    """Cores the piece kept busy at 2 threads: CPU / wall, at most 2 (the machine's)."""
    return round(min(result["median_cpu_s"] / result["median_wall_s"], 2.0), 2)


def _first(section: dict[str, Any], prefix: str, suffix: str, big: bool) -> dict[str, Any]:
    keys = [k for k in section if k.startswith(prefix) and k.endswith(suffix)]
    keys.sort(key=lambda k: int(k.split("/")[1]), reverse=big)
    return section[keys[0]]


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--measured", type=Path, default=RESULTS / "scale-measured.json")
    parser.add_argument("--out", type=Path, default=RESULTS / "scale.json")
    args = parser.parse_args()
    measured = json.loads(args.measured.read_text())
    print(json.dumps(project(WGS30X, rates_from(measured, 2.0), Plan(), Fleet()), indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
