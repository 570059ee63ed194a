"""report: QC statistics, the MultiQC report, `summary.json` and `manifest.json`.

- `qc/<sample>.samtools.stats` (samtools stats), `qc/<sample>.flagstat.txt` (samtools flagstat),
  `qc/<sample>.bcftools.stats` (bcftools stats over the PASS calls), `qc/multiqc_report.html`
  (MultiQC over those and the fastp JSON reports).
- `summary.json` (the completion event's `qc`): `read_pairs` (input pairs, from validate),
  `percent_mapped` (samtools stats: reads mapped / raw total sequences), `mean_depth` (samtools
  coverage: mean depth over the whole reference, duplicates and secondary alignments excluded),
  `snps`, `indels`, `titv` (bcftools stats, PASS calls only).
- `manifest.json`: inputs with the ETags and sizes that were read (validate.json), tool versions
  per step (`versions/*.json`), the reference checksum, the sha256 of every output promoted, and
  `shards`: the number of Batch jobs of each step (`{"align": 4, "markdup": 1, ...}`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import BaseModel

import genopipe
from genopipe.aws import s3
from genopipe.layout import MANIFEST_JSON, MULTIQC_REPORT, SUMMARY_JSON, VALIDATE_JSON, VERSIONS_FOLDER
from genopipe.pipeline import STEP_NAMES, scattered
from genopipe.steps import reference
from genopipe.steps.runner import Step
from genopipe.steps.tools import StepError, Tool, multiqc_program


class Summary(BaseModel):
    read_pairs: int
    percent_mapped: float
    mean_depth: float
    snps: int
    indels: int
    titv: float | None


def samtools_stats_numbers(text: str) -> dict[str, float]:
    """The `SN` section of `samtools stats`: `{"reads mapped": 123.0, ...}`."""
    numbers = {}
    for line in text.splitlines():
        fields = line.split("\t")
        if fields[0] == "SN" and len(fields) >= 3:
            numbers[fields[1].rstrip(":")] = float(fields[2])
    return numbers


def bcftools_stats_numbers(text: str) -> tuple[int, int, float | None]:
    """SNP count, indel count and ts/tv from `bcftools stats`."""
    snps = indels = 0
    titv: float | None = None
    for line in text.splitlines():
        fields = line.split("\t")
        if fields[0] == "SN" and len(fields) >= 4:
            if fields[2] == "number of SNPs:":
                snps = int(fields[3])
            elif fields[2] == "number of indels:":
                indels = int(fields[3])
        elif fields[0] == "TSTV" and len(fields) >= 5:
            tv = int(fields[3])
            titv = round(int(fields[2]) / tv, 3) if tv else None
    return snps, indels, titv


def mean_depth(coverage_table: str) -> float:
    """Length-weighted mean of `samtools coverage`'s per-contig `meandepth`."""
    total_length = weighted = 0.0
    for line in coverage_table.splitlines():
        if line.startswith("#") or not line.strip():
            continue
        fields = line.split("\t")
        length = int(fields[2]) - int(fields[1]) + 1
        total_length += length
        weighted += length * float(fields[6])
    return round(weighted / total_length, 2) if total_length else 0.0


def sha256_of(path: Path) -> str:
    return reference.sha256_of(path)


def run(step: Step) -> None:
    sample, threads = step.params.sample, str(step.threads)
    ref = reference.load(step)
    fasta, _, _ = (step.fetch(uri, "ref", uri.name) for uri in ref.fasta_files())  # BGZF, .fai, .gzi
    files = step.files
    staged_outputs = [files.bam, files.bai, files.vcf, files.tbi]
    lanes = len(step.params.reads)
    for lane in range(1, lanes + 1):
        staged_outputs += files.fastp_reports(lane, lanes)
    local: dict[str, Path] = {key: step.fetch(step.staged(key), "out", key) for key in staged_outputs}
    bam, vcf = local[files.bam], local[files.vcf]
    bam_uri, vcf_uri = step.staged(files.bam), step.staged(files.vcf)

    reports = (files.samtools_stats, files.flagstat, files.bcftools_stats, MULTIQC_REPORT)
    stats, flagstat, variant_stats, multiqc_report = (step.path("out", key) for key in reports)
    coverage = step.path("work", f"{sample}.coverage.tsv")
    step.pipe(
        Tool(["samtools", "stats", "-@", threads, "--reference", str(fasta), str(bam)], bam_uri), stdout=stats
    )
    step.pipe(Tool(["samtools", "flagstat", "-@", threads, str(bam)], bam_uri), stdout=flagstat)
    step.pipe(Tool(["samtools", "coverage", str(bam)], bam_uri), stdout=coverage)
    step.pipe(
        Tool(["bcftools", "stats", "-f", "PASS", "-F", str(fasta), str(vcf)], vcf_uri), stdout=variant_stats
    )
    multiqc_dir = multiqc_report.parent
    step.pipe(
        Tool(
            [
                multiqc_program(), "--force", "--no-data-dir", "--no-version-check", "--no-ansi", "--quiet",
                "--no-ai", "--title", f"genopipe: {sample}", "--filename", multiqc_report.name,
                "--outdir", str(multiqc_dir), str(step.scratch / "out" / "qc"),
            ],
            step.params.staging,
        )
    )  # fmt: skip
    local.update(zip(reports, (stats, flagstat, variant_stats, multiqc_report), strict=True))

    numbers = samtools_stats_numbers(stats.read_text())
    total = numbers.get("raw total sequences", 0.0)
    snps, indels, titv = bcftools_stats_numbers(variant_stats.read_text())
    validated = s3.read_json(step.staged(VALIDATE_JSON))
    summary = Summary(
        read_pairs=int(validated["read_pairs"]),
        percent_mapped=round(100.0 * numbers.get("reads mapped", 0.0) / total, 2) if total else 0.0,
        mean_depth=mean_depth(coverage.read_text()),
        snps=snps,
        indels=indels,
        titv=titv,
    )
    summary_path = step.path("out", SUMMARY_JSON)
    summary_path.write_text(summary.model_dump_json(indent=2) + "\n")
    local[SUMMARY_JSON] = summary_path

    for key in reports:
        s3.upload(local[key], step.staged(key))
    s3.upload(summary_path, step.staged(SUMMARY_JSON), content_type="application/json")
    s3.write_json(step.staged(MANIFEST_JSON), manifest(step, ref, local, validated.get("inputs")))


def shards(step: Step) -> dict[str, int]:
    """Batch jobs per step: the children of a scattered step's array job (its plan's entries; one
    shard is one plain job), 1 for every other step."""
    return {name: len(step.shard_plan(name)) if scattered(name) else 1 for name in STEP_NAMES}


def manifest(
    step: Step, ref: reference.ReferenceIndex, outputs: dict[str, Path], read: list[Any] | None = None
) -> dict[str, Any]:
    """`read`: the FASTQ objects the run read (validate.json: URI, admitted ETag, size), not what a
    HEAD finds now; without it (a staging prefix from before validate recorded them), a HEAD."""
    inputs = list(read) if read is not None else []
    if read is None:
        for lane in step.params.reads:
            for uri in (lane.r1, lane.r2):
                info = s3.head(uri)
                inputs.append({"uri": str(uri), "etag": info.etag, "size": info.size})
    fasta = s3.head(ref.fasta)
    inputs.append({"uri": str(ref.fasta), "etag": fasta.etag, "size": fasta.size})
    versions: dict[str, dict[str, str]] = {}
    for item in s3.list_prefix(step.staged(VERSIONS_FOLDER)):
        versions[item.uri.name.removesuffix(".json")] = s3.read_json(item.uri)
    versions["report"] = step.tool_versions()
    missing = [name for name in STEP_NAMES if name not in versions]
    if missing:
        raise StepError(step.staged(VERSIONS_FOLDER), f"no tool versions from {', '.join(missing)}")
    return {
        "sample": step.params.sample,
        "genopipe_version": genopipe.__version__,
        "shards": shards(step),
        "inputs": inputs,
        "aligner": step.params.aligner,
        "ploidy": step.params.ploidy,
        "reference": {"uri": str(ref.fasta), "sha256": ref.sha256},
        "tool_versions": versions,
        "outputs": {
            key: {"sha256": sha256_of(path), "size": path.stat().st_size}
            for key, path in sorted(outputs.items())
        },
    }
