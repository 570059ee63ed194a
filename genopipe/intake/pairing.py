"""Which input objects form a sample (DESIGN.md, data flow 1), by file name alone.

Recognised names, with `.fastq.gz` or `.fq.gz`:
- `<sample>_R1` / `<sample>_R2`
- `<sample>_1` / `<sample>_2`
- Illumina `<sample>_S<n>_L<lane>_R<1|2>_001` (several lanes are one sample)

A sample is the set of such files with the same sample name in the same folder; it is complete
when every lane has both reads.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

from genopipe.contracts import SAMPLE_PATTERN
from genopipe.s3uri import folder_of

_EXTENSION = r"\.f(?:ast)?q\.gz"
_PATTERNS = (
    re.compile(rf"^(?P<sample>.+)_S(?P<number>\d+)_L(?P<lane>\d{{3}})_R(?P<read>[12])_001{_EXTENSION}$"),
    re.compile(rf"^(?P<sample>.+)_R(?P<read>[12]){_EXTENSION}$"),
    re.compile(rf"^(?P<sample>.+)_(?P<read>[12]){_EXTENSION}$"),
)
SAMPLESHEET_NAME = "samplesheet.csv"


class PairingError(ValueError):
    """Names that cannot be paired unambiguously; `str()` names the key and the problem."""

    def __init__(self, message: str, sample: str | None = None) -> None:
        super().__init__(message)
        self.sample = sample  # the sample it concerns, for the Sample Failed event


@dataclass(frozen=True, order=True)
class FastqName:
    folder: str  # the key up to and including its last `/` ("" at the bucket root)
    sample: str
    lane: str  # "S1_L001" for Illumina names, "" otherwise
    read: int
    key: str


@dataclass(frozen=True)
class PairedSample:
    sample: str
    lanes: tuple[tuple[str, str], ...]  # (R1 key, R2 key) per lane, in lane order

    @property
    def keys(self) -> list[str]:
        return [key for lane in self.lanes for key in lane]


def is_samplesheet(key: str) -> bool:
    return key.rsplit("/", 1)[-1] == SAMPLESHEET_NAME


def parse_fastq_key(key: str) -> FastqName | None:
    """The sample, lane and read a key names, or None if it follows none of the patterns."""
    folder, name = folder_of(key), key.rsplit("/", 1)[-1]
    for pattern in _PATTERNS:
        match = pattern.match(name)
        if match:
            sample = match["sample"]
            if not re.match(SAMPLE_PATTERN, sample):
                raise PairingError(
                    f"{key}: sample name {sample!r} may only hold letters, digits, . _ -", sample
                )
            groups = match.groupdict()
            lane = f"S{groups['number']}_L{groups['lane']}" if groups.get("lane") else ""
            return FastqName(folder, sample, lane, int(match["read"]), key)
    return None


def pair_sample(trigger: FastqName, keys: Iterable[str]) -> PairedSample | None:
    """The sample `trigger` belongs to, if all its lanes are now paired among `keys` (the listing
    of the trigger's folder, trigger included); None while a mate is missing."""
    reads: dict[tuple[str, int], str] = {}
    for key in {*keys, trigger.key}:
        if folder_of(key) != trigger.folder:
            continue
        try:
            name = parse_fastq_key(key)
        except PairingError:
            continue  # another sample's bad name is that sample's problem
        if name is None or name.sample != trigger.sample:
            continue
        slot = (name.lane, name.read)
        if slot in reads and reads[slot] != key:
            first, second = sorted((reads[slot], key))
            raise PairingError(
                f"{second}: sample {trigger.sample!r} already has R{name.read} {first}", trigger.sample
            )
        reads[slot] = key
    lanes = sorted({lane for lane, _ in reads})
    if "" in lanes and len(lanes) > 1:
        raise PairingError(
            f"{trigger.key}: sample {trigger.sample!r} mixes Illumina and plain names", trigger.sample
        )
    if any((lane, 1) not in reads or (lane, 2) not in reads for lane in lanes):
        return None
    return PairedSample(trigger.sample, tuple((reads[(lane, 1)], reads[(lane, 2)]) for lane in lanes))
