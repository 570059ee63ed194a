"""qc's align shard plan: the shard size and the packing of lane parts into shards."""

from __future__ import annotations

from genopipe.steps.qc import ReadsPart, pack, shard_size


def part(lane: int, pairs: int) -> ReadsPart:
    return ReadsPart(lane=lane, r1=f"s3://o/L{lane}_R1", r2=f"s3://o/L{lane}_R2", read_pairs=pairs)


def test_the_shard_size_is_the_parameter_raised_to_keep_within_the_cap() -> None:
    assert shard_size(9_355, 2_500, 100) == 2_500  # EBOV, AlignShardReadPairs=2500: 4 shards
    assert shard_size(400_000_000, 10_000_000, 100) == 10_000_000  # 30x WGS: 40 shards
    assert shard_size(4_000_000_000, 10_000_000, 100) == 40_000_000  # beyond the cap: 100 shards
    assert shard_size(0, 10, 100) == 10


def test_parts_are_packed_into_few_shards_of_at_most_the_size() -> None:
    # a lane cut into parts of exactly the size, and two small lanes that share one shard
    parts = [part(1, 2500), part(1, 2500), part(1, 2500), part(1, 1808), part(2, 300), part(3, 200)]
    shards = pack(parts, 2500)
    assert [[p.read_pairs for p in shard] for shard in shards] == [[2500], [2500], [2500], [1808, 300, 200]]
    assert [p for shard in shards for p in shard] == parts  # every part once
    assert pack([part(1, 10), part(2, 10)], 2500) == [[part(1, 10), part(2, 10)]]
    # the rests of two cut lanes share a shard, though a full part of lane 2 lies between them
    cut = [part(1, 3001), part(1, 3001), part(1, 1499), part(2, 3001), part(2, 3001), part(2, 1498)]
    assert [[(p.lane, p.read_pairs) for p in shard] for shard in pack(cut, 3001)] == [
        [(1, 3001)],
        [(1, 3001)],
        [(2, 3001)],
        [(2, 3001)],
        [(1, 1499), (2, 1498)],
    ]
