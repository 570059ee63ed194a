"""The notify Lambda's view of staging (genopipe.notification.Staging) over genopipe.s3."""

from __future__ import annotations

from typing import Any

from genopipe import s3


class S3Staging:
    def list_relative(self, prefix: str) -> list[str]:
        base = s3.S3Uri.parse(prefix).as_prefix()
        return [item.uri.relative_to(base) for item in s3.list_prefix(base)]

    def copy(self, source: str, destination: str) -> None:
        s3.copy(source, destination)

    def delete_prefix(self, prefix: str) -> int:
        return s3.delete_prefix(prefix)

    def read_json(self, uri: str) -> Any:
        return s3.read_json(uri)
