"""Accuracy of a call set against a truth set: precision, recall and F1 for SNPs and for indels.

Method (the same for both VCFs, so representation differences cancel out):

1. Normalise with `bcftools norm -f <reference> -m -any -a -c e`: multiallelic records are split
   into one record per ALT allele (the genotype recoded per allele, so `1/2` gives `1/0` for
   the first ALT and `0/1` for the second), MNPs and complex alleles are atomised into SNPs and
   indels, and indels are left-aligned against the reference. A REF that does not match the
   reference is an error. Atomisation's `*` (overlapping allele) records are dropped.
2. Keep a record when its ALT is carried by the sample's genotype (the first sample, or the one
   named): any allele index other than 0 in GT, phased or not. Reference calls (`0/0`), no-calls
   (`./.`) and, for the call set, records whose FILTER is neither `PASS` nor `.` (no filter
   applied) are not calls; the truth's FILTER is not looked at. A VCF without samples counts
   every record as carried.
3. With a BED of confident regions, keep only records whose POS lies in an interval (BED is
   0-based half-open; an indel is placed at its anchor base).
4. Match on (CHROM, POS, REF, ALT). A record is a SNP when REF and ALT are one base each, else
   an indel. TP = in both; FP = called, not in the truth; FN = in the truth, not called.
   precision = TP / (TP + FP), recall = TP / (TP + FN), F1 their harmonic mean; a ratio with a
   zero denominator is None. A TP whose zygosity (het vs hom-alt) differs between the two sets
   is counted in `genotype_mismatches` but still a TP: allele matching, as in hap.py/vcfeval's
   "allele match" level, is what the pipeline's targets are stated in.

Matching is exact after normalisation, so a correctly called indel written as a different but
equivalent haplotype (e.g. in a tandem repeat, split differently into atoms) can count as
FP+FN; on the simulated data, whose truth is already left-aligned and spaced out, this does not
occur. For complex real truth sets use hap.py or rtg vcfeval.

5. Haplotype-aware comparison (`haplotype_snp`, `haplotype_indel`; a small stand-in for vcfeval,
   which is not packaged): alleles of both sets within `CLUSTER_GAP` bp of each other form a
   cluster. Where a cluster holds an allele that did not match exactly, both sets' alleles are
   applied to the reference over the cluster, every way their heterozygous alleles can be
   phased (homozygous ones go on both haplotypes; alleles that overlap cannot share one); if some
   pair of call haplotypes equals some pair of truth haplotypes, every allele of the cluster, on
   both sides, counts as matched (the same sequence, written differently). So here TP is the
   truth alleles matched (for recall) and precision is the call alleles matched over all calls.
   Clusters with more than `MAX_PHASED_HETS` heterozygous alleles on a side keep the exact result.
"""

from __future__ import annotations

import bisect
import gzip
import itertools
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from pydantic import BaseModel

VariantClass = Literal["snp", "indel"]


class EvaluateError(Exception):
    """A problem with an input VCF, BED or reference: the message names the file."""


class ClassMetrics(BaseModel):
    """Counts and ratios for one variant class (SNPs or indels)."""

    truth: int
    calls: int
    tp: int
    fp: int
    fn: int
    genotype_mismatches: int
    precision: float | None
    recall: float | None
    f1: float | None
    false_positives: list[str]  # "chrom:pos:ref>alt", sorted
    false_negatives: list[str]


class Evaluation(BaseModel):
    calls_vcf: Path
    truth_vcf: Path
    reference: Path
    regions_bed: Path | None
    snp: ClassMetrics
    indel: ClassMetrics
    haplotype_snp: ClassMetrics | None = None  # step 5 of the method
    haplotype_indel: ClassMetrics | None = None

    def summary(self) -> str:
        def ratio(value: float | None) -> str:
            return "n/a" if value is None else f"{value:.4f}"

        lines = []
        pairs = [("SNP", self.snp), ("indel", self.indel)]
        pairs += [
            (f"{name} (haplotypes)", m)
            for name, m in (("SNP", self.haplotype_snp), ("indel", self.haplotype_indel))
            if m
        ]
        for name, m in pairs:
            lines.append(
                f"{name:5}  truth {m.truth:6}  TP {m.tp:6}  FP {m.fp:5}  FN {m.fn:5}  "
                f"precision {ratio(m.precision)}  recall {ratio(m.recall)}  F1 {ratio(m.f1)}"
            )
        return "\n".join(lines)


@dataclass(frozen=True)
class Allele:
    chrom: str
    pos: int
    ref: str
    alt: str

    @property
    def variant_class(self) -> VariantClass:
        return "snp" if len(self.ref) == 1 and len(self.alt) == 1 else "indel"

    def __str__(self) -> str:
        return f"{self.chrom}:{self.pos}:{self.ref}>{self.alt}"


def evaluate(
    calls_vcf: Path,
    truth_vcf: Path,
    reference: Path,
    regions_bed: Path | None = None,
    calls_sample: str | None = None,
    truth_sample: str | None = None,
    haplotypes: bool = True,
) -> Evaluation:
    """Compare `calls_vcf` to `truth_vcf` (see the module docstring for the method)."""
    for path in (calls_vcf, truth_vcf, reference, regions_bed):
        if path is not None and not path.is_file():
            raise EvaluateError(f"{path}: no such file")
    regions = read_bed(regions_bed) if regions_bed else None
    with tempfile.TemporaryDirectory(prefix="genopipe-evaluate-") as scratch:
        indexed_reference = faidx_reference(reference, Path(scratch))
        calls = carried_alleles(calls_vcf, indexed_reference, calls_sample, pass_only=True)
        truth = carried_alleles(truth_vcf, indexed_reference, truth_sample, pass_only=False)
        if regions is not None:
            calls = {a: z for a, z in calls.items() if in_regions(regions, a)}
            truth = {a: z for a, z in truth.items() if in_regions(regions, a)}
        matched = haplotype_matches(calls, truth, indexed_reference) if haplotypes else None
    evaluation = Evaluation(
        calls_vcf=calls_vcf,
        truth_vcf=truth_vcf,
        reference=reference,
        regions_bed=regions_bed,
        snp=class_metrics("snp", calls, truth),
        indel=class_metrics("indel", calls, truth),
    )
    if matched is not None:
        evaluation.haplotype_snp = haplotype_metrics("snp", calls, truth, *matched)
        evaluation.haplotype_indel = haplotype_metrics("indel", calls, truth, *matched)
    return evaluation


def _scored(
    truth: int, calls: int, tp: int, correct_calls: int, fp: set[Allele], fn: set[Allele], mismatches: int
) -> ClassMetrics:
    """Precision (correct calls / calls), recall (tp / truth), F1 and the lists, for one class."""
    precision = correct_calls / calls if calls else None
    recall = tp / truth if truth else None
    f1 = None
    if precision is not None and recall is not None:
        f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return ClassMetrics(
        truth=truth,
        calls=calls,
        tp=tp,
        fp=len(fp),
        fn=len(fn),
        genotype_mismatches=mismatches,
        precision=precision,
        recall=recall,
        f1=f1,
        false_positives=[str(a) for a in sorted(fp, key=sort_key)],
        false_negatives=[str(a) for a in sorted(fn, key=sort_key)],
    )


def class_metrics(kind: VariantClass, calls: dict[Allele, bool], truth: dict[Allele, bool]) -> ClassMetrics:
    called = {a: hom for a, hom in calls.items() if a.variant_class == kind}
    true = {a: hom for a, hom in truth.items() if a.variant_class == kind}
    tp = called.keys() & true.keys()
    fp, fn = set(called.keys() - true.keys()), set(true.keys() - called.keys())
    mismatches = sum(called[a] != true[a] for a in tp)
    return _scored(len(true), len(called), len(tp), len(tp), fp, fn, mismatches)


def haplotype_metrics(
    kind: VariantClass,
    calls: dict[Allele, bool],
    truth: dict[Allele, bool],
    matched_calls: set[Allele],
    matched_truth: set[Allele],
) -> ClassMetrics:
    """Step 5's figures: TP = truth alleles matched, precision = call alleles matched / calls."""
    called = {a for a in calls if a.variant_class == kind}
    true = {a for a in truth if a.variant_class == kind}
    fp, fn = called - matched_calls, true - matched_truth
    tp = true & matched_truth
    mismatches = sum(calls[a] != truth[a] for a in tp if a in calls)
    return _scored(len(true), len(called), len(tp), len(called) - len(fp), fp, fn, mismatches)


CLUSTER_GAP = 10  # bp between one allele's last reference base and the next allele of a cluster
MAX_PHASED_HETS = 10  # 2^(n-1) phasings per side


def end_of(allele: Allele) -> int:
    """The last reference base the allele covers (1-based)."""
    return allele.pos + len(allele.ref) - 1


def clusters(alleles: set[Allele]) -> list[list[Allele]]:
    """Alleles (of both sets) grouped by proximity on each contig."""
    groups: list[list[Allele]] = []
    end = 0
    for allele in sorted(alleles, key=sort_key):
        if groups and allele.chrom == groups[-1][0].chrom and allele.pos <= end + CLUSTER_GAP:
            groups[-1].append(allele)
            end = max(end, end_of(allele))
        else:
            groups.append([allele])
            end = end_of(allele)
    return groups


def haplotype_pairs(alleles: dict[Allele, bool], start: int, reference: str) -> set[tuple[str, str]] | None:
    """Every (unordered) pair of haplotype sequences the alleles can make over `reference` (which
    begins at `start`); None when there are too many heterozygous alleles to phase."""
    homozygous = [a for a, hom in alleles.items() if hom]
    hets = sorted((a for a, hom in alleles.items() if not hom), key=sort_key)
    if len(hets) > MAX_PHASED_HETS:
        return None
    pairs = set()
    # the first het goes on haplotype 0: swapping the haplotypes gives the same pair
    for phase in itertools.product((0, 1), repeat=max(0, len(hets) - 1)):
        sides = ([*homozygous], [*homozygous])
        for allele, side in zip(hets, (0, *phase)[: len(hets)], strict=True):
            sides[side].append(allele)
        built = [apply_alleles(side, start, reference) for side in sides]
        if built[0] is not None and built[1] is not None:
            pairs.add((min(built[0], built[1]), max(built[0], built[1])))
    return pairs


def apply_alleles(alleles: list[Allele], start: int, reference: str) -> str | None:
    """`reference` (beginning at `start`) with the alleles applied; None if two overlap."""
    pieces, cursor = [], start
    for allele in sorted(alleles, key=sort_key):
        if allele.pos < cursor:
            return None
        pieces += [reference[cursor - start : allele.pos - start], allele.alt]
        cursor = allele.pos + len(allele.ref)
    pieces.append(reference[cursor - start :])
    return "".join(pieces)


def haplotype_matches(
    calls: dict[Allele, bool], truth: dict[Allele, bool], reference: Path
) -> tuple[set[Allele], set[Allele]]:
    """(call alleles, truth alleles) matched exactly or by equal haplotypes (step 5)."""
    matched_calls = calls.keys() & truth.keys()
    matched_truth = set(matched_calls)
    for group in clusters(set(calls) | set(truth)):
        in_calls = {a: calls[a] for a in group if a in calls}
        in_truth = {a: truth[a] for a in group if a in truth}
        if not in_calls or not in_truth or in_calls.keys() == in_truth.keys():
            continue
        start, end = group[0].pos, max(end_of(a) for a in group)
        sequence = reference_sequence(reference, group[0].chrom, start, end)
        called = haplotype_pairs(in_calls, start, sequence)
        true = haplotype_pairs(in_truth, start, sequence)
        if called and true and called & true:
            matched_calls |= in_calls.keys()
            matched_truth |= in_truth.keys()
    return set(matched_calls), matched_truth


def reference_sequence(reference: Path, chrom: str, start: int, end: int) -> str:
    done = subprocess.run(
        ["samtools", "faidx", str(reference), f"{chrom}:{start}-{end}"], capture_output=True, text=True
    )
    if done.returncode != 0:
        raise EvaluateError(f"{reference}: samtools faidx failed: {last_line(done.stderr)}")
    return "".join(line.strip() for line in done.stdout.splitlines()[1:]).upper()


def sort_key(allele: Allele) -> tuple[str, int, str, str]:
    return (allele.chrom, allele.pos, allele.ref, allele.alt)


def carried_alleles(vcf: Path, reference: Path, sample: str | None, pass_only: bool) -> dict[Allele, bool]:
    """Normalised alleles the sample carries -> True when homozygous for that allele."""
    norm = ["bcftools", "norm", "--no-version", "-f", str(reference), "-m", "-any", "-a", "-c", "e", "-Ou"]
    query = ["bcftools", "query", "-f", "%CHROM\\t%POS\\t%REF\\t%ALT\\t%FILTER[\\t%GT]\\n"]
    if sample:
        query += ["-s", sample]
    with subprocess.Popen([*norm, str(vcf)], stdout=subprocess.PIPE, stderr=subprocess.PIPE) as normed:
        queried = subprocess.run(query, stdin=normed.stdout, capture_output=True, text=True)
        assert normed.stdout is not None and normed.stderr is not None
        normed.stdout.close()
        norm_error = normed.stderr.read().decode(errors="replace")
    if normed.returncode != 0:
        raise EvaluateError(f"{vcf}: bcftools norm failed: {last_line(norm_error)}")
    if queried.returncode != 0:
        raise EvaluateError(f"{vcf}: bcftools query failed: {last_line(queried.stderr)}")
    alleles: dict[Allele, bool] = {}
    for line in queried.stdout.splitlines():
        chrom, pos, ref, alt, filters, *genotype = line.split("\t")
        if alt in ("*", ".") or (pass_only and filters not in ("PASS", ".")):
            continue
        if genotype:
            indexes = [i for i in genotype[0].replace("|", "/").split("/") if i not in (".", "")]
            carried = [i for i in indexes if i != "0"]
            if not carried:
                continue
            homozygous = len(carried) == len(indexes) and len(indexes) > 1
        else:
            homozygous = False
        alleles[Allele(chrom, int(pos), ref, alt)] = homozygous
    return alleles


def faidx_reference(reference: Path, scratch: Path) -> Path:
    """The reference with a usable .fai: as is when indexed, else a plain copy indexed in scratch."""
    if Path(f"{reference}.fai").is_file():
        return reference
    plain = scratch / "reference.fa"
    try:
        with reference.open("rb") as probe:
            gzipped = probe.read(2) == b"\x1f\x8b"
        with (
            gzip.open(reference, "rb") if gzipped else reference.open("rb") as source,
            plain.open("wb") as out,
        ):
            shutil.copyfileobj(source, out)
    except (OSError, EOFError) as err:
        raise EvaluateError(f"{reference}: cannot read the reference ({err})") from err
    result = subprocess.run(["samtools", "faidx", str(plain)], capture_output=True, text=True)
    if result.returncode != 0:
        raise EvaluateError(f"{reference}: not an indexable FASTA: {last_line(result.stderr)}")
    return plain


Regions = dict[str, list[tuple[int, int]]]  # chrom -> sorted, merged 0-based half-open intervals


def read_bed(path: Path) -> Regions:
    regions: Regions = {}
    for number, line in enumerate(path.read_text().splitlines(), start=1):
        if not line.strip() or line.startswith(("#", "track", "browser")):
            continue
        fields = line.split("\t")
        try:
            start, end = int(fields[1]), int(fields[2])
        except (IndexError, ValueError):
            raise EvaluateError(f"{path}: line {number} is not BED (chrom, start, end)") from None
        regions.setdefault(fields[0], []).append((start, end))
    for chrom, intervals in regions.items():
        merged: list[tuple[int, int]] = []
        for start, end in sorted(intervals):
            if merged and start <= merged[-1][1]:
                merged[-1] = (merged[-1][0], max(end, merged[-1][1]))
            else:
                merged.append((start, end))
        regions[chrom] = merged
    return regions


def in_regions(regions: Regions, allele: Allele) -> bool:
    intervals = regions.get(allele.chrom, [])
    index = bisect.bisect_right(intervals, (allele.pos - 1, sys.maxsize)) - 1
    return index >= 0 and intervals[index][0] <= allele.pos - 1 < intervals[index][1]


def last_line(text: str) -> str:
    lines = [line for line in text.splitlines() if line.strip()]
    return lines[-1].strip() if lines else "no message"
