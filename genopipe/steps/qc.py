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


def run(step: Step) -> None:
    lanes = step.params.reads
    for number, lane in enumerate(lanes, start=1):
        r1, r2 = step.fetch_lane(number, lane)
        out1_key, out2_key = step.files.trimmed(number)
        out1, out2 = step.path(out1_key), step.path(out2_key)
        stem = step.files.fastp_stem(number, len(lanes))
        json_key, html_key = step.files.fastp_reports(number, len(lanes))
        json_report, html_report = step.path(json_key), step.path(html_key)
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
        s3.upload(json_report, step.staged(json_key), content_type="application/json")
        s3.upload(html_report, step.staged(html_key), content_type="text/html")
