"""The keys of a sample's files: where the job steps stage them, and where they are published.

Keys are relative: to the staging prefix (`s3://<output bucket>/.staging/<execution>/`) for
staged files, to `<folder>/<sample>/` for published ones (docs/internals.md, "Staging layout";
DESIGN.md, "Outputs"). Every step, the notify Lambda and the tests name files through this one
place.
"""

from __future__ import annotations

from dataclasses import dataclass

VALIDATE_JSON = "validate.json"  # record counts per lane (validate)
REFERENCE_JSON = "reference.json"  # where the reference and its indexes are (reference)
SUMMARY_JSON = "summary.json"  # the completion event's qc figures (report)
MANIFEST_JSON = "manifest.json"  # inputs, tool versions, checksums (report)
MULTIQC_REPORT = "qc/multiqc_report.html"
QC_FOLDER = "qc/"  # every staged qc/ file is published as it is
VERSIONS_FOLDER = "versions/"


def versions_key(step: str) -> str:
    """`versions/<step>.json`: the exact versions of the tools one step ran."""
    return f"{VERSIONS_FOLDER}{step}.json"


@dataclass(frozen=True)
class SampleFiles:
    """The names of one sample's files (staged and published keys are the same unless noted)."""

    sample: str

    @property
    def bam(self) -> str:
        return f"{self.sample}.bam"

    @property
    def bai(self) -> str:
        return f"{self.sample}.bam.bai"

    @property
    def vcf(self) -> str:
        return f"{self.sample}.vcf.gz"

    @property
    def tbi(self) -> str:
        return f"{self.sample}.vcf.gz.tbi"

    def shard_plan(self, step: str) -> str:
        return f"shards/{step}.json"

    def call_part(self, shard: int) -> str:
        """One call job's records (a BGZF VCF), gathered by `concat` into the sample's VCF (staged only)."""
        return f"call/part-{shard}.vcf.gz"

    def trimmed(self, lane: int) -> tuple[str, str]:
        """qc's trimmed reads of one lane (staged only)."""
        return f"trimmed/{self.sample}_L{lane}_R1.fastq.gz", f"trimmed/{self.sample}_L{lane}_R2.fastq.gz"

    def fastp_stem(self, lane: int, lanes: int) -> str:
        """`<sample>` for a single-lane sample, `<sample>_L<n>` per lane otherwise."""
        return self.sample if lanes == 1 else f"{self.sample}_L{lane}"

    def fastp_reports(self, lane: int, lanes: int) -> tuple[str, str]:
        """The fastp JSON and HTML reports of one lane."""
        stem = self.fastp_stem(lane, lanes)
        return f"{QC_FOLDER}{stem}.fastp.json", f"{QC_FOLDER}{stem}.fastp.html"

    @property
    def samtools_stats(self) -> str:
        return f"{QC_FOLDER}{self.sample}.samtools.stats"

    @property
    def flagstat(self) -> str:
        return f"{QC_FOLDER}{self.sample}.flagstat.txt"

    @property
    def bcftools_stats(self) -> str:
        return f"{QC_FOLDER}{self.sample}.bcftools.stats"

    def required_outputs(self) -> dict[str, str]:
        """The completion event's `outputs` field -> published key, for every completed sample."""
        return {
            "bam": self.bam,
            "bai": self.bai,
            "vcf": self.vcf,
            "tbi": self.tbi,
            "report": MULTIQC_REPORT,
            "manifest": MANIFEST_JSON,
            "summary": published_key(self, SUMMARY_JSON) or SUMMARY_JSON,
        }

    def publishes(self, published: str) -> bool:
        """Whether a key under `<folder><sample>/` is one a run of this sample publishes (so a new
        run's set replaces it), rather than another sample's, in a folder nested below."""
        if published in {self.bam, self.bai, self.vcf, self.tbi, MANIFEST_JSON, MULTIQC_REPORT}:
            return True
        name = published.removeprefix(QC_FOLDER)
        return (
            published.startswith(QC_FOLDER)
            and "/" not in name
            and (name == SUMMARY_JSON or name.startswith((f"{self.sample}.", f"{self.sample}_L")))
        )


def published_key(files: SampleFiles, staged: str) -> str | None:
    """Where a staged key is published under `<folder><sample>/`, or None if it stays behind."""
    if staged.startswith(QC_FOLDER):
        return staged
    if staged == SUMMARY_JSON:
        return QC_FOLDER + SUMMARY_JSON
    if staged in {MANIFEST_JSON, files.bam, files.bai, files.vcf, files.tbi}:
        return staged
    return None


def staged_key(published: str) -> str:
    """The staged key a published key comes from (the inverse of `published_key`)."""
    return SUMMARY_JSON if published == QC_FOLDER + SUMMARY_JSON else published
