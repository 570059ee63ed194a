"""The S3 adapter: every S3 call genopipe makes goes through here.

boto3 honours `AWS_ENDPOINT_URL` (and `AWS_ENDPOINT_URL_S3`) by itself, so the local stack (moto
server) and AWS go through the same code. One client per process (`client()`); boto3 clients are
thread-safe, so threads may share it (genopipe.aws.clients).

URIs are written the way the AWS CLI writes them: `s3://bucket/key`, with the key verbatim (not
URL-encoded), so keys may hold spaces, unicode and `+`. Decoding S3 *event* keys (which arrive
URL-encoded) is the caller's business.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import boto3
from boto3.s3.transfer import TransferConfig, create_transfer_manager
from botocore.config import Config
from botocore.exceptions import ClientError
from s3transfer.futures import TransferFuture
from s3transfer.subscribers import BaseSubscriber

from genopipe.aws.clients import sdk_client
from genopipe.s3uri import S3Uri

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client
else:
    S3Client = Any

# multipart above 64 MiB, a few parts in flight: enough for BAMs without flooding a small host
_TRANSFER = TransferConfig(multipart_threshold=64 * 1024 * 1024, multipart_chunksize=64 * 1024 * 1024)
# server-side copies (publishing): multipart above the same threshold, so no copy meets S3's 5 GB
# single-copy limit, in parts of 512 MiB, 16 at a time: a 70 GB BAM is 137 UploadPartCopy calls
_COPY = TransferConfig(
    multipart_threshold=_TRANSFER.multipart_threshold,
    multipart_chunksize=512 * 1024 * 1024,
    max_concurrency=16,
)


class S3Error(Exception):
    """An S3 call failed; `str()` is one line naming the URI and the problem."""

    def __init__(self, uri: S3Uri | str, problem: str) -> None:
        super().__init__(f"{uri}: {problem}")
        self.uri = str(uri)
        self.problem = problem


class S3NotFound(S3Error):
    """The object (or bucket) does not exist."""


class S3Changed(S3Error):
    """The object is no longer the version that was asked for (its ETag changed, or it is gone)."""


@dataclass(frozen=True)
class ObjectInfo:
    uri: S3Uri
    etag: str  # without the quotes S3 puts around it
    size: int


@sdk_client
def client() -> S3Client:
    """The process's S3 client (region and endpoint from the environment, like any AWS SDK)."""
    return boto3.client("s3", config=Config(retries={"max_attempts": 8, "mode": "adaptive"}))


def _as_uri(uri: S3Uri | str) -> S3Uri:
    return uri if isinstance(uri, S3Uri) else S3Uri.parse(uri)


def _fail(uri: S3Uri, error: ClientError) -> S3Error:
    code = str(error.response.get("Error", {}).get("Code", ""))
    message = str(error.response.get("Error", {}).get("Message", "")) or code
    if code in {"404", "NoSuchKey", "NoSuchBucket", "NotFound"}:
        return S3NotFound(uri, "no such object" if code != "NoSuchBucket" else "no such bucket")
    if code in {"403", "AccessDenied"}:
        # AWS names the principal and the denied action (`... is not authorized to perform: s3:PutObject`)
        detail = message if message not in {"", code, "Access Denied", "Forbidden"} else ""
        return S3Error(uri, f"access denied: {detail}" if detail else "access denied")
    return S3Error(uri, f"{code}: {message}")


def _strip_etag(etag: str) -> str:
    return etag.strip('"')


def head(uri: S3Uri | str) -> ObjectInfo:
    target = _as_uri(uri)
    try:
        response = client().head_object(Bucket=target.bucket, Key=target.key)
    except ClientError as error:
        raise _fail(target, error) from error
    return ObjectInfo(target, _strip_etag(response["ETag"]), int(response["ContentLength"]))


def exists(uri: S3Uri | str) -> bool:
    try:
        head(uri)
    except S3NotFound:
        return False
    return True


def download(uri: S3Uri | str, path: Path, etag: str | None = None) -> Path:
    """Copy an object to a local file (parent folders created); returns `path`.

    With `etag`, exactly that version: every GET is conditional (`If-Match`), and an object that
    changed or went away since raises `S3Changed` naming both ETags; the partial file is removed."""
    source = _as_uri(uri)
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        if etag is None:
            client().download_file(source.bucket, source.key, str(path), Config=_TRANSFER)
        else:
            _download_pinned(source, path, etag)
    except ClientError as error:
        path.unlink(missing_ok=True)
        raise (_changed(source, etag, error) if etag is not None else _fail(source, error)) from error
    return path


class _PinnedVersion(BaseSubscriber):
    """Gives a download its size and ETag up front: s3transfer then skips its own HEAD and sends
    every ranged GET with `If-Match` on that ETag."""

    def __init__(self, size: int, etag: str) -> None:
        self.size, self.etag = size, etag

    def on_queued(self, future: TransferFuture, **kwargs: Any) -> None:
        future.meta.provide_transfer_size(self.size)
        future.meta.provide_object_etag(self.etag)


def _download_pinned(source: S3Uri, path: Path, etag: str) -> None:
    quoted = f'"{_strip_etag(etag)}"'
    size = int(client().head_object(Bucket=source.bucket, Key=source.key, IfMatch=quoted)["ContentLength"])
    if size < _TRANSFER.multipart_threshold:  # one GET, which s3transfer would send unconditionally
        body = client().get_object(Bucket=source.bucket, Key=source.key, IfMatch=quoted)["Body"]
        with path.open("wb") as out:
            shutil.copyfileobj(body, out, 8 * 1024 * 1024)
        return
    with create_transfer_manager(client(), _TRANSFER) as manager:
        future = manager.download(
            source.bucket, source.key, str(path), subscribers=[_PinnedVersion(size, quoted)]
        )
        future.result()


def _changed(source: S3Uri, etag: str, error: ClientError) -> S3Error:
    code = str(error.response.get("Error", {}).get("Code", ""))
    if code not in {"412", "PreconditionFailed", "404", "NoSuchKey", "NotFound"}:
        return _fail(source, error)
    try:
        now = f"now {head(source).etag}"
    except S3NotFound:
        now = "now deleted"
    return S3Changed(
        source,
        f"changed since it was admitted (ETag {_strip_etag(etag)}, {now}): this run stops; "
        "the new upload starts its own run",
    )


def download_ranges(uri: S3Uri | str, path: Path, ranges: list[tuple[int, int]]) -> ObjectInfo:
    """Byte ranges [start, end) of an object written at their own offsets into a sparse local
    file as long as the object (the rest reads as zeros): a slice of a BAM that its index still
    serves (genopipe.bai). Ranges above 64 MiB go in 64 MiB GETs, 10 at a time, all pinned to the
    ETag the object had at the first request."""
    source = _as_uri(uri)
    info = head(source)
    quoted = f'"{info.etag}"'
    part = _TRANSFER.multipart_chunksize
    pieces = [
        (offset, min(end, offset + part))
        for start, end in ranges
        for offset in range(start, min(end, info.size), part)
    ]
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("wb") as out:
        out.truncate(info.size)

    def fetch(piece: tuple[int, int]) -> None:
        start, end = piece
        response = client().get_object(
            Bucket=source.bucket, Key=source.key, IfMatch=quoted, Range=f"bytes={start}-{end - 1}"
        )
        with path.open("r+b") as out:
            out.seek(start)
            shutil.copyfileobj(response["Body"], out, 8 * 1024 * 1024)

    try:
        with ThreadPoolExecutor(max_workers=_TRANSFER.max_request_concurrency) as pool:
            list(pool.map(fetch, pieces))
    except ClientError as error:
        path.unlink(missing_ok=True)
        raise _changed(source, info.etag, error) from error
    return info


def upload(path: Path, uri: S3Uri | str, content_type: str | None = None) -> ObjectInfo:
    target = _as_uri(uri)
    extra = {"ContentType": content_type} if content_type else None
    try:
        client().upload_file(str(path), target.bucket, target.key, ExtraArgs=extra, Config=_TRANSFER)
    except ClientError as error:
        raise _fail(target, error) from error
    return head(target)


def list_prefix(prefix: S3Uri | str) -> Iterator[ObjectInfo]:
    """Every object whose key starts with `prefix` (taken literally: `a/b` also matches `a/bc`)."""
    base = _as_uri(prefix)
    pages = client().get_paginator("list_objects_v2").paginate(Bucket=base.bucket, Prefix=base.key)
    try:
        for page in pages:
            for item in page.get("Contents", []):
                yield ObjectInfo(S3Uri(base.bucket, item["Key"]), _strip_etag(item["ETag"]), item["Size"])
    except ClientError as error:
        raise _fail(base, error) from error


@dataclass(frozen=True)
class UploadInProgress:
    uri: S3Uri  # the object it becomes when completed
    upload_id: str
    initiated: float  # epoch seconds of its CreateMultipartUpload


def list_uploads(prefix: S3Uri | str) -> Iterator[UploadInProgress]:
    """Every unfinished multipart upload whose key starts with `prefix` (ListMultipartUploads):
    objects still being uploaded, which ListObjects does not show."""
    base = _as_uri(prefix)
    pages = client().get_paginator("list_multipart_uploads").paginate(Bucket=base.bucket, Prefix=base.key)
    try:
        for page in pages:
            for item in page.get("Uploads", []):
                uri = S3Uri(base.bucket, item["Key"])
                yield UploadInProgress(uri, item["UploadId"], item["Initiated"].timestamp())
    except ClientError as error:
        raise _fail(base, error) from error


def newest_part_at(upload: UploadInProgress) -> float | None:
    """When the upload's most recent part arrived (ListParts, every page), or None without parts."""
    target = upload.uri
    pages = (
        client()
        .get_paginator("list_parts")
        .paginate(Bucket=target.bucket, Key=target.key, UploadId=upload.upload_id)
    )
    newest: float | None = None
    try:
        for page in pages:
            for part in page.get("Parts", []):
                at = part["LastModified"].timestamp()
                newest = at if newest is None else max(newest, at)
    except ClientError as error:
        raise _fail(target, error) from error
    return newest


def copy_prefix(source: S3Uri | str, destination: S3Uri | str) -> list[S3Uri]:
    """Server-side copy of every object under folder `source` to folder `destination`."""
    src, dst = _as_uri(source).as_prefix(), _as_uri(destination).as_prefix()
    copied = []
    for item in list_prefix(src):
        target = dst.join(item.uri.relative_to(src))
        try:
            client().copy(
                {"Bucket": item.uri.bucket, "Key": item.uri.key}, target.bucket, target.key, Config=_COPY
            )
        except ClientError as error:
            raise _fail(item.uri, error) from error
        copied.append(target)
    return copied


def copy(source: S3Uri | str, destination: S3Uri | str) -> S3Uri:
    """Server-side copy of one object (multipart above the transfer threshold)."""
    src, dst = _as_uri(source), _as_uri(destination)
    try:
        client().copy({"Bucket": src.bucket, "Key": src.key}, dst.bucket, dst.key, Config=_COPY)
    except ClientError as error:
        raise _fail(src, error) from error
    return dst


def delete_prefix(prefix: S3Uri | str) -> int:
    """Delete every object under folder `prefix`; returns how many were deleted."""
    base = _as_uri(prefix).as_prefix()
    found = list(list_prefix(base))
    delete([item.uri for item in found])
    return len(found)


def delete(uris: list[S3Uri] | list[str]) -> None:
    """Delete these objects (in a versioned bucket: a delete marker each, the data stays)."""
    by_bucket: dict[str, list[str]] = {}
    for uri in map(_as_uri, uris):
        by_bucket.setdefault(uri.bucket, []).append(uri.key)
    for bucket, keys in by_bucket.items():
        for start in range(0, len(keys), 1000):  # DeleteObjects takes at most 1000 keys
            batch = [{"Key": key} for key in keys[start : start + 1000]]
            try:
                response = client().delete_objects(Bucket=bucket, Delete={"Objects": batch, "Quiet": True})
            except ClientError as error:
                raise _fail(S3Uri(bucket, keys[start]), error) from error
            if response.get("Errors"):
                first = response["Errors"][0]
                raise S3Error(S3Uri(bucket, first.get("Key", "")), first.get("Message", "delete failed"))


def read_bytes(uri: S3Uri | str) -> bytes:
    source = _as_uri(uri)
    try:
        return client().get_object(Bucket=source.bucket, Key=source.key)["Body"].read()
    except ClientError as error:
        raise _fail(source, error) from error


def write_bytes(uri: S3Uri | str, data: bytes, content_type: str = "application/octet-stream") -> None:
    target = _as_uri(uri)
    try:
        client().put_object(Bucket=target.bucket, Key=target.key, Body=data, ContentType=content_type)
    except ClientError as error:
        raise _fail(target, error) from error


def read_json(uri: S3Uri | str) -> Any:
    source = _as_uri(uri)
    try:
        return json.loads(read_bytes(source))
    except json.JSONDecodeError as error:
        raise S3Error(source, f"not valid JSON: {error}") from error


def write_json(uri: S3Uri | str, document: Any) -> None:
    body = json.dumps(document, indent=2, sort_keys=True).encode() + b"\n"
    write_bytes(uri, body, content_type="application/json")
