"""genopipe.truth.evaluate on small hand-made VCFs whose right answer is worked out by hand.

Needs bcftools and samtools (normalisation, reference index), which `make test` installs.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from genopipe.truth.evaluate import EvaluateError, evaluate
from genopipe.truth.simulate import simulate_sample

pytestmark = pytest.mark.tools

#                   1         2         3         4         5         6
#          123456789012345678901234567890123456789012345678901234567890
SEQUENCE = "GATTACAGATTACCCCCGTTAGCATGGCATTGACGTAACGTGGATCCATGATTACGGTCA"

HEADER = """##fileformat=VCFv4.2
##contig=<ID=ctg,length=60>
##FILTER=<ID=LowQual,Description="low quality">
##FORMAT=<ID=GT,Number=1,Type=String,Description="Genotype">
#CHROM\tPOS\tID\tREF\tALT\tQUAL\tFILTER\tINFO\tFORMAT\ts
"""

# Truth: 5 SNPs (2 A>G het, 5 A>T hom, 25 T>C, 30 T>G, 31 T>A) and 2 indels (a C deleted from
# the CCCCC run at 13-17, left-aligned to anchor 12; an A inserted after 40).
TRUTH = """ctg\t2\t.\tA\tG\t.\tPASS\t.\tGT\t0|1
ctg\t5\t.\tA\tT\t.\tPASS\t.\tGT\t1|1
ctg\t12\t.\tAC\tA\t.\tPASS\t.\tGT\t0|1
ctg\t25\t.\tT\tC\t.\tPASS\t.\tGT\t1|0
ctg\t30\t.\tT\tG\t.\tPASS\t.\tGT\t0|1
ctg\t31\t.\tT\tA\t.\tPASS\t.\tGT\t0|1
ctg\t40\t.\tG\tGA\t.\tPASS\t.\tGT\t1|1
"""

# Calls: 2 matches; 5 is multiallelic T,C with 1/2 (T is a TP with the wrong zygosity, C an FP);
# the deletion written right-shifted (normalisation must move it to 12); 25 called but
# LowQual (so an FN, not a TP); 30-31 as one MNP (atomised into the two truth SNPs); a
# reference call and a no-call that must not count; the insertion at 40 missed.
CALLS = """ctg\t2\t.\tA\tG\t50\tPASS\t.\tGT\t0/1
ctg\t5\t.\tA\tT,C\t50\tPASS\t.\tGT\t1/2
ctg\t16\t.\tCC\tC\t50\tPASS\t.\tGT\t0/1
ctg\t25\t.\tT\tC\t8\tLowQual\t.\tGT\t0/1
ctg\t30\t.\tTT\tGA\t50\t.\t.\tGT\t0/1
ctg\t45\t.\tT\tC\t50\tPASS\t.\tGT\t0/0
ctg\t50\t.\tG\tA\t50\tPASS\t.\tGT\t./.
"""


@pytest.fixture
def files(tmp_path: Path) -> dict[str, Path]:
    paths = {
        "reference": tmp_path / "ref.fa",
        "truth": tmp_path / "truth.vcf",
        "calls": tmp_path / "calls.vcf",
        "bed": tmp_path / "confident.bed",
    }
    paths["reference"].write_text(f">ctg\n{SEQUENCE}\n")  # no .fai: evaluate indexes a copy
    paths["truth"].write_text(HEADER + TRUTH)
    paths["calls"].write_text(HEADER + CALLS)
    paths["bed"].write_text("ctg\t0\t20\n")
    return paths


def test_counts_against_hand_worked_answer(files: dict[str, Path]) -> None:
    result = evaluate(files["calls"], files["truth"], files["reference"])

    snp = result.snp
    assert (snp.truth, snp.calls, snp.tp, snp.fp, snp.fn) == (5, 5, 4, 1, 1)
    assert snp.false_positives == ["ctg:5:A>C"]
    assert snp.false_negatives == ["ctg:25:T>C"]
    assert snp.genotype_mismatches == 1  # 5 A>T: hom in the truth, het (1/2) in the calls
    assert snp.precision == pytest.approx(0.8)
    assert snp.recall == pytest.approx(0.8)
    assert snp.f1 == pytest.approx(0.8)

    indel = result.indel
    assert (indel.truth, indel.calls, indel.tp, indel.fp, indel.fn) == (2, 1, 1, 0, 1)
    assert indel.false_negatives == ["ctg:40:G>GA"]
    assert indel.precision == pytest.approx(1.0)
    assert indel.recall == pytest.approx(0.5)
    assert indel.f1 == pytest.approx(2 / 3)
    assert "precision 0.8000" in result.summary()


def test_confident_regions_restrict_both_sets(files: dict[str, Path]) -> None:
    result = evaluate(files["calls"], files["truth"], files["reference"], regions_bed=files["bed"])
    # BED [0, 20) keeps positions 1-20: SNPs at 2 and 5, the deletion anchored at 12
    assert (result.snp.truth, result.snp.tp, result.snp.fp, result.snp.fn) == (2, 2, 1, 0)
    assert (result.indel.truth, result.indel.tp, result.indel.fp, result.indel.fn) == (1, 1, 0, 0)
    assert result.indel.recall == pytest.approx(1.0)


def test_empty_call_set_has_no_precision(files: dict[str, Path], tmp_path: Path) -> None:
    empty = tmp_path / "empty.vcf"
    empty.write_text(HEADER)
    result = evaluate(empty, files["truth"], files["reference"])
    assert result.snp.calls == 0 and result.snp.fn == 5
    assert result.snp.precision is None and result.snp.f1 is None
    assert result.snp.recall == 0.0


def test_reference_mismatch_names_the_vcf(files: dict[str, Path], tmp_path: Path) -> None:
    wrong = tmp_path / "wrong_ref.vcf"
    wrong.write_text(HEADER + "ctg\t2\t.\tC\tG\t50\tPASS\t.\tGT\t0/1\n")  # base 2 is A, not C
    with pytest.raises(EvaluateError, match=r"wrong_ref\.vcf: bcftools norm failed"):
        evaluate(wrong, files["truth"], files["reference"])


def test_missing_file_and_bad_bed(files: dict[str, Path], tmp_path: Path) -> None:
    with pytest.raises(EvaluateError, match=r"absent\.vcf: no such file"):
        evaluate(tmp_path / "absent.vcf", files["truth"], files["reference"])
    bad_bed = tmp_path / "bad.bed"
    bad_bed.write_text("ctg\tzero\t20\n")
    with pytest.raises(EvaluateError, match=r"bad\.bed: line 1 is not BED"):
        evaluate(files["calls"], files["truth"], files["reference"], regions_bed=bad_bed)


def test_simulated_truth_against_itself_is_perfect(tmp_path: Path) -> None:
    sample = simulate_sample(tmp_path, seed=3, length=60_000, depth=1)
    assert sample.indels > 0
    result = evaluate(sample.truth_vcf, sample.truth_vcf, sample.reference)
    assert (result.snp.tp, result.indel.tp) == (sample.snps, sample.indels)
    assert result.snp.precision == result.snp.recall == result.indel.f1 == 1.0


def test_haplotype_comparison_matches_an_equivalent_haplotype_written_differently(tmp_path: Path) -> None:
    # A CCCCC G T (12-19): deleting the G (truth) gives the same haplotype as deleting one C and
    # turning the G into C (calls, phased on one haplotype): no exact match, equal sequences
    reference = tmp_path / "ref.fa"
    reference.write_text(f">ctg\n{SEQUENCE}\n")
    truth, calls = tmp_path / "truth.vcf", tmp_path / "calls.vcf"
    truth.write_text(
        HEADER + "ctg\t17\t.\tCG\tC\t.\tPASS\t.\tGT\t0|1\nctg\t40\t.\tG\tGA\t.\tPASS\t.\tGT\t1|1\n"
    )
    calls.write_text(
        HEADER
        + "ctg\t12\t.\tAC\tA\t50\tPASS\t.\tGT\t0/1\nctg\t18\t.\tG\tC\t50\tPASS\t.\tGT\t0/1\n"
        + "ctg\t40\t.\tG\tGA\t50\tPASS\t.\tGT\t0/1\n"  # zygosity differs: still an (exact) allele match
    )
    result = evaluate(calls, truth, reference)
    assert (result.indel.tp, result.indel.fp, result.indel.fn) == (1, 1, 1)  # exact: only 40 matches
    assert (result.snp.tp, result.snp.fp) == (0, 1)
    assert result.haplotype_indel is not None and result.haplotype_snp is not None
    assert (result.haplotype_indel.tp, result.haplotype_indel.fp, result.haplotype_indel.fn) == (2, 0, 0)
    assert result.haplotype_indel.recall == pytest.approx(1.0)
    assert (result.haplotype_snp.fp, result.haplotype_snp.precision) == (0, pytest.approx(1.0))
    assert evaluate(calls, truth, reference, haplotypes=False).haplotype_indel is None
