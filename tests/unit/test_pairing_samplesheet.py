"""Which objects form a sample: file-name pairing and nf-core sample sheets."""

from __future__ import annotations

import pytest

from genopipe.contracts import sample_name_problem
from genopipe.intake.pairing import (
    PairingError,
    UnsupportedFastq,
    is_samplesheet,
    pair_sample,
    parse_fastq_key,
)
from genopipe.intake.samplesheet import SamplesheetError, parse_samplesheet


@pytest.mark.parametrize(
    "key, sample, lane, read",
    [
        ("a/NA12878_R1.fastq.gz", "NA12878", "", 1),
        ("a/NA12878_R2.fq.gz", "NA12878", "", 2),
        ("x_1.fq.gz", "x", "", 1),
        ("run/s.1_2.fastq.gz", "s.1", "", 2),
        ("run/HG002_S7_L002_R1_001.fastq.gz", "HG002", "S7_L002", 1),
    ],
)
def test_recognised_names(key: str, sample: str, lane: str, read: int) -> None:
    name = parse_fastq_key(key)
    assert name is not None
    assert (name.sample, name.lane, name.read) == (sample, lane, read)


@pytest.mark.parametrize("key", ["a/reads.fastq.gz", "a/x_R3.fastq.gz", "a/notes.txt"])
def test_unrecognised_names(key: str) -> None:
    assert parse_fastq_key(key) is None


@pytest.mark.parametrize(
    ("key", "sample", "read"),
    [("run/S1_R1.FASTQ.GZ", "S1", 1), ("S1_2.Fq.Gz", "S1", 2), ("r/HG2_S1_L001_R2_001.FASTQ.gz", "HG2", 2)],
)
def test_upper_and_mixed_case_suffixes_are_fastq(key: str, sample: str, read: int) -> None:
    name = parse_fastq_key(key)
    assert name is not None and (name.sample, name.read) == (sample, read)


@pytest.mark.parametrize(
    ("key", "what", "fix"),
    [
        ("a/x_R1.fastq", "an uncompressed FASTQ", "`gzip x_R1.fastq`"),
        ("a/x_1.FQ", "an uncompressed FASTQ", "`gzip x_1.FQ`"),
        ("a/x_R1.fastq.bz2", ".bz2 compression", "`bzip2 -dc x_R1.fastq.bz2 | gzip > x_R1.fastq.gz`"),
        ("a/x_R2.fq.zst", ".zst compression", "`zstd -dc x_R2.fq.zst | gzip > x_R2.fq.gz`"),
    ],
)
def test_a_fastq_that_is_not_gzipped_is_answered_not_dropped(key: str, what: str, fix: str) -> None:
    with pytest.raises(UnsupportedFastq) as raised:
        parse_fastq_key(key)
    assert str(raised.value).startswith(f"{key}: {what} is not accepted")
    assert fix in str(raised.value) and raised.value.sample == "x"
    assert raised.value.error_type == "UnsupportedFormat"


@pytest.mark.parametrize(
    ("key", "problem"),
    [
        ("run/._R1.fastq.gz", "must not start with '.'"),
        ("run/.._R1.fastq.gz", "must not start with '.'"),
        ("run/.staging_R1.fastq.gz", "must not start with '.'"),
        (f"run/{'a' * 300}_R1.fastq.gz", "is 300 characters long; at most 64"),
        ("run/my sample_R1.fastq.gz", "may only hold letters, digits"),
    ],
)
def test_sample_names_every_aws_name_can_hold(key: str, problem: str) -> None:
    with pytest.raises(PairingError, match=problem):
        parse_fastq_key(key)
    assert sample_name_problem("a" * 64) is None and sample_name_problem("A-1.b_2") is None


@pytest.mark.parametrize(
    ("sample", "problem"),
    [(".", "must not start with '.'"), ("..", "must not start with '.'"), ("x" * 65, "at most 64")],
)
def test_a_samplesheet_rejects_reserved_and_long_names(sample: str, problem: str) -> None:
    sheet = f"sample,fastq_1,fastq_2\n{sample},a_1.fq.gz,a_2.fq.gz\n"
    with pytest.raises(SamplesheetError, match=f"row 2: sample .* {problem}"):
        parse_samplesheet(sheet, "s3://in/run/samplesheet.csv")


def test_bad_sample_name_is_named_in_the_error() -> None:
    with pytest.raises(PairingError, match=r"a/bad name_R1.fastq.gz: sample name 'bad name'"):
        parse_fastq_key("a/bad name_R1.fastq.gz")


def test_pair_waits_for_mate_then_pairs_within_the_folder() -> None:
    r1 = parse_fastq_key("run/S1_R1.fastq.gz")
    assert r1 is not None
    assert pair_sample(r1, ["run/S1_R1.fastq.gz", "other/S1_R2.fastq.gz"]) is None
    paired = pair_sample(r1, ["run/S1_R1.fastq.gz", "run/S1_R2.fastq.gz", "run/S2_R1.fastq.gz"])
    assert paired is not None
    assert paired.lanes == (("run/S1_R1.fastq.gz", "run/S1_R2.fastq.gz"),)


def test_illumina_lanes_are_one_sample_in_lane_order() -> None:
    keys = [f"r/HG_S1_L00{lane}_R{read}_001.fastq.gz" for lane in (2, 1) for read in (1, 2)]
    trigger = parse_fastq_key(keys[0])
    assert trigger is not None
    paired = pair_sample(trigger, keys)
    assert paired is not None
    assert [r1 for r1, _ in paired.lanes] == ["r/HG_S1_L001_R1_001.fastq.gz", "r/HG_S1_L002_R1_001.fastq.gz"]
    trigger3 = parse_fastq_key("r/HG_S1_L003_R1_001.fastq.gz")
    assert trigger3 is not None
    assert pair_sample(trigger3, keys) is None  # lane 3 has no R2 yet


def test_two_r1_files_for_one_sample_are_rejected() -> None:
    trigger = parse_fastq_key("r/S_R1.fastq.gz")
    assert trigger is not None
    with pytest.raises(PairingError, match="already has R1"):
        pair_sample(trigger, ["r/S_R1.fastq.gz", "r/S_R1.fq.gz", "r/S_R2.fastq.gz"])


def test_samplesheet_name() -> None:
    assert is_samplesheet("runs/samplesheet.csv") and not is_samplesheet("runs/samplesheet.csv.bak")


SHEET = "s3://in/runs/samplesheet.csv"


def test_samplesheet_rows_become_samples_with_lanes_and_ploidy() -> None:
    text = (
        "sample,fastq_1,fastq_2,ploidy\n"
        "A,A_L1_1.fq.gz,A_L1_2.fq.gz,1\n"
        "B,s3://other/B_R1.fastq.gz,s3://other/B_R2.fastq.gz,\n"
        "A,sub/A_L2_1.fq.gz,sub/A_L2_2.fq.gz,1\n"
    )
    sheet = parse_samplesheet(text, SHEET)
    a, b = sheet.samples
    assert a.sample == "A" and a.ploidy == 1
    assert a.lanes == (
        ("s3://in/runs/A_L1_1.fq.gz", "s3://in/runs/A_L1_2.fq.gz"),
        ("s3://in/runs/sub/A_L2_1.fq.gz", "s3://in/runs/sub/A_L2_2.fq.gz"),
    )
    assert b.ploidy is None and b.lanes[0][0] == "s3://other/B_R1.fastq.gz"
    assert sheet.uses("s3://in/runs/sub/A_L2_2.fq.gz")


def test_samplesheet_caller_column_is_optional_per_sample() -> None:
    text = "sample,fastq_1,fastq_2,caller\nA,a_1.fq.gz,a_2.fq.gz,bcftools\nB,b_1.fq.gz,b_2.fq.gz,\n"
    a, b = parse_samplesheet(text, SHEET).samples
    assert (a.caller, b.caller) == ("bcftools", None)


@pytest.mark.parametrize(
    "text, message",
    [
        ("sample,fastq_1\nA,a.fq.gz\n", "row 1: missing column(s) fastq_2"),
        ("sample,fastq_1,fastq_2\nA,a_1.fq.gz,\n", "row 2: fastq_2 is empty"),
        ("sample,fastq_1,fastq_2\nA,a_1.fq.gz,a_2.fq.gz\n,b_1.fq.gz,b_2.fq.gz\n", "row 3: sample is empty"),
        ("sample,fastq_1,fastq_2\nA,a_1.bam,a_2.fq.gz\n", "row 2: fastq_1 'a_1.bam' does not end in"),
        (
            "sample,fastq_1,fastq_2\nA,/data/a_1.fq.gz,a_2.fq.gz\n",
            "row 2: '/data/a_1.fq.gz' must be an s3://",
        ),
        ("sample,fastq_1,fastq_2,ploidy\nA,a_1.fq.gz,a_2.fq.gz,3\n", "row 2: ploidy '3' must be 1 or 2"),
        (
            "sample,fastq_1,fastq_2,caller\nA,a_1.fq.gz,a_2.fq.gz,gatk\n",
            "row 2: caller 'gatk' must be bcftools or freebayes",
        ),
        (
            "sample,fastq_1,fastq_2\nA,a_1.fq.gz,a_2.fq.gz\nB,a_1.fq.gz,b_2.fq.gz\n",
            "row 3: 'a_1.fq.gz' is already",
        ),
        ("sample,fastq_1,fastq_2\n", "no samples"),
    ],
)
def test_samplesheet_errors_name_file_and_row(text: str, message: str) -> None:
    with pytest.raises(SamplesheetError) as caught:
        parse_samplesheet(text, SHEET)
    assert str(caught.value).startswith(SHEET + ": ")
    assert message in str(caught.value)


def test_samplesheet_intervals_column_is_a_bed_per_sample() -> None:
    text = (
        "sample,fastq_1,fastq_2,intervals\nA,A_1.fq.gz,A_2.fq.gz,targets/exome.bed\nB,B_1.fq.gz,B_2.fq.gz,\n"
    )
    sheet = parse_samplesheet(text, "s3://in/run/samplesheet.csv")
    assert [s.intervals for s in sheet.samples] == ["s3://in/run/targets/exome.bed", None]
    with pytest.raises(SamplesheetError, match=r"row 2: intervals 'exome\.txt' does not end in \.bed"):
        parse_samplesheet(
            "sample,fastq_1,fastq_2,intervals\nA,A_1.fq.gz,A_2.fq.gz,exome.txt\n", "s3://in/s.csv"
        )
    two = "sample,fastq_1,fastq_2,intervals\nA,A_1.fq.gz,A_2.fq.gz,a.bed\nA,A_3.fq.gz,A_4.fq.gz,b.bed\n"
    with pytest.raises(SamplesheetError, match=r"row 3: intervals s3://in/b\.bed differs from an earlier"):
        parse_samplesheet(two, "s3://in/s.csv")
