"""The intake's on-failure destination (genopipe.intake.admission.FailedUploads) as an SQS queue.

Each message is Lambda's destination record for an asynchronous invocation that failed after its
retries: `requestPayload` is the S3 event, `responsePayload` the error the handler raised.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote_plus

import boto3

from genopipe.aws.clients import sdk_client
from genopipe.intake.admission import FailedUpload

if TYPE_CHECKING:
    from mypy_boto3_sqs import SQSClient
else:
    SQSClient = Any


@sdk_client
def client() -> SQSClient:
    return boto3.client("sqs")


def uploads_of(record: dict[str, Any], receipt: str) -> list[FailedUpload]:
    """The uploads one destination record names (an S3 event may hold several records)."""
    response = record.get("responsePayload") or {}
    error = (
        f"{response.get('errorType', 'error')}: {response.get('errorMessage', record.get('requestContext'))}"
    )
    uploads = []
    for entry in (record.get("requestPayload") or {}).get("Records", []):
        s3 = entry.get("s3", {})
        key = s3.get("object", {}).get("key")
        if key is not None:
            uploads.append(
                FailedUpload(receipt, s3.get("bucket", {}).get("name", ""), unquote_plus(key), error)
            )
    return uploads


class SqsFailedUploads:
    def __init__(self, queue_url: str) -> None:
        self.queue_url = queue_url

    def receive(self) -> list[FailedUpload]:
        messages = (
            client()
            .receive_message(
                QueueUrl=self.queue_url, MaxNumberOfMessages=10, WaitTimeSeconds=0, VisibilityTimeout=300
            )
            .get("Messages", [])
        )
        uploads = []
        for message in messages:
            try:
                record = json.loads(message["Body"])
            except json.JSONDecodeError:
                record = {}
            found = uploads_of(record, message["ReceiptHandle"])
            if not found:  # not a destination record we understand: drop it, saying so in the log
                self.delete(message["ReceiptHandle"])
            uploads.extend(found)
        return uploads

    def delete(self, receipt: str) -> None:
        client().delete_message(QueueUrl=self.queue_url, ReceiptHandle=receipt)
