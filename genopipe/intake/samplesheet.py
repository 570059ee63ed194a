"""`samplesheet.csv` in nf-core's form: columns `sample,fastq_1,fastq_2`, optional `ploidy`,
`caller` and `intervals` (a BED of the targets to call, e.g. an exome's: an s3:// URI or a key
relative to the sheet; it overrides the stack's `Intervals`); one row
per lane, several rows with the same sample are that sample's lanes (in row order).

FASTQ paths are `s3://bucket/key` URIs or keys relative to the sample sheet's folder. Every
problem is reported as one line naming the file and the row: `<sheet>: row 3: fastq_2 is empty`.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from typing import cast, get_args

from genopipe.contracts import Caller, sample_name_problem

REQUIRED_COLUMNS = ("sample", "fastq_1", "fastq_2")
CALLERS: tuple[str, ...] = get_args(Caller)
# rows (lanes) one sheet may hold: an intake invocation starts or records every sample of its sheet
# (~3 AWS calls, ~50 ms, per sample) within the Lambda's 120 s; split a larger run into folders
MAX_ROWS = 1000
_FASTQ_SUFFIXES = (".fastq.gz", ".fq.gz")
_BED_SUFFIXES = (".bed", ".bed.gz")


class SamplesheetError(ValueError):
    """A sample sheet that cannot be used; `str()` is one line naming the file and the row."""


@dataclass(frozen=True)
class SheetSample:
    sample: str
    lanes: tuple[tuple[str, str], ...]  # (R1, R2) as s3:// URIs, in row order
    ploidy: int | None  # None: the pipeline default
    caller: Caller | None = None  # None: the stack's `Caller`
    intervals: str | None = None  # s3:// URI of a BED; None: the stack's `Intervals`


@dataclass(frozen=True)
class SampleSheet:
    uri: str
    samples: tuple[SheetSample, ...]

    def uses(self, uri: str) -> bool:
        return any(uri in lane for sample in self.samples for lane in sample.lanes)


def _resolve(path: str, sheet_uri: str, where: str) -> str:
    if path.startswith("s3://"):
        if len(path) <= len("s3://") or "/" not in path[len("s3://") :]:
            raise SamplesheetError(f"{where}: {path!r} is not an s3://bucket/key URI")
        return path
    if path.startswith("/") or "://" in path:
        raise SamplesheetError(f"{where}: {path!r} must be an s3:// URI or a key relative to the sheet")
    if ".." in path.split("/"):
        raise SamplesheetError(f"{where}: {path!r} must not contain '..'")
    return sheet_uri[: sheet_uri.rfind("/") + 1] + path.removeprefix("./")


def parse_samplesheet(text: str, uri: str) -> SampleSheet:
    """Parse and validate a sample sheet read from `uri` (an s3:// URI, used in messages and to
    resolve relative paths)."""
    reader = csv.DictReader(io.StringIO(text.lstrip("\ufeff")))
    columns = [c.strip() for c in reader.fieldnames or []]
    missing = [c for c in REQUIRED_COLUMNS if c not in columns]
    if missing:
        needed = ", ".join(missing)
        raise SamplesheetError(f"{uri}: row 1: missing column(s) {needed} (need sample,fastq_1,fastq_2)")
    lanes: dict[str, list[tuple[str, str]]] = {}
    ploidies: dict[str, int | None] = {}
    callers: dict[str, Caller | None] = {}
    intervals: dict[str, str | None] = {}
    seen: dict[str, int] = {}
    for row_number, raw in enumerate(reader, start=2):
        if row_number - 1 > MAX_ROWS:
            raise SamplesheetError(
                f"{uri}: row {row_number}: more than {MAX_ROWS} rows; split the run into sample sheets "
                f"of at most {MAX_ROWS} rows, each in its own folder"
            )
        row = {(k or "").strip(): (v or "").strip() for k, v in raw.items() if k is not None}
        where = f"{uri}: row {row_number}"
        if not any(row.values()):
            continue
        sample = row["sample"]
        problem = sample_name_problem(sample)
        if problem is not None:
            raise SamplesheetError(
                f"{where}: sample {sample!r} {problem}" if sample else f"{where}: sample {problem}"
            )
        pair = []
        for column in ("fastq_1", "fastq_2"):
            value = row[column]
            if not value:
                raise SamplesheetError(f"{where}: {column} is empty (genopipe needs paired-end reads)")
            if not value.lower().endswith(_FASTQ_SUFFIXES):
                raise SamplesheetError(f"{where}: {column} {value!r} does not end in .fastq.gz or .fq.gz")
            resolved = _resolve(value, uri, where)
            if resolved in seen:
                raise SamplesheetError(f"{where}: {value!r} is already listed in row {seen[resolved]}")
            seen[resolved] = row_number
            pair.append(resolved)
        ploidy = _ploidy(row.get("ploidy", ""), where)
        if sample in ploidies and ploidies[sample] != ploidy:
            raise SamplesheetError(f"{where}: ploidy {ploidy} differs from an earlier row of {sample!r}")
        ploidies[sample] = ploidy
        caller = _caller(row.get("caller", ""), where)
        if sample in callers and callers[sample] != caller:
            raise SamplesheetError(f"{where}: caller {caller} differs from an earlier row of {sample!r}")
        callers[sample] = caller
        bed = _intervals(row.get("intervals", ""), uri, where)
        if sample in intervals and intervals[sample] != bed:
            raise SamplesheetError(f"{where}: intervals {bed} differs from an earlier row of {sample!r}")
        intervals[sample] = bed
        lanes.setdefault(sample, []).append((pair[0], pair[1]))
    if not lanes:
        raise SamplesheetError(f"{uri}: no samples (the sheet has a header but no rows)")
    samples = tuple(SheetSample(s, tuple(lanes[s]), ploidies[s], callers[s], intervals[s]) for s in lanes)
    return SampleSheet(uri, samples)


def _ploidy(value: str, where: str) -> int | None:
    if not value:
        return None
    if value not in {"1", "2"}:
        raise SamplesheetError(f"{where}: ploidy {value!r} must be 1 or 2")
    return int(value)


def _caller(value: str, where: str) -> Caller | None:
    if not value:
        return None
    if value not in CALLERS:
        raise SamplesheetError(f"{where}: caller {value!r} must be {' or '.join(CALLERS)}")
    return cast(Caller, value)


def _intervals(value: str, sheet_uri: str, where: str) -> str | None:
    if not value:
        return None
    if not value.lower().endswith(_BED_SUFFIXES):
        raise SamplesheetError(f"{where}: intervals {value!r} does not end in .bed or .bed.gz")
    return _resolve(value, sheet_uri, where)
