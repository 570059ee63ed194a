"""align: one shard of trimmed read pairs -> a coordinate-sorted shard BAM with mate tags.

The step is scattered over qc's shard plan (`shards/align.json`): each Batch array child takes
the entry at its AWS_BATCH_JOB_ARRAY_INDEX (a one-shard plan runs as a plain job, index 0). Per
part of the shard (a lane, or a part of one), one stream with no SAM or uncompressed FASTQ on
disk: `minimap2 -ax sr` (or `bwa mem`) with read group
`ID:<sample>.L<n> SM:<sample> LB:<sample> PL:ILLUMINA` | `samtools fixmate -m -u` |
`samtools sort` -> `align/<sample>.<shard>.bam` (parts of several lanes are sorted apart, then
merged). Duplicates are marked by `markdup`, across all shards: they are one library.

A child whose shard BAM is already staged exits at once: after a Spot reclaim the whole array is
resubmitted On-Demand, and only the shards that were lost are aligned again.
"""

from __future__ import annotations

import sys
from pathlib import Path

from genopipe.aws import s3
from genopipe.s3uri import S3Uri
from genopipe.steps import reference
from genopipe.steps.runner import Step
from genopipe.steps.tools import StepError, Tool

SORT_MEMORY_PER_THREAD = "512M"
SHARD_BAM_COMPRESSION = "1"  # read once, by markdup


def read_group(sample: str, lane: int) -> str:
    # the aligners take the header line with literal `\t` separators
    return f"@RG\\tID:{sample}.L{lane}\\tSM:{sample}\\tLB:{sample}\\tPL:ILLUMINA"


def aligner_command(step: Step, index: Path, lane: int, r1: Path, r2: Path) -> list[str]:
    threads, rg = str(step.threads), read_group(step.params.sample, lane)
    if step.params.aligner == "bwa":
        return ["bwa", "mem", "-t", threads, "-R", rg, str(index), str(r1), str(r2)]
    return ["minimap2", "-ax", "sr", "-t", threads, "-R", rg, str(index), str(r1), str(r2)]


def run(step: Step) -> None:
    shard = step.my_shard()
    target = step.staged(step.files.shard_bam("align", step.shard_index))
    if s3.exists(target):
        print(
            f"genopipe align: {target} is already staged (an earlier attempt of this shard)", file=sys.stderr
        )
        return
    parts = shard.get("parts")
    if not isinstance(parts, list) or not parts:
        raise StepError(step.staged("shards/align.json"), f"shard {step.shard_index} lists no parts")

    ref = reference.load(step)
    threads = str(step.threads)
    if step.params.aligner == "bwa":
        if ref.bwa is None:
            raise StepError(ref.fasta, "no bwa index: the `reference` step ran without --aligner bwa")
        for uri in ref.bwa_files():
            step.fetch(uri, "ref", uri.name)
        index = step.path("ref", ref.bwa.name)
    else:
        index = step.fetch(ref.mmi, "ref", ref.mmi.name)

    bam = step.path("out", target.name)
    sort_tmp = str(step.path("tmp", "sort"))
    part_bams = []
    for number, part in enumerate(parts):
        r1_uri, r2_uri = S3Uri.parse(str(part["r1"])), S3Uri.parse(str(part["r2"]))
        r1, r2 = (
            step.fetch(r1_uri, "in", f"P{number}", "R1.fastq.gz"),
            step.fetch(r2_uri, "in", f"P{number}", "R2.fastq.gz"),
        )
        sorted_bam = bam if len(parts) == 1 else step.path("parts", f"P{number}.bam")
        step.pipe(
            Tool(aligner_command(step, index, int(part["lane"]), r1, r2), r1_uri),
            Tool(["samtools", "fixmate", "-m", "-u", "-@", threads, "-", "-"], r1_uri),
            Tool(
                [
                    "samtools", "sort", "-l", SHARD_BAM_COMPRESSION, "-@", threads,
                    "-m", SORT_MEMORY_PER_THREAD, "-T", sort_tmp, "-o", str(sorted_bam), "-",
                ],
                r1_uri,
            ),
        )  # fmt: skip
        for path in (r1, r2):
            path.unlink()  # scratch space: keep only what later parts need
        part_bams.append(str(sorted_bam))
    if len(parts) > 1:
        # -c -p: one @RG / @PG line per ID (the parts' headers repeat them)
        step.pipe(
            Tool(
                [
                    "samtools",
                    "merge",
                    "-c",
                    "-p",
                    "-l",
                    SHARD_BAM_COMPRESSION,
                    "-@",
                    threads,
                    "-o",
                    str(bam),
                    *part_bams,
                ],
                target,
            )
        )
    s3.upload(bam, target)
