"""Admitting samples exactly once, and forgetting none: what the intake and sweep Lambdas do with
an `IntakeDecision` (genopipe.intake).

- Exactly once: the execution name is a function of the inputs (bucket, keys, ETags, pipeline
  version), and a conditional write of that name to the intake ledger (DynamoDB) tells the first
  intake invocation from a duplicate or a racing one. StartExecution is still called by every
  invocation that gets that far (it is idempotent by name and input), so an intake that crashed
  between its claim and its StartExecution is repaired by the retried event.
- Nothing forgotten: a sample that cannot start yet (a mate, a lane, or a file its sample sheet
  lists is missing) is written to the ledger with the time it was first and last seen. The
  scheduled sweep re-plans each one: it starts those now complete and quiet, and fails those
  still incomplete after the mate timeout with a `Sample Failed` event (reason "mate missing").
- Lanes uploaded one at a time: a sample paired by Illumina lane names (no sample sheet) starts
  only after `lane_settle_s` without a new file of that sample, so a run never starts with only
  the first lanes; with `lane_settle_s = 0` it starts at once.
- Files still uploading (genopipe.intake.uploads): a complete sample another file of which (a lane,
  a replacement) is still an unfinished multipart upload waits for it; an incomplete sample whose
  missing file is uploading and showing progress is not reported "mate missing": the mate timeout
  runs from the upload's newest part, up to `upload_wait_cap_s` after the sample was first seen.
  A stalled upload (no new part for the mate timeout) counts as no upload.
- Inputs that can never start (bad names, a bad sample sheet) fail at once with `Sample Failed`.

No AWS in here: the ledger, Step Functions and EventBridge are ports (genopipe.aws adapts them).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

from genopipe.contracts import FAILED, ErrorDetail, EventBus, SampleEvent, SampleEventDetail
from genopipe.intake.pairing import PairingError, is_samplesheet
from genopipe.intake.plan import (
    ExecutionRequest,
    IncompleteSample,
    InputStore,
    InputUnreadable,
    IntakeDecision,
    IntakeSettings,
    plan,
)
from genopipe.intake.samplesheet import SamplesheetError
from genopipe.intake.uploads import Progress, Upload, UploadWatch
from genopipe.s3uri import S3Uri, folder_of

MATE_MISSING = "mate missing"
INTAKE_STEP = "intake"


@dataclass(frozen=True)
class Waiting:
    """A ledger entry: one sample that has not started. `trigger` is the last key seen for it."""

    identity: str  # s3://bucket/folder/sample
    bucket: str
    trigger: str
    sample: str
    reason: str
    first_seen: float
    last_seen: float
    settling: bool = False  # complete, but its lanes were paired by name: waits for quiet


class Ledger(Protocol):
    def claim(self, execution: str, sample: str, now: float) -> bool:
        """Record that `execution` was started; False if it was already recorded."""
        ...

    def note_waiting(self, waiting: Waiting) -> None:
        """Upsert by identity, keeping the earliest `first_seen`."""
        ...

    def clear_waiting(self, identity: str) -> None: ...

    def remove_waiting(self, waiting: Waiting) -> bool:
        """Delete the entry if it is unchanged since it was read (no new file arrived); False if not."""
        ...

    def waiting(self) -> list[Waiting]: ...

    def record_run(self, identity: str, inputs: dict[str, str]) -> None:
        """The FASTQ objects (URI -> ETag) the sample's newest run started with."""
        ...

    def last_run(self, identity: str) -> dict[str, str] | None:
        """What `record_run` recorded last for the sample, or None."""
        ...


@dataclass(frozen=True)
class FailedUpload:
    """An upload whose intake invocation still failed after Lambda's own retries."""

    receipt: str  # to delete it from where it waits
    bucket: str
    key: str  # URL-decoded
    error: str  # what the intake raised


class FailedUploads(Protocol):
    """Where failed intake invocations wait (the intake's on-failure destination)."""

    def receive(self) -> list[FailedUpload]:
        """Some of the waiting ones (empty when none wait)."""
        ...

    def delete(self, receipt: str) -> None: ...


class Executions(Protocol):
    def start(self, name: str, input_json: str) -> None:
        """StartExecution; an existing execution of that name is not an error."""
        ...


@dataclass(frozen=True)
class Rejection:
    """An input that can never start: the `Sample Failed` it gets."""

    error_type: str
    message: str
    sample: str | None  # None: the sample is not known from the input alone


@dataclass(frozen=True)
class AdmissionSettings:
    # also the stall limit of an upload in progress: the timeout restarts with each new part
    mate_timeout_s: float = 3600.0
    lane_settle_s: float = 300.0
    # how long uploads that keep showing progress may hold a sample, from when it was first seen:
    # 24 h is a 100 GB pair at ~10 Mbps; the input bucket's lifecycle aborts uploads after 7 days
    upload_wait_cap_s: float = 86400.0


@dataclass
class Outcome:
    started: list[str] = field(default_factory=list)
    duplicates: list[str] = field(default_factory=list)
    waiting: list[str] = field(default_factory=list)
    ignored: list[str] = field(default_factory=list)
    rejected: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, list[str]]:
        return {name: list(values) for name, values in vars(self).items()}


def failure_event(sample: str, error_type: str, message: str, pipeline_version: str) -> SampleEvent:
    """A `Sample Failed` for a sample that never got an execution (so `execution_arn` is empty)."""
    detail = SampleEventDetail(
        sample=sample,
        execution_arn="",
        status="FAILED",
        error=ErrorDetail(step=INTAKE_STEP, type=error_type, message=message),
        pipeline_version=pipeline_version,
    )
    return SampleEvent(detail_type=FAILED, detail=detail)


class Admission:
    def __init__(
        self,
        store: InputStore,
        ledger: Ledger,
        executions: Executions,
        bus: EventBus,
        settings: IntakeSettings,
        admission: AdmissionSettings,
        clock: Callable[[], float],
    ) -> None:
        self.store, self.ledger, self.executions, self.bus = store, ledger, executions, bus
        self.settings, self.admission, self.clock = settings, admission, clock

    def on_object(self, bucket: str, key: str) -> Outcome:
        """An object landed (the key URL-decoded): start, record as waiting, or fail."""
        outcome = Outcome()
        now = self.clock()
        decision = self._plan(bucket, key, outcome)
        if decision is None:
            return outcome
        if decision.ignored:
            outcome.ignored.append(decision.ignored)
        for incomplete in decision.incomplete:
            self._note(incomplete, key, now, settling=False)
            outcome.waiting.append(incomplete.reason)
        watch = UploadWatch(self.store, now, self.admission.mate_timeout_s)
        for request in decision.requests:
            reason = self._settle_reason(request, bucket, key) if self.admission.lane_settle_s > 0 else None
            if reason is not None:
                self._note(_incomplete_of(request, bucket, key, reason), key, now, settling=True)
                outcome.waiting.append(reason)
                continue
            uploading = _uploads_of_request(watch, request)
            if uploading:
                # whether it still shows progress is the sweep's question (ListParts)
                reason = (
                    f"s3://{bucket}/{key}: sample {request.input.sample!r} waits for "
                    f"{', '.join(u.uri for u in uploading)} (still uploading)"
                )
                self._note(_incomplete_of(request, bucket, key, reason), key, now, settling=False)
                outcome.waiting.append(reason)
                continue
            self._start(request, bucket, key, outcome)
        return outcome

    def _settle_reason(self, request: ExecutionRequest, bucket: str, key: str) -> str | None:
        """Why a complete sample waits for a quiet period first, or None to start it now: its lanes
        were paired by name (more may be uploading), or it is being re-uploaded and only some of
        its files were replaced so far (its new R1 must not start a run with the old R2)."""
        sample = f"s3://{bucket}/{key}: sample {request.input.sample!r}"
        if request.lanes_by_name:
            return f"{sample} waits for more lanes"
        previous = self.ledger.last_run(_identity(request, bucket, key))
        current = _fastqs(request)
        if previous is None or set(previous) != set(current) or previous == current:
            return None
        unchanged = sorted(uri for uri in current if previous[uri] == current[uri])
        if not unchanged:
            return None  # every file is new: a complete re-upload
        return (
            f"{sample} is being re-uploaded: waits for {', '.join(unchanged)} to be replaced too "
            f"(or starts with it as it is after {self.admission.lane_settle_s:.0f} s without a new file)"
        )

    def retry_failed(self, failed: FailedUploads, at_most: int = 100) -> Outcome:
        """Run the intake again for uploads whose intake invocation failed (their S3 event is not
        lost): each gets its normal answer now, or a `Sample Failed` naming the upload and both
        errors when it fails again. Handled uploads leave the queue either way."""
        outcome = Outcome()
        handled = 0
        while handled < at_most:
            batch = failed.receive()
            if not batch:
                break
            for upload in batch:
                handled += 1
                try:
                    for name, values in self.on_object(upload.bucket, upload.key).as_dict().items():
                        getattr(outcome, name).extend(values)
                except Exception as error:
                    message = (
                        f"s3://{upload.bucket}/{upload.key}: the intake failed on this upload "
                        f"({upload.error}) and again when retried ({type(error).__name__}: {error}); "
                        "upload it again to retry"
                    )
                    sample = upload.key.rsplit("/", 1)[-1]
                    self.bus.put(
                        failure_event(sample, "IntakeFailed", message, self.settings.pipeline_version)
                    )
                    outcome.rejected.append(message)
                failed.delete(upload.receipt)
        return outcome

    def sweep(self, overrides: AdmissionSettings | None = None) -> Outcome:
        """Start the waiting samples that are now complete (and quiet); fail those past the timeout.
        `overrides`: other timeouts for this sweep only (an operator flushing the ledger now).

        Each waiting sample is handled on its own: one that can never start fails alone with its
        `Sample Failed`; one that meets a fault of the moment waits for the next sweep; neither
        stops the others. The samples of one sample sheet share one plan per sweep, so a sweep
        costs one plan per trigger, not one per sample times the sheet's rows."""
        outcome = Outcome()
        limits = overrides or self.admission
        plans: dict[tuple[str, str], IntakeDecision | Rejection] = {}
        watch = UploadWatch(self.store, self.clock(), limits.mate_timeout_s)
        for waiting in self.ledger.waiting():
            try:
                where = (waiting.bucket, waiting.trigger)
                if where not in plans:
                    plans[where] = self._plan_or_rejection(*where)
                self._sweep_one(waiting, plans[where], limits, watch, outcome)
            except Exception as error:  # a fault of the moment, not the sample's
                problem = f"{type(error).__name__}: {error}"
                outcome.waiting.append(f"{waiting.reason} (not checked this sweep: {problem})")
        return outcome

    def _sweep_one(
        self,
        waiting: Waiting,
        decision: IntakeDecision | Rejection,
        limits: AdmissionSettings,
        watch: UploadWatch,
        outcome: Outcome,
    ) -> None:
        now = self.clock()
        if isinstance(decision, Rejection):
            self._reject(decision, waiting.sample, outcome)
            self.ledger.clear_waiting(waiting.identity)
            return
        mine = [
            r for r in decision.requests if _identity(r, waiting.bucket, waiting.trigger) == waiting.identity
        ]
        waited = now - waiting.first_seen
        if mine:
            if waiting.settling and now - waiting.last_seen < limits.lane_settle_s:
                outcome.waiting.append(f"{waiting.reason} (quiet for {now - waiting.last_seen:.0f} s)")
                return
            uploads = [u for request in mine for u in _uploads_of_request(watch, request)]
            live = _live(watch, uploads, waited, limits)
            if live:
                outcome.waiting.append(f"{waiting.reason}: {'; '.join(p.describe() for p in live)}")
                return
            for request in mine:
                self._start(request, waiting.bucket, waiting.trigger, outcome)
            return
        if waited < limits.mate_timeout_s:
            outcome.waiting.append(waiting.reason)
            return
        theirs = [i for i in decision.incomplete if i.identity == waiting.identity]
        progress = [watch.progress(u) for i in theirs for u in _uploads_of_incomplete(watch, i)]
        live = [p for p in progress if p.live]
        if live and waited < limits.upload_wait_cap_s:
            outcome.waiting.append(f"{waiting.reason}: {'; '.join(p.describe() for p in live)}")
            return
        if self.ledger.remove_waiting(waiting):  # a file that arrived meanwhile wins
            seen = "".join(f", {p.describe()}" for p in progress)
            if live:
                seen += f"; uploads hold a sample at most {limits.upload_wait_cap_s:.0f} s"
            message = (
                f"{waiting.reason}; {MATE_MISSING} after {waited:.0f} s "
                f"(timeout {limits.mate_timeout_s:.0f} s{seen}): "
                "upload it to start the sample"
            )
            self.bus.put(
                failure_event(waiting.sample, "MateMissing", message, self.settings.pipeline_version)
            )
            outcome.rejected.append(message)

    def _plan(self, bucket: str, key: str, outcome: Outcome) -> IntakeDecision | None:
        decision = self._plan_or_rejection(bucket, key)
        if isinstance(decision, Rejection):
            self._reject(decision, decision.sample or key, outcome)
            return None
        return decision

    def _plan_or_rejection(self, bucket: str, key: str) -> IntakeDecision | Rejection:
        try:
            return plan(bucket, key, self.store, self.settings)
        except SamplesheetError as error:
            return Rejection("InvalidSamplesheet", str(error), None)
        except (PairingError, InputUnreadable) as error:
            return Rejection(error.error_type, str(error), getattr(error, "sample", None))

    def _reject(self, rejection: Rejection, sample: str, outcome: Outcome) -> None:
        self.bus.put(
            failure_event(sample, rejection.error_type, rejection.message, self.settings.pipeline_version)
        )
        outcome.rejected.append(rejection.message)

    def _note(self, incomplete: IncompleteSample, key: str, now: float, settling: bool) -> None:
        self.ledger.note_waiting(
            Waiting(
                identity=incomplete.identity,
                bucket=incomplete.bucket,
                trigger=key,
                sample=incomplete.sample,
                reason=incomplete.reason,
                first_seen=now,
                last_seen=now,
                settling=settling,
            )
        )

    def _start(self, request: ExecutionRequest, bucket: str, key: str, outcome: Outcome) -> None:
        first = self.ledger.claim(request.name, request.input.sample, self.clock())
        self.executions.start(request.name, request.input_json())  # idempotent: repairs a lost start
        identity = _identity(request, bucket, key)
        if first:
            self.ledger.record_run(identity, _fastqs(request))
        self.ledger.clear_waiting(identity)
        (outcome.started if first else outcome.duplicates).append(request.name)


def _uploads_of_request(watch: UploadWatch, request: ExecutionRequest) -> list[Upload]:
    """Uploads in progress of a complete sample's files: of the files its samplesheet.csv lists
    (a replacement), or of any file whose name pairs into it (another lane, a replacement)."""
    if any(is_samplesheet(i.uri) for i in request.input.inputs):
        return watch.of_uris(_fastqs(request))
    first = request.input.reads[0].r1
    return watch.of_sample(first.bucket, first.folder, request.input.sample)


def _uploads_of_incomplete(watch: UploadWatch, incomplete: IncompleteSample) -> list[Upload]:
    if incomplete.expects:
        return watch.of_uris(incomplete.expects)
    return watch.of_sample(incomplete.bucket, incomplete.folder, incomplete.sample)


def _live(
    watch: UploadWatch, uploads: list[Upload], waited: float, limits: AdmissionSettings
) -> list[Progress]:
    """The uploads that still show progress, while the sample has waited less than the cap."""
    if waited >= limits.upload_wait_cap_s:
        return []
    return [p for p in map(watch.progress, uploads) if p.live]


def _fastqs(request: ExecutionRequest) -> dict[str, str]:
    return {i.uri: i.etag for i in request.input.inputs if not is_samplesheet(i.uri)}


def _identity(request: ExecutionRequest, bucket: str, key: str) -> str:
    return _incomplete_of(request, bucket, key, "").identity


def _incomplete_of(request: ExecutionRequest, bucket: str, key: str, reason: str) -> IncompleteSample:
    sheets = [i.uri for i in request.input.inputs if is_samplesheet(i.uri)]
    folder = S3Uri.parse(sheets[0]).folder if sheets else folder_of(key)
    return IncompleteSample(bucket, folder, request.input.sample, reason)
