"""`S3Uri`: an S3 location as a value, and `S3UriField`, the same for pydantic models.

No boto3 here: domain code, the boundary models and the job steps all name S3 locations with this
one type (genopipe.aws.s3 is the adapter that reads and writes them).

URIs are written the way the AWS CLI writes them: `s3://bucket/key`, with the key verbatim (not
URL-encoded), so keys may hold spaces, unicode and `+`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from pydantic import PlainSerializer, PlainValidator

_SCHEME = "s3://"


@dataclass(frozen=True, order=True)
class S3Uri:
    """`s3://bucket/key`. A prefix is an S3Uri whose key ends with `/` (or is empty)."""

    bucket: str
    key: str = ""

    @classmethod
    def parse(cls, uri: str) -> S3Uri:
        if not uri.startswith(_SCHEME):
            raise ValueError(f"not an s3:// URI: {uri!r}")
        bucket, _, key = uri[len(_SCHEME) :].partition("/")
        if not bucket:
            raise ValueError(f"s3 URI has no bucket: {uri!r}")
        return cls(bucket, key)

    def __str__(self) -> str:
        return f"{_SCHEME}{self.bucket}/{self.key}"

    @property
    def name(self) -> str:
        """The last path component of the key (`reads_R1.fastq.gz`)."""
        return self.key.rstrip("/").rsplit("/", 1)[-1]

    def as_prefix(self) -> S3Uri:
        """The same location with a trailing `/`, so `join` and listing treat it as a folder."""
        if not self.key or self.key.endswith("/"):
            return self
        return S3Uri(self.bucket, self.key + "/")

    def join(self, *parts: str) -> S3Uri:
        """`s3://b/staging/` joined with `qc`, `x.json` -> `s3://b/staging/qc/x.json`."""
        key = self.as_prefix().key + "/".join(p.strip("/") for p in parts)
        return S3Uri(self.bucket, key)

    def relative_to(self, prefix: S3Uri) -> str:
        base = prefix.as_prefix()
        if self.bucket != base.bucket or not self.key.startswith(base.key):
            raise ValueError(f"{self} is not under {base}")
        return self.key[len(base.key) :]

    @property
    def folder(self) -> str:
        """The key's folder with its trailing `/` (`""` at the bucket root)."""
        return folder_of(self.key)


def folder_of(key: str) -> str:
    """`runs/A/S1_R1.fastq.gz` -> `runs/A/`; a key at the bucket root -> `""`."""
    return key[: key.rfind("/") + 1]


def _parse_object_uri(value: object) -> S3Uri:
    if isinstance(value, S3Uri):
        return value
    if not isinstance(value, str):
        raise ValueError("expected an s3:// URI string")
    uri = S3Uri.parse(value)
    if not uri.key.strip("/"):
        raise ValueError(f"s3 URI has no key: {value!r}")
    return uri


# an s3:// URI with a key, in a pydantic model: parsed on input, written back as the string
S3UriField = Annotated[S3Uri, PlainValidator(_parse_object_uri), PlainSerializer(str, return_type=str)]
