"""In-memory implementations of the domain's ports, for unit tests, and a hypothetical step.

Each behaves as its AWS adapter promises (genopipe.aws.*): the ledger's writes are conditional,
StartExecution is idempotent by name and input, the input store answers with ETags. The
adapters themselves are tested against moto in tests/integration/.
"""

from __future__ import annotations

import dataclasses
import hashlib
import threading
from collections import Counter
from typing import Any

from genopipe.contracts import SampleEvent
from genopipe.intake.admission import Waiting
from genopipe.intake.plan import InputUnreadable
from genopipe.intake.uploads import Upload
from genopipe.pipeline import StepSpec


class Clock:
    """A clock the test moves by hand (`clock.now += 60`)."""

    def __init__(self, now: float = 1_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


class MemoryInputStore:
    """genopipe.intake.plan.InputStore over a dict: `s3://bucket/key` -> (ETag, bytes), with
    S3InputStore's errors (InputUnreadable for a forbidden bucket, a missing sheet, non-UTF-8) and
    a count of the requests each method would make.

    Multipart uploads as S3 keeps them: `start_upload` (CreateMultipartUpload) makes an upload
    that `uploading` lists and `list_folder` does not show; `upload_part` records when a part
    arrived; `complete_upload` makes it an object (and the upload disappears), `abort_upload`
    drops it."""

    def __init__(self, objects: dict[str, tuple[str, bytes]] | None = None) -> None:
        self.objects = objects if objects is not None else {}
        self.forbidden: set[str] = set()  # buckets this store may not read (AccessDenied)
        self.requests: Counter[str] = Counter()
        self.uploads: dict[str, tuple[Upload, list[float]]] = {}  # upload id -> (upload, part times)

    def start_upload(self, bucket: str, key: str, at: float) -> str:
        upload_id = f"upload-{len(self.uploads) + 1}"
        self.uploads[upload_id] = (Upload(f"s3://{bucket}/{key}", upload_id, at), [])
        return upload_id

    def upload_part(self, upload_id: str, at: float) -> None:
        self.uploads[upload_id][1].append(at)

    def complete_upload(self, upload_id: str, body: bytes) -> None:
        upload, _ = self.uploads.pop(upload_id)
        bucket, _, key = upload.uri.removeprefix("s3://").partition("/")
        self.put(bucket, key, body)

    def abort_upload(self, upload_id: str) -> None:
        del self.uploads[upload_id]

    def uploading(self, bucket: str, folder: str) -> list[Upload]:
        self.requests["uploading"] += 1
        prefix = f"s3://{bucket}/{folder}"
        self._check(prefix)
        return [
            upload
            for upload, _ in self.uploads.values()
            if upload.uri.startswith(prefix) and "/" not in upload.uri[len(prefix) :]
        ]

    def last_part_at(self, upload: Upload) -> float | None:
        self.requests["last_part_at"] += 1
        if upload.upload_id not in self.uploads:
            raise AssertionError("S3 answers NoSuchUpload; S3InputStore reads that as activity just now")
        parts = self.uploads[upload.upload_id][1]
        return max(parts) if parts else None

    def put(self, bucket: str, key: str, body: bytes) -> None:
        """As S3 PutObject: the ETag of a single-part upload is the MD5 of its bytes."""
        self.objects[f"s3://{bucket}/{key}"] = (hashlib.md5(body, usedforsecurity=False).hexdigest(), body)

    def delete(self, bucket: str, key: str) -> None:
        del self.objects[f"s3://{bucket}/{key}"]

    def _check(self, uri: str) -> None:
        bucket = uri.removeprefix("s3://").partition("/")[0]
        if bucket in self.forbidden:
            raise InputUnreadable(f"{uri}: access denied")

    def list_folder(self, bucket: str, folder: str) -> dict[str, str]:
        self.requests["list_folder"] += 1
        prefix = f"s3://{bucket}/{folder}"
        self._check(prefix)
        return {
            uri[len(f"s3://{bucket}/") :]: etag
            for uri, (etag, _) in self.objects.items()
            if uri.startswith(prefix) and "/" not in uri[len(prefix) :]
        }

    def read_text(self, uri: str) -> str:
        self.requests["read_text"] += 1
        self._check(uri)
        if uri not in self.objects:
            raise InputUnreadable(f"{uri}: no such object")
        try:
            return self.objects[uri][1].decode("utf-8")
        except UnicodeDecodeError as error:
            raise InputUnreadable(f"{uri}: not UTF-8 text (byte {error.start})") from error

    def etag(self, uri: str) -> str | None:
        self.requests["etag"] += 1
        self._check(uri)
        return self.objects[uri][0] if uri in self.objects else None


class MemoryLedger:
    """genopipe.intake.admission.Ledger with DynamoLedger's conditional writes."""

    def __init__(self) -> None:
        self.claimed: dict[str, str] = {}
        self.entries: dict[str, Waiting] = {}
        self.runs: dict[str, dict[str, str]] = {}
        self._lock = threading.Lock()

    def claim(self, execution: str, sample: str, now: float) -> bool:
        with self._lock:
            if execution in self.claimed:
                return False
            self.claimed[execution] = sample
            return True

    def note_waiting(self, waiting: Waiting) -> None:
        with self._lock:
            known = self.entries.get(waiting.identity)
            first_seen = known.first_seen if known is not None else waiting.first_seen
            self.entries[waiting.identity] = dataclasses.replace(waiting, first_seen=first_seen)

    def clear_waiting(self, identity: str) -> None:
        with self._lock:
            self.entries.pop(identity, None)

    def remove_waiting(self, waiting: Waiting) -> bool:
        with self._lock:
            known = self.entries.get(waiting.identity)
            if known is None or known.last_seen != waiting.last_seen:
                return False
            del self.entries[waiting.identity]
            return True

    def waiting(self) -> list[Waiting]:
        with self._lock:
            return sorted(self.entries.values(), key=lambda w: w.first_seen)

    def record_run(self, identity: str, inputs: dict[str, str]) -> None:
        with self._lock:
            self.runs[identity] = dict(inputs)

    def last_run(self, identity: str) -> dict[str, str] | None:
        with self._lock:
            return self.runs.get(identity)


class MemoryExecutions:
    """genopipe.intake.admission.Executions as StepFunctionsExecutions behaves: an execution of an
    existing name is not started again (whatever its input) and is not an error."""

    def __init__(self) -> None:
        self.started: dict[str, str] = {}  # name -> input JSON of its first start, in start order

    def start(self, name: str, input_json: str) -> None:
        self.started.setdefault(name, input_json)


class MemoryBus(list[SampleEvent]):
    """genopipe.contracts.EventBus: the events put, in order."""

    def put(self, event: SampleEvent) -> None:
        self.append(event)


class MemoryStaging:
    """genopipe.notify.announce.Staging over a dict: URI -> JSON document (or any payload)."""

    def __init__(self, objects: dict[str, Any]) -> None:
        self.objects = objects

    def list_relative(self, prefix: str) -> list[str]:
        return [uri[len(prefix) :] for uri in self.objects if uri.startswith(prefix)]

    def copy(self, source: str, destination: str) -> None:
        self.objects[destination] = self.objects[source]

    def delete_prefix(self, prefix: str) -> int:
        doomed = [uri for uri in self.objects if uri.startswith(prefix)]
        for uri in doomed:
            del self.objects[uri]
        return len(doomed)

    def delete(self, uris: list[str]) -> None:
        for uri in uris:
            del self.objects[uri]

    def read_json(self, uri: str) -> Any:
        return self.objects[uri]


# a step the pipeline does not have: tests add it to copies of the table and plan
ANNOTATE = StepSpec(
    name="annotate",
    purpose="a hypothetical step, only in these tests",
    vcpus=2,
    memory_mib=4096,
    timeout_seconds=3600,
    scratch_gb_per_input_gb=0.0,
)
