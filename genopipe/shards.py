"""Region planning for scatter-gather calling: which parts of the reference each call job takes.

A plan is a list of region groups (`shards/<step>.json` in staging, docs/internals.md): call job
i of the array takes group i. Regions are BED intervals (0-based, end excluded), never overlap,
and follow the order of the reference's .fai, so the parts a call job writes concatenate in plan
order. Two ways to plan:

- Whole genome (`plan_genome`): the contigs of the .fai tile into regions. A cut goes in the
  middle of an N gap of at least `MIN_CUT_GAP` bp where there is one (no read, nor read pair,
  crosses it, so nothing is called across a cut); stretches longer than a region's share are cut
  evenly (the call step owns each record by its position before normalisation, so any cut gives
  the records of an unsharded call). Groups are balanced by *real* (non-N) bases: GRCh38's
  ~150 Mb of N cost nothing to call, and would skew a balance by length.
- Targets (`plan_targets`, exomes and panels): the merged targets of a BED file, each target
  whole in one group, groups balanced by target bases.

A group holds several regions (at most ~1/`REGIONS_PER_GROUP` of its bases each, but not under
`MIN_REGION_BASES`) so that a call job can run one single-threaded caller per region on each of
its vCPUs (`chunks`). The number of groups is the real bases over `call_shard_bases`, rounded,
between 1 and `max_shards` (beyond the cap groups grow). A small reference therefore stays one
group (EBOV, 19 kb, with the default 100 Mb).

No AWS here: the reference step scans the FASTA (`scan_gaps`), caches `gaps.bed` and writes the
plan; the call step reads it.
"""

from __future__ import annotations

import bisect
import itertools
import math
import re
from collections.abc import Iterable, Iterator
from pathlib import Path

from pydantic import BaseModel, ConfigDict, TypeAdapter

MIN_CUT_GAP = 1_000  # an N run this long is longer than a fragment: no read pair spans it
REGIONS_PER_GROUP = 32  # enough regions for a call job's vCPUs to stay busy to the end
MIN_REGION_BASES = 1_000_000  # below this a process's start (index loads) starts to show
TILE_BASES = 250_000  # freebayes runs each tile of this grid from the tile's start (steps/call.py)
_N_RUN = re.compile(rb"[Nn]+")


class PlanError(ValueError):
    """A bad intervals file or reference index: `subject` is the file, `problem` says what and where."""

    def __init__(self, subject: object, problem: str) -> None:
        super().__init__(f"{subject}: {problem}")
        self.subject = str(subject)
        self.problem = problem


class Region(BaseModel):
    """A BED interval (0-based start, end excluded) and its real (non-N) bases."""

    model_config = ConfigDict(frozen=True)
    contig: str
    start: int
    end: int
    bases: int  # non-N bases (all of them for targets)

    def bed(self) -> str:
        return f"{self.contig}\t{self.start}\t{self.end}\n"


Group = list[Region]
PLAN = TypeAdapter(list[list[Region]])  # the JSON of `shards/call.json`


def read_fai(path: Path) -> list[tuple[str, int]]:
    """(contig, length) in the reference's order, from a samtools .fai."""
    contigs = []
    for number, line in enumerate(path.read_text().splitlines(), start=1):
        if not line.strip():
            continue
        fields = line.split("\t")
        if len(fields) < 2 or not fields[1].isdigit():
            raise PlanError(path.name, f"line {number}: not a .fai line (name, length, ...)")
        contigs.append((fields[0], int(fields[1])))
    if not contigs:
        raise PlanError(path.name, "the reference index lists no contigs")
    return contigs


def scan_gaps(fasta: Path) -> Iterator[tuple[str, int, int]]:
    """The N runs of a plain FASTA as (contig, start, end), one pass, one contig in memory at a
    time (a regex over a contig's joined sequence: ~10x faster than a loop over its bases)."""
    name: str | None = None
    lines: list[bytes] = []

    def runs() -> Iterator[tuple[str, int, int]]:
        if name is not None:
            for match in _N_RUN.finditer(b"".join(lines)):
                yield name, match.start(), match.end()

    with fasta.open("rb") as handle:
        for line in handle:
            if line.startswith(b">"):
                yield from runs()
                name = line[1:].split(None, 1)[0].decode() if line[1:].strip() else ""
                lines = []
            else:
                lines.append(line.rstrip(b"\r\n"))
    yield from runs()


def write_bed(path: Path, intervals: Iterable[tuple[str, int, int]]) -> int:
    count = 0
    with path.open("w") as handle:
        for contig, start, end in intervals:
            handle.write(f"{contig}\t{start}\t{end}\n")
            count += 1
    return count


def read_gaps(path: Path) -> list[tuple[str, int, int]]:
    """A `write_bed` file back (the reference step's own, so not checked like a user's BED)."""
    runs = []
    for line in path.read_text().splitlines():
        contig, start, end = line.split("\t")[:3]
        runs.append((contig, int(start), int(end)))
    return runs


def read_bed(path: Path, contigs: list[tuple[str, int]], name: str | None = None) -> list[Region]:
    """A BED file's intervals, checked against the reference and merged where they overlap, in
    the .fai's order. Errors name the file (`name`, default the path's) and the line."""
    label = name or path.name
    lengths = dict(contigs)
    order = {contig: index for index, (contig, _) in enumerate(contigs)}
    intervals: list[tuple[int, int, int]] = []
    try:
        text = path.read_text()
    except UnicodeDecodeError:
        raise PlanError(label, "not a BED file: not text (a compressed BED must be decompressed)") from None
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip() or line.startswith(("#", "track", "browser")):
            continue
        fields = line.split("\t")
        if len(fields) < 3:
            raise PlanError(label, f"line {number}: a BED line needs contig, start and end separated by tabs")
        contig, start_text, end_text = fields[0], fields[1].strip(), fields[2].strip()
        if not (start_text.isdigit() and end_text.isdigit()):
            raise PlanError(label, f"line {number}: start and end must be whole numbers >= 0")
        start, end = int(start_text), int(end_text)
        if contig not in lengths:
            raise PlanError(label, f"line {number}: contig {contig!r} is not in the reference")
        if start >= end:
            raise PlanError(label, f"line {number}: start {start} is not before end {end}")
        if end > lengths[contig]:
            raise PlanError(
                label, f"line {number}: end {end} is past the end of {contig} ({lengths[contig]} bp)"
            )
        intervals.append((order[contig], start, end))
    if not intervals:
        raise PlanError(label, "the BED file lists no intervals")
    merged: list[list[int]] = []
    for index, start, end in sorted(intervals):
        if merged and merged[-1][0] == index and start < merged[-1][2]:
            merged[-1][2] = max(merged[-1][2], end)
        else:
            merged.append([index, start, end])
    return [Region(contig=contigs[i][0], start=s, end=e, bases=e - s) for i, s, e in merged]


def group_count(bases: int, call_shard_bases: int, max_shards: int) -> int:
    return max(1, min(max_shards, round(bases / call_shard_bases)))


def balance(regions: list[Region], count: int) -> list[Group]:
    """Consecutive regions into `count` groups (fewer only when there are fewer regions) of about
    equal bases: the k-th cut is the region boundary nearest to k/count of the bases."""
    count = min(count, len(regions))
    if count <= 1:
        return [list(regions)] if regions else []
    bounds = [0, *itertools.accumulate(region.bases for region in regions)]
    cuts = [0]
    for k in range(1, count):
        goal = bounds[-1] * k / count
        lowest, highest = cuts[-1] + 1, len(regions) - (count - k)  # room for the groups still to come
        near = bisect.bisect_left(bounds, goal)
        candidates = {min(max(index, lowest), highest) for index in (near - 1, near)}
        cuts.append(min(candidates, key=lambda index: (abs(bounds[index] - goal), index)))
    cuts.append(len(regions))
    return [regions[start:end] for start, end in itertools.pairwise(cuts)]


def plan_targets(targets: list[Region], call_shard_bases: int, max_shards: int) -> list[Group]:
    """Exomes and panels: whole targets (merged, in .fai order) into balanced groups; the targets
    that start in one `TILE_BASES` tile stay in one group (call.py runs freebayes per tile)."""
    tiles: dict[tuple[str, int], list[Region]] = {}
    for target in targets:
        tiles.setdefault((target.contig, target.start // TILE_BASES), []).append(target)
    units = [
        Region(
            contig=contig, start=members[0].start, end=members[-1].end, bases=sum(t.bases for t in members)
        )
        for (contig, _), members in tiles.items()
    ]
    count = group_count(sum(t.bases for t in targets), call_shard_bases, max_shards)
    members_of = {
        (unit.contig, unit.start): members for unit, members in zip(units, tiles.values(), strict=True)
    }
    return [
        [t for unit in group for t in members_of[(unit.contig, unit.start)]]
        for group in balance(units, count)
    ]


def plan_genome(
    contigs: list[tuple[str, int]], gaps: list[tuple[str, int, int]], call_shard_bases: int, max_shards: int
) -> list[Group]:
    """Whole genome: the contigs tiled into regions, cut in N gaps where there are some, grouped
    by real bases (see the module's docstring)."""
    by_contig: dict[str, list[tuple[int, int]]] = {}
    for contig, start, end in gaps:
        by_contig.setdefault(contig, []).append((start, end))
    for runs in by_contig.values():
        runs.sort()
    real = sum(length for _, length in contigs) - sum(e - s for _, s, e in gaps)
    count = group_count(real, call_shard_bases, max_shards)
    share = max(real / count, 1.0)
    region_bases = share / max(1, min(REGIONS_PER_GROUP, int(share // MIN_REGION_BASES)))  # share / k
    regions = [
        region
        for contig, length in contigs
        for region in _tile(contig, length, by_contig.get(contig, []), region_bases)
    ]
    return balance(regions, count)


def _tile(contig: str, length: int, gaps: list[tuple[int, int]], region_bases: float) -> list[Region]:
    """One contig as consecutive regions: cut in the middle of long inner gaps, then stretches
    that are too long cut evenly, and neighbouring short stretches joined back up."""
    starts = [start for start, _ in gaps]

    def real_bases(start: int, end: int) -> int:
        n = 0
        for gap_start, gap_end in gaps[max(0, bisect.bisect_right(starts, start) - 1) :]:
            if gap_start >= end:
                break
            n += max(0, min(end, gap_end) - max(start, gap_start))
        return end - start - n

    def position_of(start: int, real: int) -> int:
        """The position `real` non-N bases after `start` (cuts by real bases, not length)."""
        position = start
        for gap_start, gap_end in gaps[max(0, bisect.bisect_right(starts, start) - 1) :]:
            if gap_end <= position:
                continue
            if gap_start - position >= real:
                break
            real -= max(0, gap_start - position)
            position = max(position, gap_end)
        return position + real

    cuts = [
        (start + end) // 2
        for start, end in gaps
        if end - start >= MIN_CUT_GAP and start > 0 and end < length  # not the contig's N ends
    ]
    bounds = [0, *cuts, length]
    stretches = [(a, b, real_bases(a, b)) for a, b in itertools.pairwise(bounds) if b > a]
    pieces: list[tuple[int, int, int]] = []
    for start, end, bases in stretches:
        parts = max(1, math.ceil(bases / region_bases))
        edges = [start, *(position_of(start, bases * k // parts) for k in range(1, parts)), end]
        for a, b in itertools.pairwise(edges):
            piece = (a, b, real_bases(a, b))
            if pieces and pieces[-1][2] + piece[2] <= region_bases:
                pieces[-1] = (pieces[-1][0], b, pieces[-1][2] + piece[2])
            else:
                pieces.append(piece)
    return [Region(contig=contig, start=a, end=b, bases=n) for a, b, n in pieces]


def chunks(regions: list[Region], count: int) -> list[Group]:
    """A group's regions as at most `count` runs of consecutive regions (one caller process each)."""
    return balance(regions, max(1, min(count, len(regions))))


def read_plan(text: str | bytes) -> list[Group]:
    return PLAN.validate_json(text)


def plan_json(plan: list[Group]) -> list[list[dict[str, object]]]:
    return [[region.model_dump() for region in group] for group in plan]
