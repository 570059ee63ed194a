"""The intake's view of the input bucket (genopipe.intake.InputStore) over genopipe.aws.s3."""

from __future__ import annotations

from genopipe.aws import s3
from genopipe.s3uri import S3Uri


class S3InputStore:
    def list_folder(self, bucket: str, folder: str) -> dict[str, str]:
        return {
            item.uri.key: item.etag
            for item in s3.list_prefix(S3Uri(bucket, folder))
            if "/" not in item.uri.key[len(folder) :]
        }

    def read_text(self, uri: str) -> str:
        data = s3.read_bytes(uri)
        try:
            return data.decode("utf-8")
        except UnicodeDecodeError as error:
            raise s3.S3Error(uri, f"not UTF-8 text: {error}") from error

    def etag(self, uri: str) -> str | None:
        try:
            return s3.head(uri).etag
        except s3.S3NotFound:
            return None
