"""qc: read QC and trimming with fastp, one run per lane; then the align shard plan.

fastp's defaults (quality filtering, PE adapter trimming by overlap) plus `FASTP_OPTIONS`.
Trimmed reads are gzipped at level 1 (`-z 1`): they are read once by `align`, so a smaller file
is not worth the CPU. Reports: `qc/<sample>.fastp.{json,html}`, or `qc/<sample>_L<n>.fastp.{json,html}`
per lane when there are several lanes.

The align shards (`shards/align.json`): shards of at most `shard size` read pairs, where
shard size = max(AlignShardReadPairs, ceil(input read pairs / MaxShards)) (the input pairs are
validate.json's counts; validate runs before qc). A sample whose input fits one shard is one
shard holding every lane as it is (`trimmed/<sample>_L<n>_R{1,2}.fastq.gz`). Otherwise each lane
larger than a shard is cut, as fastp streams it, into parts of exactly `shard size` trimmed pairs
(`seqkit split2 --by-size`, `trimmed/<sample>_L<n>_P<k>_R{1,2}.fastq.gz`), and the parts (and
the smaller lanes) are packed into shards of at most `shard size` pairs (first-fit decreasing).
fastp's own `--split_by_lines` does not do this: Debian's fastp 0.23.2 cuts at its 1000-read
packs, so the cut depends on the thread count (EBOV, 2,500 pairs a file: 2962/2998/2993/355
pairs with 1 thread, 2974/2350/1989/1995 + an empty, truncated gzip with 4).

Each lane's input is deleted from scratch once trimmed, and its trimmed copy once staged, so
scratch holds about one lane at a time.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from genopipe.aws import s3
from genopipe.layout import VALIDATE_JSON, shard_plan_key
from genopipe.s3uri import S3Uri
from genopipe.steps.runner import Step
from genopipe.steps.tools import StepError, Tool

TRIMMED_COMPRESSION = "1"
# fastp's options beyond its defaults. Not `--detect_adapter_for_pe`: measured (bench/scale.py,
# BENCHMARKS.md "Genome scale"), adapter sequence detection is a fixed ~15 CPU-s per fastp run
# (3.2x fastp's CPU on 252k real pairs) and its output was byte-identical without it on the
# HG002 reads and the simulated sample: fastp's default PE overlap analysis already trims
# read-through, and the aligners soft-clip what is left. The HG002 calls were identical with
# detection, without it and with no trimming at all.
FASTP_OPTIONS: tuple[str, ...] = ()


@dataclass(frozen=True)
class ReadsPart:
    """Trimmed read pairs of one lane (the whole lane, or one part of it), staged."""

    lane: int
    r1: str
    r2: str
    read_pairs: int

    def entry(self) -> dict[str, Any]:
        return {"lane": self.lane, "r1": self.r1, "r2": self.r2, "read_pairs": self.read_pairs}


def shard_size(input_read_pairs: int, shard_read_pairs: int, max_shards: int) -> int:
    """Read pairs per align shard: the stack's AlignShardReadPairs, raised so that at most
    `max_shards` shards cover the input."""
    return max(shard_read_pairs, math.ceil(input_read_pairs / max_shards), 1)


def pack(parts: list[ReadsPart], size: int) -> list[list[ReadsPart]]:
    """Parts into as few shards of at most `size` read pairs as first-fit decreasing finds: the
    full-size parts of cut lanes get a shard each, the rests of the lanes (and small lanes) share.
    Deterministic (ties keep the parts' order); within a shard, parts keep their order."""
    order = sorted(range(len(parts)), key=lambda index: -parts[index].read_pairs)
    shards: list[list[int]] = []
    held: list[int] = []
    for index in order:
        pairs = parts[index].read_pairs
        target = next((n for n, load in enumerate(held) if load + pairs <= size), None)
        if target is None:
            shards.append([])
            held.append(0)
            target = len(shards) - 1
        shards[target].append(index)
        held[target] += pairs
    return [[parts[index] for index in sorted(shard)] for shard in shards]


def trimmed_pairs(fastp_json: Path) -> int:
    """Read pairs fastp kept (its JSON counts reads of both mates)."""
    try:
        report = json.loads(fastp_json.read_text())
        return int(report["summary"]["after_filtering"]["total_reads"]) // 2
    except (OSError, ValueError, KeyError, TypeError) as error:
        raise StepError(
            fastp_json.name, f"fastp report without after_filtering.total_reads: {error}"
        ) from None


def run(step: Step) -> None:
    lanes = step.params.reads
    size = 0
    input_pairs: list[int] = []
    parts: list[ReadsPart] = []
    for number, lane in enumerate(lanes, start=1):
        r1, r2 = step.fetch_lane(number, lane)  # first: a replaced input is named before anything else
        if not input_pairs:
            validated = s3.read_json(step.staged(VALIDATE_JSON))
            input_pairs = [int(entry["records"]) for entry in validated["lanes"]]
            total = int(validated["read_pairs"])
            size = shard_size(total, step.params.align_shard_read_pairs, step.params.max_shards)
            one_shard = total <= size
        stem = step.files.fastp_stem(number, len(lanes))
        json_key, html_key = step.files.fastp_reports(number, len(lanes))
        json_report, html_report = step.path(json_key), step.path(html_key)
        reports = [
            "--json",
            str(json_report),
            "--html",
            str(html_report),
            "--report_title",
            f"{stem} fastp report",
        ]
        trim = [
            "fastp",
            "--in1",
            str(r1),
            "--in2",
            str(r2),
            *FASTP_OPTIONS,
            "--thread",
            str(step.threads),
            *reports,
        ]
        if one_shard or input_pairs[number - 1] <= size:
            out1_key, out2_key = step.files.trimmed(number)
            out1, out2 = step.path(out1_key), step.path(out2_key)
            outputs = ["--out1", str(out1), "--out2", str(out2), "--compression", TRIMMED_COMPRESSION]
            step.pipe(Tool([*trim, *outputs], lane.r1))
            pairs = trimmed_pairs(json_report)
            parts.append(_stage(number, out1, step.staged(out1_key), out2, step.staged(out2_key), pairs))
        else:
            parts += _trim_into_parts(step, number, lane.r1, trim, json_report, size)
        for path in (r1, r2):
            path.unlink()  # scratch: the lane's input is trimmed
        s3.upload(json_report, step.staged(json_key), content_type="application/json")
        s3.upload(html_report, step.staged(html_key), content_type="text/html")

    if not any(part.read_pairs for part in parts):
        raise StepError(lanes[0].r1, f"fastp kept no read pairs of {sum(input_pairs)}: nothing to align")
    shards = pack([part for part in parts if part.read_pairs], size)
    plan = {
        "shard_read_pairs": size,
        "shards": [
            {"read_pairs": sum(p.read_pairs for p in shard), "parts": [p.entry() for p in shard]}
            for shard in shards
        ],
    }
    s3.write_json(step.staged(shard_plan_key("align")), plan)


def _stage(lane: int, r1: Path, r1_uri: S3Uri, r2: Path, r2_uri: S3Uri, pairs: int) -> ReadsPart:
    s3.upload(r1, r1_uri)
    s3.upload(r2, r2_uri)
    for path in (r1, r2):
        path.unlink()
    return ReadsPart(lane=lane, r1=str(r1_uri), r2=str(r2_uri), read_pairs=pairs)


def _trim_into_parts(
    step: Step, number: int, subject: S3Uri, trim: list[str], json_report: Path, size: int
) -> list[ReadsPart]:
    """fastp's trimmed pairs, uncompressed through two named pipes, cut by `seqkit split2` into
    parts of exactly `size` pairs (the last one the rest) as they stream: no trimmed copy of the
    lane on disk, and no gzip round trip (measured on 202k real pairs: split2 of fastp's level-1
    gzip output cost 4.0 CPU-s, 28% of fastp's 14.5; from the pipes 1.9 CPU-s, and fastp
    saves its own compression)."""
    folder = step.path("split", f"L{number}", "x").parent
    fifos = [folder / "R1.fastq", folder / "R2.fastq"]
    for fifo in fifos:
        os.mkfifo(fifo)
    parts_dir = folder / "parts"
    split = [
        "seqkit", "split2", "-1", str(fifos[0]), "-2", str(fifos[1]), "--by-size", str(size),
        "--out-dir", str(parts_dir), "--extension", ".gz", "--threads", str(step.threads), "--quiet",
    ]  # fmt: skip
    step.side_by_side(
        step.pipeline(Tool(split, subject)),
        step.pipeline(Tool([*trim, "--out1", str(fifos[0]), "--out2", str(fifos[1])], subject)),
    )
    pairs = trimmed_pairs(json_report)
    count = math.ceil(pairs / size)
    # seqkit names them <input stem>.part_001.fastq.gz, ... (3 digits, more past 999)
    firsts, seconds = _parts(parts_dir, "R1"), _parts(parts_dir, "R2")
    if len(firsts) != count or len(seconds) != count:
        raise StepError(subject, f"seqkit split2 wrote {len(firsts)}/{len(seconds)} parts, expected {count}")
    staged = []
    for index, (r1, r2) in enumerate(zip(firsts, seconds, strict=True)):
        key1, key2 = step.files.trimmed_part(number, index + 1)
        part_pairs = min(size, pairs - index * size)
        staged.append(_stage(number, r1, step.staged(key1), r2, step.staged(key2), part_pairs))
    return staged


def _parts(folder: Path, stem: str) -> list[Path]:
    found = folder.glob(f"{stem}.part_*.fastq.gz") if folder.is_dir() else iter(())
    return sorted(found, key=lambda path: int(path.name.removeprefix(f"{stem}.part_").split(".")[0]))
