"""qc: read QC and trimming with fastp, one run per lane.

fastp's defaults (quality filtering, PE adapter trimming by overlap) plus `--detect_adapter_for_pe`
(adapter sequence detection). Trimmed reads go to `trimmed/<sample>_L<n>_R{1,2}.fastq.gz`,
gzipped at level 1 (`-z 1`): they are read once by `align`, so a smaller file is not worth the CPU.
Reports: `qc/<sample>.fastp.{json,html}`, or `qc/<sample>_L<n>.fastp.{json,html}` per lane when
there are several lanes.
"""

from __future__ import annotations

from genopipe.aws import s3
from genopipe.steps.runner import Step
from genopipe.steps.tools import Tool

TRIMMED_COMPRESSION = "1"


def report_stem(sample: str, lane: int, lanes: int) -> str:
    return sample if lanes == 1 else f"{sample}_L{lane}"


def trimmed_keys(sample: str, lane: int) -> tuple[str, str]:
    return f"trimmed/{sample}_L{lane}_R1.fastq.gz", f"trimmed/{sample}_L{lane}_R2.fastq.gz"


def run(step: Step) -> None:
    sample = step.params.sample
    lanes = step.params.reads
    for number, lane in enumerate(lanes, start=1):
        r1 = step.fetch(lane.r1, "in", f"L{number}", "R1.fastq.gz")
        r2 = step.fetch(lane.r2, "in", f"L{number}", "R2.fastq.gz")
        out1_key, out2_key = trimmed_keys(sample, number)
        out1, out2 = step.path(out1_key), step.path(out2_key)
        stem = report_stem(sample, number, len(lanes))
        json_report, html_report = (
            step.path("qc", f"{stem}.fastp.json"),
            step.path("qc", f"{stem}.fastp.html"),
        )
        step.pipe(
            Tool(
                [
                    "fastp",
                    "--in1", str(r1), "--in2", str(r2),
                    "--out1", str(out1), "--out2", str(out2),
                    "--compression", TRIMMED_COMPRESSION,
                    "--detect_adapter_for_pe",
                    "--thread", str(step.threads),
                    "--json", str(json_report), "--html", str(html_report),
                    "--report_title", f"{stem} fastp report",
                ],
                lane.r1,
            )
        )  # fmt: skip
        s3.upload(out1, step.staged(out1_key))
        s3.upload(out2, step.staged(out2_key))
        s3.upload(json_report, step.staged("qc", json_report.name), content_type="application/json")
        s3.upload(html_report, step.staged("qc", html_report.name), content_type="text/html")
