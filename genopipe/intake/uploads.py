"""Files still being uploaded: which unfinished multipart uploads belong to a sample, and which of
them still show progress.

A 50 GB FASTQ uploaded at 100 Mbps takes ~67 minutes (50e9 B x 8 / 100e6 bit/s = 4,000 s), and
until its CompleteMultipartUpload it is not an object: ListObjects does not show it and no S3
event announces it. Only ListMultipartUploads does. So a sample whose mate (or another lane, or a
file its samplesheet.csv lists) is still uploading must neither start without it nor be reported
"mate missing" (genopipe.intake.admission asks this module).

An upload can be abandoned (the client died; nothing aborts it until the bucket's lifecycle rule
does, days later), so "still uploading" means *showing progress*: its newest part (ListParts), or
its start when it has none, is younger than the stall limit (the mate timeout), and the sample has
not waited longer than the cap. A stalled upload counts as no upload at all.

No AWS in here: S3 is reached through the `UploadsInProgress` port (genopipe.aws.input_store).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Protocol

from genopipe.intake.pairing import PairingError, parse_fastq_key
from genopipe.s3uri import S3Uri


@dataclass(frozen=True)
class Upload:
    """An unfinished multipart upload: `uri` is the object it becomes when completed."""

    uri: str
    upload_id: str
    initiated: float  # epoch seconds (CreateMultipartUpload)


class UploadsInProgress(Protocol):
    def uploading(self, bucket: str, folder: str) -> list[Upload]:
        """Unfinished multipart uploads of keys directly under `folder` (not in sub-folders)."""
        ...

    def last_part_at(self, upload: Upload) -> float | None:
        """When the upload's newest part arrived, or None when it has none yet."""
        ...


@dataclass(frozen=True)
class Progress:
    upload: Upload
    quiet_s: float  # seconds since its newest part (or its start)
    live: bool

    def describe(self) -> str:
        state = "still uploading" if self.live else "stalled"
        return f"{self.upload.uri} is {state} (no new part for {self.quiet_s:.0f} s)"


class UploadWatch:
    """The uploads in progress as one intake or one sweep sees them: one ListMultipartUploads per
    folder, and ListParts only for an upload older than the stall limit (a younger one shows
    progress by its start alone)."""

    def __init__(self, store: UploadsInProgress, now: float, stall_s: float) -> None:
        self.store, self.now, self.stall_s = store, now, stall_s
        self._folders: dict[tuple[str, str], list[Upload]] = {}

    def _in(self, bucket: str, folder: str) -> list[Upload]:
        if (bucket, folder) not in self._folders:
            self._folders[(bucket, folder)] = self.store.uploading(bucket, folder)
        return self._folders[(bucket, folder)]

    def of_sample(self, bucket: str, folder: str, sample: str) -> list[Upload]:
        """Uploads in `folder` whose file name pairs into `sample` (any lane, either read)."""
        return [u for u in self._in(bucket, folder) if _sample_of(u.uri) == sample]

    def of_uris(self, uris: Iterable[str]) -> list[Upload]:
        """Uploads of exactly these objects (the files a samplesheet.csv lists)."""
        wanted = set(uris)
        folders = {(S3Uri.parse(uri).bucket, S3Uri.parse(uri).folder) for uri in wanted}
        return [u for where in sorted(folders) for u in self._in(*where) if u.uri in wanted]

    def progress(self, upload: Upload) -> Progress:
        last = upload.initiated
        if self.now - last >= self.stall_s:
            last = max(last, self.store.last_part_at(upload) or last)
        quiet = max(0.0, self.now - last)
        return Progress(upload, quiet, quiet < self.stall_s)


def _sample_of(uri: str) -> str | None:
    try:
        name = parse_fastq_key(S3Uri.parse(uri).key)
    except PairingError:
        return None
    return None if name is None else name.sample
