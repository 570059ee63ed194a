"""The intake's view of the input bucket (genopipe.intake.plan.InputStore) over genopipe.aws.s3.

What the intake may not or cannot read (access denied: a sample sheet naming another account's
bucket; a sheet deleted while its samples wait; text that is not UTF-8) becomes InputUnreadable,
that sample's own problem; any other S3 error propagates as a fault of the moment.

Uploads in progress (genopipe.intake.uploads) are ListMultipartUploads (s3:ListBucketMultipartUploads
on the bucket) and ListParts (s3:ListMultipartUploadParts on the object; the sweep only).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager

from genopipe.aws import s3
from genopipe.intake.plan import InputUnreadable
from genopipe.intake.uploads import Upload
from genopipe.s3uri import S3Uri

_UNREADABLE = ("access denied", "no such object", "no such bucket")  # how S3Error.problem starts


@contextmanager
def _unreadable_is_the_samples_problem() -> Iterator[None]:
    try:
        yield
    except s3.S3Error as error:
        if error.problem.startswith(_UNREADABLE):
            raise InputUnreadable(str(error)) from error
        raise


class S3InputStore:
    def list_folder(self, bucket: str, folder: str) -> dict[str, str]:
        with _unreadable_is_the_samples_problem():
            return {
                item.uri.key: item.etag
                for item in s3.list_prefix(S3Uri(bucket, folder))
                if "/" not in item.uri.key[len(folder) :]
            }

    def read_text(self, uri: str) -> str:
        with _unreadable_is_the_samples_problem():
            data = s3.read_bytes(uri)
        try:
            return data.decode("utf-8")
        except UnicodeDecodeError as error:
            raise InputUnreadable(
                f"{uri}: not UTF-8 text (byte {error.start}): save it as UTF-8 CSV"
            ) from error

    def etag(self, uri: str) -> str | None:
        try:
            with _unreadable_is_the_samples_problem():
                return s3.head(uri).etag
        except InputUnreadable as error:
            if isinstance(error.__cause__, s3.S3NotFound) and error.__cause__.problem == "no such object":
                return None  # not uploaded yet
            raise

    def uploading(self, bucket: str, folder: str) -> list[Upload]:
        with _unreadable_is_the_samples_problem():
            return [
                Upload(str(item.uri), item.upload_id, item.initiated)
                for item in s3.list_uploads(S3Uri(bucket, folder))
                if "/" not in item.uri.key[len(folder) :]
            ]

    def last_part_at(self, upload: Upload) -> float | None:
        listed = s3.UploadInProgress(S3Uri.parse(upload.uri), upload.upload_id, upload.initiated)
        try:
            with _unreadable_is_the_samples_problem():
                return s3.newest_part_at(listed)
        except s3.S3Error as error:
            if error.problem.startswith("NoSuchUpload"):
                return time.time()  # completed or aborted since it was listed: activity just now
            raise
