"""One sample through a running local stack: upload it, wait for its event, fetch its outputs."""

from __future__ import annotations

import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from genopipe.aws import s3
from genopipe.contracts import COMPLETED
from genopipe.intake.pairing import parse_fastq_key
from genopipe.layout import SampleFiles
from genopipe.local.progress import Progress
from genopipe.local.stack import LocalStack, StackOptions
from genopipe.s3uri import S3Uri

_GZ_SUFFIXES = (".fastq.gz", ".fq.gz")


class RunError(Exception):
    """A problem with what the user asked for; `str()` is one line naming the file."""


def sample_name(r1: Path) -> str:
    """`HG002_R1.fastq.gz` -> `HG002` (the pairing rules the intake uses), else the bare name."""
    parsed = parse_fastq_key(r1.name)
    if parsed is not None:
        return parsed.sample
    name = r1.name
    for suffix in (*_GZ_SUFFIXES, ".fastq", ".fq", ".gz"):
        name = name.removesuffix(suffix)
    return name


def check_reads(r1: Path, r2: Path) -> None:
    for path in (r1, r2):
        if not path.is_file():
            raise RunError(f"{path}: no such file")
        if not path.name.endswith(_GZ_SUFFIXES):
            raise RunError(f"{path}: expected gzip-compressed FASTQ named *.fastq.gz or *.fq.gz")
    if r1.resolve() == r2.resolve():
        raise RunError(f"{r2}: is the same file as --r1")


def upload_sample(
    stack: LocalStack, r1: Path, r2: Path, sample: str, ploidy: int | None = None, caller: str | None = None
) -> list[S3Uri]:
    """Drop the pair into the input bucket the way a user would, so the S3 notification starts it.

    The reads go to `<sample>/<sample>_R1.fastq.gz` / `_R2` (named so the intake pairs them); with
    a ploidy or a caller, a `samplesheet.csv` that says so is put in the folder first."""
    folder = S3Uri(stack.input_bucket, f"{sample}/")
    names = [f"{sample}_R{read}{_suffix(path)}" for read, path in ((1, r1), (2, r2))]
    uploaded = []
    if ploidy is not None or caller is not None:
        sheet = "sample,fastq_1,fastq_2,ploidy,caller\n"
        sheet += f"{sample},{names[0]},{names[1]},{ploidy or ''},{caller or ''}\n"
        sheet_uri = folder.join("samplesheet.csv")
        s3.write_bytes(sheet_uri, sheet.encode(), content_type="text/csv")
        uploaded.append(sheet_uri)
    for path, name in zip((r1, r2), names, strict=True):
        uploaded.append(s3.upload(path, folder.join(name)).uri)
    return uploaded


def _suffix(path: Path) -> str:
    return next(suffix for suffix in _GZ_SUFFIXES if path.name.endswith(suffix))


class EventWaiter:
    """Collects the stack's events for one sample; `wait()` returns the first one."""

    def __init__(self, stack: LocalStack, sample: str) -> None:
        self.sample = sample
        self._event: dict[str, Any] | None = None
        self._arrived = threading.Event()
        stack.events.listeners.append(self._hear)
        for event in list(stack.events.received):
            self._hear(event)

    def _hear(self, event: dict[str, Any]) -> None:
        if event.get("detail", {}).get("sample") == self.sample and self._event is None:
            self._event = event
            self._arrived.set()

    def wait(self, timeout: float) -> dict[str, Any]:
        if not self._arrived.wait(timeout):
            raise RunError(f"sample {self.sample}: no genopipe event within {timeout:.0f} s")
        assert self._event is not None
        return self._event


def download_outputs(event: dict[str, Any], out: Path) -> list[Path]:
    """Copy a completed sample's published set (the folder of its event's `outputs`, i.e.
    `s3://<output bucket>/<folder><sample>/`) to `out/<sample>/`; nothing for a failed sample."""
    detail = event.get("detail", {})
    manifest = (detail.get("outputs") or {}).get("manifest")
    if not manifest:
        return []
    location = S3Uri.parse(manifest)
    prefix = S3Uri(location.bucket, location.folder)
    sample = str(detail.get("sample", "sample"))
    files, downloaded = SampleFiles(sample), []
    for item in s3.list_prefix(prefix):
        relative = item.uri.relative_to(prefix)
        if files.publishes(relative):  # not another sample's, in a folder nested below
            downloaded.append(s3.download(item.uri, out / sample / relative))
    return downloaded


@dataclass(frozen=True)
class RunOutcome:
    event: dict[str, Any]
    elapsed_s: float  # from the upload to the event
    files: list[Path]  # downloaded outputs

    @property
    def completed(self) -> bool:
        return self.event.get("detail-type") == COMPLETED


def run_one(
    options: StackOptions,
    r1: Path,
    r2: Path,
    sample: str,
    ploidy: int | None,
    out: Path,
    timeout_s: float,
    progress: Progress | None = None,
    caller: str | None = None,
) -> RunOutcome:
    """Start a stack, put one sample through it, download its outputs, stop the stack."""
    check_reads(r1, r2)
    progress = progress or Progress()
    with LocalStack(options) as stack:
        stack.batch.listeners.append(progress.job)
        waiter = EventWaiter(stack, sample)
        progress.start()
        started = progress.elapsed()
        upload_sample(stack, r1, r2, sample, ploidy, caller)
        progress.say(f"{sample}  uploaded to s3://{stack.input_bucket}/{sample}/")
        try:
            event = waiter.wait(timeout_s)
        finally:
            progress.finish()
        elapsed = progress.elapsed() - started
        files = download_outputs(event, out)
    return RunOutcome(event, elapsed, files)
