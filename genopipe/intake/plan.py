"""Deciding, for one object that landed in the input bucket, which sample executions to start.

No AWS in here: the bucket is reached through the `InputStore` port (genopipe.aws.input_store
adapts S3). The execution name is a function of the sample, its FASTQ objects (keys, ETags), lanes,
ploidy, caller and the pipeline version only, so a duplicate or re-delivered S3 event, or a sample
sheet restating a pair that already started, starts nothing new.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass, field
from typing import Protocol

from genopipe.contracts import Aligner, Caller, InputObject, Lane, PipelineInput
from genopipe.intake.pairing import (
    SAMPLESHEET_NAME,
    PairingError,
    is_samplesheet,
    pair_sample,
    parse_fastq_key,
)
from genopipe.intake.samplesheet import SampleSheet, SamplesheetError, SheetSample, parse_samplesheet
from genopipe.intake.uploads import UploadsInProgress
from genopipe.s3uri import S3Uri, folder_of

EXECUTION_NAME_MAX = 80  # Step Functions: at most 80 characters of [A-Za-z0-9-_]
STAGING_PREFIX = ".staging/"


class InputUnreadable(Exception):
    """An input the intake may not or cannot read (access denied, deleted, not UTF-8 text): a
    problem of that sample alone, reported as its `Sample Failed`. `str()` names the object."""

    error_type = "InputUnreadable"


class InputStore(UploadsInProgress, Protocol):
    """The input bucket(s), finished objects and uploads in progress. Every method raises
    InputUnreadable for an object or bucket it may not read; anything else it raises is a fault
    of the moment (throttling, a network error)."""

    def list_folder(self, bucket: str, folder: str) -> dict[str, str]:
        """Keys directly under `folder` (not in sub-folders) -> their ETags."""
        ...

    def read_text(self, uri: str) -> str:
        """The object as UTF-8 text."""
        ...

    def etag(self, uri: str) -> str | None:
        """The object's ETag, or None if it does not exist."""
        ...


class _Listings:
    """Folder listings fetched once per plan: a sample sheet's rows cost one listing per folder
    they name, not one request per row."""

    def __init__(self, store: InputStore, bucket: str, folder: str, listing: dict[str, str]) -> None:
        self.store = store
        self._known = {(bucket, folder): listing}

    def etag(self, uri: str) -> str | None:
        location = S3Uri.parse(uri)
        where = (location.bucket, location.folder)
        if where not in self._known:
            self._known[where] = self.store.list_folder(*where)
        return self._known[where].get(location.key)


@dataclass(frozen=True)
class IntakeSettings:
    output_bucket: str
    reference: str
    aligner: Aligner
    pipeline_version: str
    default_ploidy: int = 2
    default_caller: Caller = "bcftools"


@dataclass(frozen=True)
class ExecutionRequest:
    name: str
    input: PipelineInput
    # paired by Illumina lane names without a sample sheet: more lanes may still be uploading, so
    # the sample starts only after a quiet period (genopipe.intake.admission)
    lanes_by_name: bool = False

    def input_json(self) -> str:
        # sorted keys, no whitespace: byte-identical for identical requests
        return json.dumps(self.input.model_dump(mode="json"), sort_keys=True, separators=(",", ":"))


@dataclass(frozen=True)
class IncompleteSample:
    """A sample that cannot start yet: `folder` is its folder in `bucket`, `reason` names the file."""

    bucket: str
    folder: str
    sample: str
    reason: str
    # the missing files when a samplesheet.csv names them; () when paired by name (then any file
    # whose name pairs into the sample may be the one that is missing)
    expects: tuple[str, ...] = ()

    @property
    def identity(self) -> str:
        return f"s3://{self.bucket}/{self.folder}{self.sample}"


@dataclass(frozen=True)
class IntakeDecision:
    requests: list[ExecutionRequest] = field(default_factory=list)
    waiting: list[str] = field(default_factory=list)  # why a sample cannot start yet
    ignored: str | None = None  # why the key is not a pipeline input at all
    incomplete: list[IncompleteSample] = field(default_factory=list)  # the same, per sample


def execution_name(
    sample: str,
    bucket: str,
    inputs: list[InputObject],
    pipeline_version: str,
    lanes: list[Lane] | None = None,
    ploidy: int = 2,
    caller: str = "bcftools",
    folder: str = "",
) -> str:
    """A function of what decides the results and where they go: the sample, its FASTQ objects
    (URI and ETag), their pairing into lanes, the ploidy, the caller, the output folder and the
    pipeline version. Not of how the sample was announced: a `samplesheet.csv` beside a pair that
    already started, listing the same files for the same sample, ploidy and caller, names the same
    execution (so starts nothing new); one that changes any of those, or a sheet in another folder
    (whose outputs go to that folder), names a new one."""
    fastqs = sorted((i.uri, i.etag) for i in inputs if not is_samplesheet(i.uri))
    material = json.dumps(
        {
            "bucket": bucket,
            "sample": sample,
            "inputs": fastqs,
            "lanes": [(str(lane.r1), str(lane.r2)) for lane in lanes or []],
            "ploidy": ploidy,
            "caller": caller,
            "folder": folder,
            "version": pipeline_version,
        },
        sort_keys=True,
    )
    digest = hashlib.sha256(material.encode()).hexdigest()[:32]
    readable = re.sub(r"[^A-Za-z0-9_-]", "-", sample)[: EXECUTION_NAME_MAX - len(digest) - 1]
    return f"{readable}-{digest}"


def _request(
    sample: str,
    bucket: str,
    lanes: list[Lane],
    inputs: list[InputObject],
    ploidy: int,
    settings: IntakeSettings,
    caller: Caller | None = None,
) -> ExecutionRequest:
    caller = caller or settings.default_caller
    folder = _input_folder(lanes, inputs)
    name = execution_name(sample, bucket, inputs, settings.pipeline_version, lanes, ploidy, caller, folder)
    pipeline_input = PipelineInput(
        sample=sample,
        reads=lanes,
        reference=settings.reference,
        aligner=settings.aligner,
        ploidy=ploidy,  # type: ignore[arg-type]  # validated by the model: 1 or 2
        caller=caller,
        staging=f"s3://{settings.output_bucket}/{STAGING_PREFIX}{name}/",
        output_bucket=settings.output_bucket,
        inputs=sorted(inputs, key=lambda i: i.uri),
        pipeline_version=settings.pipeline_version,
        folder=folder,
    )
    return ExecutionRequest(name, pipeline_input)


def _input_folder(lanes: list[Lane], inputs: list[InputObject]) -> str:
    """Where the sample came from, so its outputs go to `<folder><sample>/` (DESIGN.md, Outputs):
    the folder of its samplesheet.csv if it has one, else of its first R1."""
    sheet = next((item.uri for item in inputs if is_samplesheet(item.uri)), None)
    return S3Uri.parse(sheet).folder if sheet else lanes[0].r1.folder


def _from_sheet(
    sheet: SampleSheet,
    sheet_etag: str,
    wanted: SheetSample | None,
    listings: _Listings,
    bucket: str,
    settings: IntakeSettings,
) -> IntakeDecision:
    decision = IntakeDecision()
    for sample in sheet.samples:
        if wanted is not None and sample is not wanted:
            continue
        inputs = [InputObject(uri=sheet.uri, etag=sheet_etag)]
        missing = []
        for uri in (uri for lane in sample.lanes for uri in lane):
            etag = listings.etag(uri)
            if etag is None:
                missing.append(uri)
            else:
                inputs.append(InputObject(uri=uri, etag=etag))
        if missing:
            reason = f"{sheet.uri}: sample {sample.sample!r} waits for {', '.join(missing)}"
            decision.waiting.append(reason)
            sheet_folder = S3Uri.parse(sheet.uri).folder
            incomplete = IncompleteSample(bucket, sheet_folder, sample.sample, reason, tuple(missing))
            decision.incomplete.append(incomplete)
            continue
        lanes = [Lane(r1=S3Uri.parse(r1), r2=S3Uri.parse(r2)) for r1, r2 in sample.lanes]
        ploidy = sample.ploidy or settings.default_ploidy
        caller = sample.caller or settings.default_caller
        decision.requests.append(_request(sample.sample, bucket, lanes, inputs, ploidy, settings, caller))
    return decision


def _read_sheet(store: InputStore, uri: str) -> SampleSheet:
    try:
        text = store.read_text(uri)
    except InputUnreadable as error:  # deleted, forbidden, not UTF-8: the sheet cannot be used
        raise SamplesheetError(str(error)) from error
    return parse_samplesheet(text, uri)


def _check_folder(key: str, folder: str) -> None:
    """Outputs go to `<folder><sample>/` in the output bucket: a folder that would land them in
    `.staging/` (expired by the lifecycle rule) or outside the folder (`..`) is refused."""
    parts = folder[:-1].split("/") if folder else []  # a folder ends with its "/"
    bad = next((part for part in parts if part == "" or part.startswith(".")), None)
    if bad is not None:
        named = repr(bad) if bad else "an empty name"
        raise PairingError(
            f"{key}: folder {folder!r} holds {named}: folder names may not be empty or start with '.' "
            "(outputs go to the same folder in the output bucket)",
            key.rsplit("/", 1)[-1],
        )


def plan(bucket: str, key: str, store: InputStore, settings: IntakeSettings) -> IntakeDecision:
    """What to start now that `s3://bucket/key` (already URL-decoded) exists.

    Raises `PairingError` / `SamplesheetError` (one line naming the object and the problem) for
    inputs that can never start.
    """
    uri = f"s3://{bucket}/{key}"
    folder = folder_of(key)
    _check_folder(key, folder)
    if is_samplesheet(key):
        listing = store.list_folder(bucket, folder)
        sheet = _read_sheet(store, uri)
        etag = listing.get(key) or store.etag(uri) or ""
        return _from_sheet(sheet, etag, None, _Listings(store, bucket, folder, listing), bucket, settings)

    name = parse_fastq_key(key)
    if name is None:
        why = f"{uri}: matches no FASTQ pairing pattern and is not a {SAMPLESHEET_NAME}"
        return IntakeDecision(ignored=why)
    listing = store.list_folder(bucket, folder)
    sheet_key = folder + SAMPLESHEET_NAME
    if sheet_key in listing:
        sheet = _read_sheet(store, f"s3://{bucket}/{sheet_key}")
        for sample in sheet.samples:
            if any(uri in lane for lane in sample.lanes):
                # the sample sheet owns this file: it starts when all of the sample's rows exist
                listings = _Listings(store, bucket, folder, listing)
                return _from_sheet(sheet, listing[sheet_key], sample, listings, bucket, settings)
    paired = pair_sample(name, listing)
    if paired is None:
        reason = f"{uri}: sample {name.sample!r} waits for its mate file(s)"
        incomplete = IncompleteSample(bucket, folder, name.sample, reason)
        return IntakeDecision(waiting=[reason], incomplete=[incomplete])
    lanes = [Lane(r1=S3Uri(bucket, r1), r2=S3Uri(bucket, r2)) for r1, r2 in paired.lanes]
    inputs = [
        InputObject(uri=f"s3://{bucket}/{k}", etag=listing.get(k) or store.etag(f"s3://{bucket}/{k}") or "")
        for k in paired.keys
    ]
    request = _request(paired.sample, bucket, lanes, inputs, settings.default_ploidy, settings)
    if name.lane:
        request = ExecutionRequest(request.name, request.input, lanes_by_name=True)
    return IntakeDecision(requests=[request])
