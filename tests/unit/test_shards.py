"""The region planner (genopipe.shards): N gaps, balance by real bases, the cap, BED targets."""

from __future__ import annotations

import functools
import operator
from pathlib import Path

import pytest

from genopipe import shards
from genopipe.shards import PlanError, Region


def tiles(plan: list[shards.Group]) -> list[tuple[str, int, int]]:
    return [(r.contig, r.start, r.end) for group in plan for r in group]


def assert_tiles_the_genome(plan: list[shards.Group], contigs: list[tuple[str, int]]) -> None:
    """Regions cover every base once, in .fai order, without overlaps."""
    expected_start = {name: 0 for name, _ in contigs}
    order = [name for name, _ in contigs]
    seen: list[str] = []
    for contig, start, end in tiles(plan):
        assert start == expected_start[contig] and end > start
        expected_start[contig] = end
        if not seen or seen[-1] != contig:
            seen.append(contig)
    assert expected_start == dict(contigs)
    assert seen == order


def test_scan_gaps_finds_n_runs_across_lines_and_contigs(tmp_path: Path) -> None:
    fasta = tmp_path / "ref.fa"
    fasta.write_text(">a desc\nACGTN\nNNnAC\nGT\n>b\nNNNN\nACGT\n>c\nACGT\n")
    assert list(shards.scan_gaps(fasta)) == [("a", 4, 8), ("b", 0, 4)]
    bed = tmp_path / "gaps.bed"
    assert shards.write_bed(bed, shards.scan_gaps(fasta)) == 2
    assert shards.read_gaps(bed) == [("a", 4, 8), ("b", 0, 4)]


def test_a_small_reference_stays_one_group() -> None:
    plan = shards.plan_genome([("KJ660346.2", 18959)], [], 100_000_000, 100)
    assert tiles(plan) == [("KJ660346.2", 0, 18959)]


def test_ebov_at_5000_bases_is_four_equal_regions() -> None:
    plan = shards.plan_genome([("KJ660346.2", 18959)], [], 5000, 100)
    assert [len(group) for group in plan] == [1, 1, 1, 1]
    assert [r.bases for group in plan for r in group] == [4739, 4740, 4740, 4740]


def test_cuts_go_in_the_middle_of_long_n_gaps_and_balance_counts_real_bases() -> None:
    # chr1: 3 Mb real, a 1 Mb gap, 1 Mb real, a 500 bp gap (too short to prefer), 2 Mb real
    contigs = [("chr1", 7_000_500), ("chr2", 2_000_000)]
    gaps = [("chr1", 3_000_000, 4_000_000), ("chr1", 5_000_000, 5_000_500)]
    plan = shards.plan_genome(contigs, gaps, 4_000_000, 100)
    assert_tiles_the_genome(plan, contigs)
    assert len(plan) == 2  # 8 Mb real / 4 Mb
    cuts = [end for contig, _, end in tiles(plan) if contig == "chr1"][:-1]
    assert 3_500_000 in cuts, "cut in the middle of the long gap"
    sizes = [sum(r.bases for r in group) for group in plan]
    assert sum(sizes) == 8_000_000
    assert max(sizes) - min(sizes) <= shards.MIN_REGION_BASES  # within one region of each other


def test_a_contig_starting_with_n_is_not_cut_off_as_an_empty_region() -> None:
    contigs = [("chr21", 10_000_000)]
    plan = shards.plan_genome(contigs, [("chr21", 0, 5_000_000)], 1_000_000, 100)
    assert_tiles_the_genome(plan, contigs)
    assert all(r.bases > 0 for group in plan for r in group)
    assert len(plan) == 5


def test_groups_hold_several_regions_so_a_job_can_use_its_vcpus() -> None:
    contigs = [(f"chr{n}", 50_000_000) for n in range(1, 9)]  # 400 Mb
    plan = shards.plan_genome(contigs, [], 100_000_000, 100)
    assert len(plan) == 4
    assert_tiles_the_genome(plan, contigs)
    assert all(len(group) >= shards.REGIONS_PER_GROUP * 0.9 for group in plan)
    assert all(r.bases <= 100_000_000 / shards.REGIONS_PER_GROUP + 1 for group in plan for r in group)


def test_the_cap_makes_groups_bigger_not_more() -> None:
    contigs = [("chr1", 100_000_000)]
    plan = shards.plan_genome(contigs, [], 1_000_000, 10)
    assert len(plan) == 10
    sizes = [sum(r.bases for r in group) for group in plan]
    assert min(sizes) >= 9_000_000 and max(sizes) <= 11_000_000
    assert_tiles_the_genome(plan, contigs)


def test_bed_targets_are_merged_ordered_as_the_fai_and_never_split(tmp_path: Path) -> None:
    contigs = [("chr2", 1000), ("chr1", 1000)]
    bed = tmp_path / "targets.bed"
    bed.write_text(
        "track name=exome\n# comment\nchr1\t100\t200\tgeneA\nchr1\t150\t300\nchr2\t10\t20\n"
        "chr1\t300\t400\nchr2\t500\t900\n"
    )
    targets = shards.read_bed(bed, contigs)
    assert [(t.contig, t.start, t.end) for t in targets] == [
        ("chr2", 10, 20), ("chr2", 500, 900), ("chr1", 100, 300), ("chr1", 300, 400)
    ]  # fmt: skip
    plan = shards.plan_targets(targets, 250, 100)
    assert len(plan) == 2, "710 bases / 250 is 3 groups, but a tile's targets stay together: 2 tiles"
    assert functools.reduce(operator.iadd, plan, []) == targets, "each target whole, in order"


def test_targets_group_by_tile(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(shards, "TILE_BASES", 100)
    targets = [Region(contig="c", start=start, end=start + 40, bases=40) for start in range(0, 1000, 50)]
    plan = shards.plan_targets(targets, 200, 100)
    assert len(plan) == 4  # 800 bases / 200
    assert functools.reduce(operator.iadd, plan, []) == targets
    for group in plan:  # the targets of a 100 bp tile are in one group
        assert len({t.start // 100 for t in group}) * 2 == len(group)


@pytest.mark.parametrize(
    ("line", "problem"),
    [
        ("chr1 100 200", "line 2: a BED line needs contig, start and end separated by tabs"),
        ("chr1\tx\t200", "line 2: start and end must be whole numbers >= 0"),
        ("chr1\t-5\t200", "line 2: start and end must be whole numbers >= 0"),
        ("chrX\t1\t2", "line 2: contig 'chrX' is not in the reference"),
        ("chr1\t200\t200", "line 2: start 200 is not before end 200"),
        ("chr1\t10\t1001", "line 2: end 1001 is past the end of chr1 (1000 bp)"),
    ],
)
def test_a_bad_bed_line_is_named_with_its_file_and_number(tmp_path: Path, line: str, problem: str) -> None:
    bed = tmp_path / "targets.bed"
    bed.write_text(f"chr1\t1\t5\n{line}\n")
    with pytest.raises(PlanError) as error:
        shards.read_bed(bed, [("chr1", 1000)], name="s3://in/panel.bed")
    assert (error.value.subject, error.value.problem) == ("s3://in/panel.bed", problem)


def test_an_empty_or_binary_bed_is_refused(tmp_path: Path) -> None:
    empty = tmp_path / "empty.bed"
    empty.write_text("# nothing\n")
    with pytest.raises(PlanError, match=r"empty\.bed: the BED file lists no intervals"):
        shards.read_bed(empty, [("chr1", 10)])
    gzipped = tmp_path / "t.bed.gz"
    gzipped.write_bytes(b"\x1f\x8b\x08\x00\xff\xfe")
    with pytest.raises(PlanError, match="not text"):
        shards.read_bed(gzipped, [("chr1", 10)])


def test_chunks_keep_order_and_balance() -> None:
    regions = [Region(contig="c", start=i * 10, end=i * 10 + 10, bases=10) for i in range(10)]
    chunked = shards.chunks(regions, 3)
    assert functools.reduce(operator.iadd, chunked, []) == regions and len(chunked) == 3
    assert shards.chunks(regions[:2], 8) == [[regions[0]], [regions[1]]]


def test_the_plan_round_trips_through_json() -> None:
    plan = shards.plan_genome([("a", 5000), ("b", 3000)], [], 2000, 100)
    import json

    assert shards.read_plan(json.dumps(shards.plan_json(plan))) == plan
