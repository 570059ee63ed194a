"""markdup: the gather of `align`: every shard BAM -> the sample's duplicate-marked BAM + BAI.

`samtools merge -u` of the coordinate-sorted shard BAMs (as many as `shards/align.json` has
entries; `-c -p` keep one @RG and @PG line per ID) | `samtools markdup --write-index` ->
`<sample>.bam` + `.bam.bai`. Duplicates are marked across all shards at once: they are per
library, and a library's reads are spread over the shards. With one shard the merge passes it
through.
"""

from __future__ import annotations

from pathlib import Path

from genopipe.aws import s3
from genopipe.steps.runner import Step
from genopipe.steps.tools import Tool


def run(step: Step) -> None:
    threads = str(step.threads)
    count = len(step.shard_plan("align"))
    shard_bams = []
    for shard in range(count):
        key = step.files.shard_bam("align", shard)
        shard_bams.append(str(step.fetch(step.staged(key), "in", Path(key).name)))
    bam = step.path("out", step.files.bam)
    target = step.staged(step.files.bam)
    step.pipe(
        Tool(["samtools", "merge", "-u", "-c", "-p", "-@", threads, "-o", "-", *shard_bams], target),
        Tool(
            [
                "samtools", "markdup", "-@", threads, "--write-index",
                "-T", str(step.path("tmp", "markdup")), "-", f"{bam}##idx##{bam}.bai",
            ],
            target,
        ),
    )  # fmt: skip
    for path in shard_bams:
        Path(path).unlink()
    s3.upload(bam, target)
    s3.upload(Path(f"{bam}.bai"), step.staged(step.files.bai))
