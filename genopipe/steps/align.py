"""align: trimmed reads -> duplicate-marked, coordinate-sorted BAM + BAI.

Per lane, one stream with no SAM or uncompressed FASTQ on disk:
`minimap2 -ax sr` (or `bwa mem`) with read group `ID:<sample>.L<n> SM:<sample> LB:<sample> PL:ILLUMINA`
| `samtools fixmate -m -u` | `samtools sort -u` | `samtools markdup` -> `<sample>.bam` (+ index).
With several lanes each lane is sorted into its own BAM first, then
`samtools merge -u` | `samtools markdup` makes the one BAM (duplicates are marked across lanes:
they are one library).
"""

from __future__ import annotations

from pathlib import Path

from genopipe.aws import s3
from genopipe.steps import reference
from genopipe.steps.runner import Step
from genopipe.steps.tools import StepError, Tool

SORT_MEMORY_PER_THREAD = "512M"


def read_group(sample: str, lane: int) -> str:
    # the aligners take the header line with literal `\t` separators
    return f"@RG\\tID:{sample}.L{lane}\\tSM:{sample}\\tLB:{sample}\\tPL:ILLUMINA"


def aligner_command(step: Step, index: Path, lane: int, r1: Path, r2: Path) -> list[str]:
    threads, rg = str(step.threads), read_group(step.params.sample, lane)
    if step.params.aligner == "bwa":
        return ["bwa", "mem", "-t", threads, "-R", rg, str(index), str(r1), str(r2)]
    return ["minimap2", "-ax", "sr", "-t", threads, "-R", rg, str(index), str(r1), str(r2)]


def run(step: Step) -> None:
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
    subject = ref.fasta

    bam = step.path("out", step.files.bam)
    sort_tmp = str(step.path("tmp", "sort"))
    markdup = Tool(
        [
            "samtools",
            "markdup",
            "-@",
            threads,
            "--write-index",
            "-T",
            str(step.path("tmp", "markdup")),
            "-",
            f"{bam}##idx##{bam}.bai",
        ],
        subject,
    )
    lane_bams = []
    for number, lane in enumerate(step.params.reads, start=1):
        r1_key, r2_key = step.files.trimmed(number)
        r1, r2 = step.fetch(step.staged(r1_key)), step.fetch(step.staged(r2_key))
        align = Tool(aligner_command(step, index, number, r1, r2), lane.r1)
        fixmate = Tool(["samtools", "fixmate", "-m", "-u", "-@", threads, "-", "-"], lane.r1)
        if len(step.params.reads) == 1:
            sort = Tool(
                ["samtools", "sort", "-u", "-@", threads, "-m", SORT_MEMORY_PER_THREAD, "-T", sort_tmp, "-"],
                lane.r1,
            )
            step.pipe(align, fixmate, sort, markdup)
        else:
            lane_bam = step.path("lanes", f"L{number}.bam")
            sort = Tool(
                [
                    "samtools",
                    "sort",
                    "-l",
                    "1",
                    "-@",
                    threads,
                    "-m",
                    SORT_MEMORY_PER_THREAD,
                    "-T",
                    sort_tmp,
                    "-o",
                    str(lane_bam),
                    "-",
                ],
                lane.r1,
            )
            step.pipe(align, fixmate, sort)
            lane_bams.append(str(lane_bam))
        for path in (r1, r2):
            path.unlink()  # scratch space: keep only what later lanes need
    if lane_bams:
        step.pipe(Tool(["samtools", "merge", "-u", "-@", threads, "-o", "-", *lane_bams], subject), markdup)
    s3.upload(bam, step.staged(step.files.bam))
    s3.upload(Path(f"{bam}.bai"), step.staged(step.files.bai))
