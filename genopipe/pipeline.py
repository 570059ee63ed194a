"""The one table of steps and the plan that orders them.

Everything that names a step reads it from here: the job runner (`genopipe job <step>`), the
boundary models' step field, the state machine builder (`statemachine/build.py`, `make asl`), the
image scripts (through `genopipe steps`), the benchmarks and the tests. template.yaml cannot import
Python, so `tests/unit/test_step_table.py` holds each job definition and ECR repository in it to
its row here (vCPUs, memory, GENOPIPE_THREADS = vCPUs, timeout, retry policy, image).

Adding a step: a row in STEPS, a place in PLAN, `genopipe/steps/<name>.py` with `run(step)`,
`containers/<name>/Dockerfile`, and the template's `<Title>JobDefinition` + `<Title>Repository`
(the drift test names what is missing); then `make asl`.
"""

from __future__ import annotations

import argparse
import json
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field


class _Row(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class RetryPolicy(_Row):
    """Batch RetryStrategy: retry only when the host went away (a Spot reclaim), never on the job's
    own failure (a bad input would fail again, and cost again)."""

    attempts: int = Field(default=3, ge=1, le=10)
    on_status_reason: str = "Host EC2*"


class StepSpec(_Row):
    """One Batch job step: what its job definition reserves and how long it may run."""

    name: str = Field(pattern=r"^[a-z]+$")
    purpose: str
    vcpus: int = Field(ge=1)
    memory_mib: int = Field(ge=512)
    timeout_seconds: int = Field(ge=60)  # the job definition's AttemptDurationSeconds
    # scratch disk at the step's peak per GB of gzipped FASTQ input: a planning figure from what
    # the step keeps on disk at once (0 = streams), refined by the genome-scale measurements
    scratch_gb_per_input_gb: float = Field(ge=0)
    retry: RetryPolicy = RetryPolicy()
    # a scattered step runs as one Batch array job, one child per entry of its shard plan
    # (`shards/<step>.json` in staging, written by an earlier step): "reads" = shards of read
    # pairs (qc plans them), "regions" = groups of genome regions (reference plans them).
    # None: one plain job. One shard is always a plain job (AWS array jobs have 2..10,000 children).
    scatter: Literal["reads", "regions"] | None = None

    @property
    def threads(self) -> int:
        """GENOPIPE_THREADS in the job definition: one thread per reserved vCPU."""
        return self.vcpus

    @property
    def title(self) -> str:
        """The name in CamelCase, as in state names (SubmitAlign) and template resources."""
        return self.name.capitalize()

    @property
    def job_definition_resource(self) -> str:
        return f"{self.title}JobDefinition"

    @property
    def repository_resource(self) -> str:
        return f"{self.title}Repository"

    @property
    def repository_name(self) -> str:
        """The local image name (docs/internals.md, "Images")."""
        return f"genopipe/{self.name}"

    def stack_repository(self, stack_name: str) -> str:
        """The step's ECR repository in the stack `stack_name` (template.yaml: `${AWS::StackName}/<step>`);
        for the local stack's name, `genopipe`, it is the local image name."""
        return f"{stack_name}/{self.name}"


class Branch(_Row):
    """Steps that run one after another inside a Parallel state; `name` is its key in the result."""

    name: str
    steps: tuple[str, ...] = Field(min_length=1)
    purpose: str


class Parallel(_Row):
    """Branches that run side by side; the next stage starts when every branch has succeeded."""

    name: str
    branches: tuple[Branch, ...] = Field(min_length=2)
    purpose: str


Stage = str | Parallel  # a step name, or branches of steps side by side


STEPS: tuple[StepSpec, ...] = (
    StepSpec(
        name="validate",
        purpose="FASTQ and pairing checks before any heavy compute",
        vcpus=1,
        memory_mib=2048,
        # 10 CPU-us per read pair at 1.17 cores busy (bench/results/scale-measured.json): a 30x
        # genome's 400M pairs take ~1 h plus the download, so 1 h was too short; 4 h leaves room
        timeout_seconds=14400,
        scratch_gb_per_input_gb=1.0,  # measured: its largest lane (each is deleted once checked)
    ),
    StepSpec(
        name="reference",
        purpose="reference indexes (BGZF + .fai/.gzi, minimap2 .mmi, bwa), cached by checksum",
        vcpus=2,
        # `minimap2 -x sr -d` peaks at ~28.5 GiB projected to GRCh38 (measured at 5, 10, 20 Mb, linear
        # in bases: BENCHMARKS.md "Genome scale"); 16 GiB would be killed on a human reference
        memory_mib=40960,
        timeout_seconds=14400,
        scratch_gb_per_input_gb=0.0,  # sized by the reference (~4x a 3.1 Gb FASTA), not the reads
    ),
    StepSpec(
        name="qc",
        purpose="read QC and trimming (fastp)",
        vcpus=4,
        memory_mib=8192,
        timeout_seconds=14400,
        scratch_gb_per_input_gb=2.0,  # the input lanes and their trimmed copies
    ),
    StepSpec(
        name="align",
        purpose="one shard of read pairs: minimap2 or bwa mem, fixmate, sort: a shard BAM",
        vcpus=8,
        memory_mib=30720,
        timeout_seconds=43200,
        scratch_gb_per_input_gb=2.5,  # trimmed reads, sort's temporary files, the BAM
        scatter="reads",
    ),
    StepSpec(
        name="markdup",
        purpose="gather of align: merge the shard BAMs, mark duplicates across all of them: BAM + BAI",
        vcpus=4,
        memory_mib=8192,
        timeout_seconds=43200,
        scratch_gb_per_input_gb=2.0,  # the shard BAMs and the merged BAM
    ),
    StepSpec(
        name="call",
        purpose="one region group: bcftools or freebayes per region, normalised, soft-filtered: VCF part",
        # one caller per region, 2 at a time: >= 80% of the vCPU-seconds used on a 100 Mb group
        # of a 30x genome (bench/results/call_utilisation.json; 4 vCPUs: 76% at 100 MB/s)
        vcpus=2,
        memory_mib=4096,
        timeout_seconds=43200,
        scratch_gb_per_input_gb=1.0,  # the BAM
        scatter="regions",  # the reference step writes `shards/call.json` (genopipe.shards)
    ),
    StepSpec(
        name="concat",
        purpose="gather of call: bcftools concat of the region parts: VCF + TBI",
        vcpus=1,
        memory_mib=2048,
        timeout_seconds=7200,
        scratch_gb_per_input_gb=0.0,  # the VCF parts only
    ),
    StepSpec(
        name="report",
        purpose="samtools and bcftools stats, MultiQC, summary and manifest",
        vcpus=2,
        memory_mib=4096,
        timeout_seconds=7200,
        scratch_gb_per_input_gb=1.0,  # the BAM
    ),
)

PLAN: tuple[Stage, ...] = (
    Parallel(
        name="Prepare",
        purpose="The reads (validate, then qc) and the reference (prepare-reference) are independent",
        branches=(
            Branch(name="reads", steps=("validate", "qc"), purpose="validate and qc succeeded"),
            Branch(
                name="indexes", steps=("reference",), purpose="the reference and its indexes are in the cache"
            ),
        ),
    ),
    "align",
    "markdup",
    "call",
    "concat",
    "report",
)

STEP_NAMES: tuple[str, ...] = tuple(spec.name for spec in STEPS)


def step(name: str) -> StepSpec:
    """The table row of a step; KeyError names the known steps."""
    for spec in STEPS:
        if spec.name == name:
            return spec
    raise KeyError(f"no step {name!r} (steps: {', '.join(STEP_NAMES)})")


def scattered(name: str) -> bool:
    """Whether the step runs as one job per shard of its plan (`shards/<step>.json`)."""
    return step(name).scatter is not None


def is_step(name: object) -> bool:
    return isinstance(name, str) and name in STEP_NAMES


def steps_in_order(plan: tuple[Stage, ...] = PLAN) -> tuple[str, ...]:
    """Every step of the plan once, in the order it first can run (branches in their order)."""
    ordered: list[str] = []
    for stage in plan:
        if isinstance(stage, Parallel):
            for branch in stage.branches:
                ordered.extend(branch.steps)
        else:
            ordered.append(stage)
    return tuple(ordered)


def check_plan(steps: tuple[StepSpec, ...] = STEPS, plan: tuple[Stage, ...] = PLAN) -> None:
    """Every row is planned exactly once and the plan names no unknown step."""
    names = [spec.name for spec in steps]
    planned = list(steps_in_order(plan))
    if len(set(names)) != len(names):
        raise ValueError(f"step names repeat in the table: {names}")
    if sorted(planned) != sorted(names):
        raise ValueError(f"the plan {planned} and the table {names} do not hold the same steps once each")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", help="the whole table as JSON, not one name a line")


def run(args: argparse.Namespace) -> int:
    """`genopipe steps`: the step names in table order (the image scripts loop over these)."""
    if args.json:
        print(json.dumps([spec.model_dump() | {"threads": spec.threads} for spec in STEPS], indent=2))
    else:
        print("\n".join(STEP_NAMES))
    return 0


check_plan()
