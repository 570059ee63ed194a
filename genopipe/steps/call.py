"""call: BAM -> normalised, soft-filtered, bgzipped and tabix-indexed VCF.

One stream: `bcftools mpileup -a AD,DP` | `bcftools call -m -v --ploidy <1|2>`
| `bcftools norm -f <ref> -m -any` (left-aligned, multi-allelic records split)
| `bcftools filter` (one per soft filter below) | `bgzip`, then `tabix -p vcf`.

Soft filters (a failing record keeps its line, with the filter's name in FILTER; the rest PASS):

- `LowQual`: QUAL < 10, i.e. less than 90% confidence that there is a variant (at 30x a true
  het with only 6 of 28 reads can score ~10-20, so 20 would cost ~3% of SNP recall).
- `LowDepth`: FORMAT/DP < 5: too few reads to tell a variant from sequencing errors.
- `LowAltFrac`: alt reads / (ref + alt reads), from FORMAT/AD, < 0.15 with ploidy 2 or < 0.5
  with ploidy 1. A het sits near 0.5 and a haploid call is the majority allele; lower fractions
  are errors, mismapped reads or (in a haploid sample) a minority population.

mpileup keeps its defaults (BAQ on, base quality >= 13, duplicates and secondary alignments
skipped) with mapping quality >= 20 and a depth cap of 10000 (viral samples run deep).
"""

from __future__ import annotations

from pathlib import Path

from genopipe.aws import s3
from genopipe.steps import reference
from genopipe.steps.runner import Step
from genopipe.steps.tools import Tool

MIN_QUAL = 10
MIN_DEPTH = 5
MIN_ALT_FRACTION = {1: 0.5, 2: 0.15}
MIN_MAPPING_QUALITY = 20
MAX_DEPTH = 10000


def soft_filters(ploidy: int) -> list[tuple[str, str]]:
    """(FILTER name, bcftools exclude expression), applied in this order."""
    alt_fraction = "FMT/AD[0:1] / (FMT/AD[0:0] + FMT/AD[0:1])"
    return [
        ("LowQual", f"QUAL < {MIN_QUAL}"),
        ("LowDepth", f"FMT/DP < {MIN_DEPTH}"),
        ("LowAltFrac", f"{alt_fraction} < {MIN_ALT_FRACTION[ploidy]}"),
    ]


def run(step: Step) -> None:
    ref = reference.load(step)
    files = step.files
    fasta, _, _ = (step.fetch(uri, "ref", uri.name) for uri in ref.fasta_files())  # BGZF, .fai, .gzi
    bam_uri = step.staged(files.bam)
    bam = step.fetch(bam_uri, "in", files.bam)
    step.fetch(step.staged(files.bai), "in", files.bai)
    vcf = step.path("out", files.vcf)

    mpileup = Tool(
        [
            "bcftools", "mpileup", "-f", str(fasta), "-a", "FORMAT/AD,FORMAT/DP",
            "-q", str(MIN_MAPPING_QUALITY), "-d", str(MAX_DEPTH), "-Ou", str(bam),
        ],
        bam_uri,
    )  # fmt: skip
    call = Tool(["bcftools", "call", "-m", "-v", "--ploidy", str(step.params.ploidy), "-Ou"], bam_uri)
    norm = Tool(["bcftools", "norm", "-f", str(fasta), "-m", "-any", "-Ou"], bam_uri)
    filters = [
        Tool(["bcftools", "filter", "-m", "+", "-s", name, "-e", expression, "-Ou"], bam_uri)
        for name, expression in soft_filters(step.params.ploidy)
    ]
    # the last filter writes text for bgzip (the tool the index format is defined by)
    filters[-1] = Tool([*filters[-1].argv[:-1], "-Ov"], bam_uri)
    bgzip = Tool(["bgzip", "-@", str(step.threads), "-c"], bam_uri)
    step.pipe(mpileup, call, norm, *filters, bgzip, stdout=vcf)
    step.pipe(Tool(["tabix", "-p", "vcf", str(vcf)], bam_uri))
    s3.upload(vcf, step.staged(files.vcf))
    s3.upload(Path(f"{vcf}.tbi"), step.staged(files.tbi))
