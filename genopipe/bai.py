"""Which bytes of a BAM a region query reads, from its BAI index (SAM/BAM specification, 5.2).

A call job needs its regions' reads only: a 30x genome's BAM is ~60 GB, a 100 Mb group's share
~2 GB. `byte_ranges` lists the byte ranges that htslib's region iterator can touch: the header,
the chunks of every bin overlapping each region, each extended by one whole BGZF block (the iterator reads
the block at a chunk's end before it sees it is past the end), and the EOF marker. Written at
their own offsets into a sparse file, they make a BAM that the BAI serves unchanged for those
regions; a read outside them meets zeros, which no BGZF block starts with, so htslib fails
loudly rather than reading wrong data.
"""

from __future__ import annotations

import struct
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

MAX_BLOCK = 65536  # a BGZF block is at most 64 KiB compressed
EOF_BLOCK = 28
_PSEUDO_BIN = 37450  # per-reference metadata, not reads


class BaiError(ValueError):
    pass


@dataclass(frozen=True)
class ReferenceIndex:
    bins: dict[int, list[tuple[int, int]]]  # bin -> chunks (virtual offsets, end excluded)
    linear: list[int]  # smallest virtual offset of a read overlapping each 16 kb window


def read_bai(path: Path) -> list[ReferenceIndex]:
    """The index of every reference sequence, in the BAM header's order."""
    data = path.read_bytes()
    if data[:4] != b"BAI\x01":
        raise BaiError(f"{path.name}: not a BAI index")
    (n_ref,) = struct.unpack_from("<i", data, 4)
    offset = 8
    references = []
    for _ in range(n_ref):
        (n_bin,) = struct.unpack_from("<i", data, offset)
        offset += 4
        bins: dict[int, list[tuple[int, int]]] = {}
        for _ in range(n_bin):
            bin_number, n_chunk = struct.unpack_from("<Ii", data, offset)
            offset += 8
            flat = struct.unpack_from(f"<{2 * n_chunk}Q", data, offset)
            offset += 16 * n_chunk
            if bin_number != _PSEUDO_BIN:
                bins[bin_number] = list(zip(flat[0::2], flat[1::2], strict=True))
        (n_intv,) = struct.unpack_from("<i", data, offset)
        offset += 4
        linear = list(struct.unpack_from(f"<{n_intv}Q", data, offset))
        offset += 8 * n_intv
        references.append(ReferenceIndex(bins, linear))
    return references


def overlapping_bins(start: int, end: int) -> list[int]:
    """The bins that may hold reads overlapping [start, end) (the specification's reg2bins)."""
    end -= 1
    bins = [0]
    for first, shift in ((1, 26), (9, 23), (73, 20), (585, 17), (4681, 14)):
        bins.extend(range(first + (start >> shift), first + (end >> shift) + 1))
    return bins


def byte_ranges(
    index: list[ReferenceIndex], regions: Iterable[tuple[int, int, int]], size: int
) -> list[tuple[int, int]]:
    """Merged byte ranges [start, end) of the BAM for (reference number, start, end) regions."""
    ranges = [(max(0, size - EOF_BLOCK), size)]
    first_read = size
    for reference in index:
        for chunks in reference.bins.values():
            for begin, _ in chunks:
                first_read = min(first_read, begin >> 16)
    ranges.append((0, min(size, first_read + MAX_BLOCK)))  # the header
    for number, start, end in regions:
        # every chunk, also those ending before the region's linear-index offset: htslib drops
        # those, but dropping them here too made 2 of 16 call jobs of a 2.9M-pair sample read a
        # block that was not fetched ("Invalid BGZF header"; bench/shards.py), so no byte is saved
        # on the guess of which offset htslib starts from
        reference = index[number]
        for bin_number in overlapping_bins(start, end):
            for begin, stop in reference.bins.get(bin_number, []):
                ranges.append((begin >> 16, min(size, (stop >> 16) + MAX_BLOCK)))
    return merge(ranges, gap=0)


def merge(ranges: list[tuple[int, int]], gap: int) -> list[tuple[int, int]]:
    """Sorted, overlapping (or within `gap` bytes of each other) ranges joined."""
    merged: list[tuple[int, int]] = []
    for start, end in sorted(ranges):
        if merged and start <= merged[-1][1] + gap:
            merged[-1] = (merged[-1][0], max(merged[-1][1], end))
        else:
            merged.append((start, end))
    return merged
