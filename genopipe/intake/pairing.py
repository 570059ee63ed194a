"""Which input objects form a sample (DESIGN.md, data flow 1), by file name alone.

Recognised names, with `.fastq.gz` or `.fq.gz` in any case (`.FASTQ.GZ`):
- `<sample>_R1` / `<sample>_R2`
- `<sample>_1` / `<sample>_2`
- Illumina `<sample>_S<n>_L<lane>_R<1|2>_001` (several lanes are one sample)

A sample is the set of such files with the same sample name in the same folder; it is complete
when every lane has both reads.

A FASTQ that is not gzipped (`.fastq`, `.fq`, `.fastq.bz2`, `.fq.xz`, `.fastq.zst`, ...) is
answered with a clear error rather than ignored: gzip is what every tool of the pipeline reads
while streaming, and an uncompressed 30x genome is ~4x the storage and transfer of its `.gz`.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

from genopipe.contracts import SAMPLE_NAME_MAX, sample_name_problem
from genopipe.s3uri import folder_of

_EXTENSION = r"(?i:\.f(?:ast)?q\.gz)"
# a FASTQ by its name, compressed otherwise or not at all: answered, never silently dropped
_OTHER_FASTQ = re.compile(r"\.f(?:ast)?q(?P<compression>\.[a-z0-9]+)?$", re.IGNORECASE)
_PATTERNS = (
    re.compile(rf"^(?P<sample>.+)_S(?P<number>\d+)_L(?P<lane>\d{{3}})_R(?P<read>[12])_001{_EXTENSION}$"),
    re.compile(rf"^(?P<sample>.+)_R(?P<read>[12]){_EXTENSION}$"),
    re.compile(rf"^(?P<sample>.+)_(?P<read>[12]){_EXTENSION}$"),
)
_READ_SUFFIX = re.compile(r"(?:_S\d+_L\d{3})?_R?[12](?:_001)?$")
_DECOMPRESS = {".bz2": "bzip2 -dc", ".xz": "xz -dc", ".zst": "zstd -dc", ".zip": "unzip -p"}
SAMPLESHEET_NAME = "samplesheet.csv"


class PairingError(ValueError):
    """Names that cannot be paired unambiguously; `str()` names the key and the problem."""

    error_type = "InvalidInputName"  # the Sample Failed event's error type

    def __init__(self, message: str, sample: str | None = None) -> None:
        super().__init__(message)
        self.sample = sample  # the sample it concerns, for the Sample Failed event


class UnsupportedFastq(PairingError):
    """A FASTQ by its name that is not gzipped."""

    error_type = "UnsupportedFormat"


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
            problem = sample_name_problem(sample)
            if problem is not None:
                raise PairingError(f"{key}: sample name {sample!r} {problem}", sample[:SAMPLE_NAME_MAX])
            groups = match.groupdict()
            lane = f"S{groups['number']}_L{groups['lane']}" if groups.get("lane") else ""
            return FastqName(folder, sample, lane, int(match["read"]), key)
    other = _OTHER_FASTQ.search(name)
    if other is not None and (other["compression"] or "").lower() != ".gz":
        stem, compression = name[: other.start()], (other["compression"] or "").lower()
        gzipped = f"{stem}{other.group(0)[: -len(compression) or None]}.gz"
        if compression:
            decompress = _DECOMPRESS.get(compression, "<decompress>")
            what, how = f"{compression} compression", f"`{decompress} {name} | gzip > {gzipped}`"
        else:
            what, how = "an uncompressed FASTQ", f"`gzip {name}`"
        raise UnsupportedFastq(
            f"{key}: {what} is not accepted: genopipe reads gzipped FASTQ (.fastq.gz or .fq.gz); "
            f"gzip it ({how}) and upload {gzipped}",
            _READ_SUFFIX.sub("", stem) or stem,
        )
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
