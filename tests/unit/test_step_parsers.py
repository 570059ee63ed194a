"""Pure parts of the steps: stats parsers, filter expressions, names."""

from __future__ import annotations

from genopipe.layout import SampleFiles, published_key, staged_key
from genopipe.s3uri import S3Uri
from genopipe.steps.align import read_group
from genopipe.steps.call import filter_tools, soft_filters
from genopipe.steps.reference import cache_root, etag_record, plain_name
from genopipe.steps.report import bcftools_stats_numbers, mean_depth, samtools_stats_numbers

SAMTOOLS_STATS = """# This file was produced by samtools stats
SN\traw total sequences:\t30000\t# excluding supplementary and secondary reads
SN\treads mapped:\t29850
SN\terror rate:\t2.1e-03\t# mismatches / bases mapped (cigar)
"""

BCFTOOLS_STATS = """# SN, Summary numbers:
SN\t0\tnumber of samples:\t1
SN\t0\tnumber of SNPs:\t118
SN\t0\tnumber of indels:\t27
# TSTV, transitions/transversions:
TSTV\t0\t40\t78\t0.51\t40\t78\t0.51
"""

COVERAGE = """#rname\tstartpos\tendpos\tnumreads\tcovbases\tcoverage\tmeandepth\tmeanbaseq\tmeanmapq
a\t1\t100\t10\t100\t100\t30\t35\t60
b\t1\t300\t10\t300\t100\t10\t35\t60
"""


def test_samtools_stats_summary_numbers() -> None:
    numbers = samtools_stats_numbers(SAMTOOLS_STATS)
    assert numbers["raw total sequences"] == 30000
    assert numbers["reads mapped"] == 29850
    assert numbers["error rate"] == 0.0021


def test_bcftools_stats_counts_and_titv() -> None:
    assert bcftools_stats_numbers(BCFTOOLS_STATS) == (118, 27, round(40 / 78, 3))
    assert bcftools_stats_numbers("") == (0, 0, None)


def test_mean_depth_weights_contigs_by_length() -> None:
    assert mean_depth(COVERAGE) == 15.0
    assert mean_depth("#header only\n") == 0.0


def test_soft_filters_depend_on_ploidy_and_caller() -> None:
    diploid, haploid = dict(soft_filters(2, "bcftools")), dict(soft_filters(1, "bcftools"))
    assert list(diploid) == ["LowQual", "LowDepth", "LowAltFrac"]
    assert diploid["LowAltFrac"].endswith("< 0.15") and haploid["LowAltFrac"].endswith("< 0.5")
    assert diploid["LowQual"] == "QUAL < 3"
    freebayes = dict(soft_filters(2, "freebayes"))
    assert list(freebayes) == ["LowQual", "StrandBias", "PlacementBias", "LowDepth", "LowAltFrac"]
    assert freebayes["LowQual"] == "QUAL < 1"
    assert freebayes["StrandBias"] == "INFO/SAF = 0 || INFO/SAR = 0"
    assert freebayes["PlacementBias"] == "INFO/RPL <= 1 || INFO/RPR <= 1"


def test_filter_chain_names_each_filter_and_ends_with_the_snp_gap() -> None:
    tools = filter_tools(2, "freebayes", "s3://b/s.bam")
    assert [tool.argv[tool.argv.index("-s") + 1] for tool in tools[:-1]] == [
        name for name, _ in soft_filters(2, "freebayes")
    ]
    assert tools[-1].argv == ["bcftools", "filter", "-m", "+", "-g", "3", "-Ou"]


def test_names() -> None:
    assert read_group("s1", 2) == "@RG\\tID:s1.L2\\tSM:s1\\tLB:s1\\tPL:ILLUMINA"
    files = SampleFiles("s1")
    assert files.trimmed(1) == ("trimmed/s1_L1_R1.fastq.gz", "trimmed/s1_L1_R2.fastq.gz")
    assert files.fastp_stem(1, 1) == "s1" and files.fastp_stem(2, 3) == "s1_L2"
    assert files.fastp_reports(2, 3) == ("qc/s1_L2.fastp.json", "qc/s1_L2.fastp.html")
    assert published_key(files, "summary.json") == "qc/summary.json"
    assert published_key(files, "s1.bam") == "s1.bam" and published_key(files, "trimmed/x") is None
    assert staged_key("qc/summary.json") == "summary.json"
    fasta = S3Uri("b", "refs/my genome.fa.gz")
    assert plain_name(fasta) == "my genome.fa"
    assert cache_root(S3Uri("out", ".staging/x/")) == S3Uri("out", ".references/")
    assert etag_record(cache_root(S3Uri("out", ".staging/x/")), fasta, "e1") == S3Uri(
        "out", ".references/etag/b/refs/my genome.fa.gz/e1.json"
    )
