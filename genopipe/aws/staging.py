"""The notify Lambda's view of staging (genopipe.notify.announce.Staging) over genopipe.aws.s3."""

from __future__ import annotations

from typing import Any

from genopipe.aws import s3
from genopipe.s3uri import S3Uri


class S3Staging:
    def list_relative(self, prefix: str) -> list[str]:
        base = S3Uri.parse(prefix).as_prefix()
        return [item.uri.relative_to(base) for item in s3.list_prefix(base)]

    def copy(self, source: str, destination: str) -> None:
        s3.copy(source, destination)

    def delete_prefix(self, prefix: str) -> int:
        return s3.delete_prefix(prefix)

    def delete(self, uris: list[str]) -> None:
        s3.delete(uris)

    def read_json(self, uri: str) -> Any:
        return s3.read_json(uri)
