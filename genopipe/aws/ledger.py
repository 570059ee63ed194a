"""The intake ledger (genopipe.intake.admission.Ledger) as one DynamoDB table, `pk` its only key.

- `execution#<name>`: the execution was started (conditional put: the first writer wins); expires
  with `expires_at` after Step Functions' own 90-day name retention.
- `waiting#s3://<bucket>/<folder><sample>`: a sample that has not started yet, with the times it
  was first and last seen; deleted when it starts or is reported.
- `run#s3://<bucket>/<folder><sample>`: the FASTQ objects (URI -> ETag) of the sample's newest run,
  to tell a re-upload in progress (some files replaced, some not yet) from a new sample.
- `submit#<token>`: a step's Batch job was (being) submitted (genopipe.jobs.submission): the claim
  time and, once submitted, the job id; expires like an execution's entry.
"""

from __future__ import annotations

import json
import time
from typing import TYPE_CHECKING, Any

import boto3

from genopipe.aws.clients import sdk_client
from genopipe.intake.admission import Waiting
from genopipe.jobs.submission import Claim

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient
else:
    DynamoDBClient = Any

EXECUTION_RETENTION_S = 90 * 24 * 3600
_EXECUTION, _WAITING, _SUBMIT, _RUN = "execution#", "waiting#", "submit#", "run#"


@sdk_client
def client() -> DynamoDBClient:
    return boto3.client("dynamodb")


def _number(value: float) -> dict[str, str]:
    return {"N": repr(float(value))}


class DynamoLedger:
    def __init__(self, table: str) -> None:
        self.table = table

    def claim(self, execution: str, sample: str, now: float) -> bool:
        dynamo = client()
        try:
            dynamo.put_item(
                TableName=self.table,
                Item={
                    "pk": {"S": _EXECUTION + execution},
                    "sample": {"S": sample},
                    "claimed_at": _number(now),
                    "expires_at": {"N": str(int(now) + EXECUTION_RETENTION_S)},
                },
                ConditionExpression="attribute_not_exists(pk)",
            )
        except dynamo.exceptions.ConditionalCheckFailedException:
            return False
        return True

    def note_waiting(self, waiting: Waiting) -> None:
        client().update_item(
            TableName=self.table,
            Key={"pk": {"S": _WAITING + waiting.identity}},
            UpdateExpression=(
                "SET #bucket = :bucket, #trigger = :trigger, #sample = :sample, #reason = :reason, "
                "#last_seen = :now, #settling = :settling, #first_seen = if_not_exists(#first_seen, :now)"
            ),
            ExpressionAttributeNames={
                f"#{name}": name
                for name in ("bucket", "trigger", "sample", "reason", "last_seen", "settling", "first_seen")
            },
            ExpressionAttributeValues={
                ":bucket": {"S": waiting.bucket},
                ":trigger": {"S": waiting.trigger},
                ":sample": {"S": waiting.sample},
                ":reason": {"S": waiting.reason},
                ":now": _number(waiting.last_seen),
                ":settling": {"BOOL": waiting.settling},
            },
        )

    def clear_waiting(self, identity: str) -> None:
        client().delete_item(TableName=self.table, Key={"pk": {"S": _WAITING + identity}})

    def remove_waiting(self, waiting: Waiting) -> bool:
        dynamo = client()
        try:
            dynamo.delete_item(
                TableName=self.table,
                Key={"pk": {"S": _WAITING + waiting.identity}},
                ConditionExpression="#last_seen = :seen",
                ExpressionAttributeNames={"#last_seen": "last_seen"},
                ExpressionAttributeValues={":seen": _number(waiting.last_seen)},
            )
        except dynamo.exceptions.ConditionalCheckFailedException:
            return False
        return True

    def waiting(self) -> list[Waiting]:
        found = []
        pages = (
            client()
            .get_paginator("scan")
            .paginate(
                TableName=self.table,
                FilterExpression="begins_with(pk, :waiting)",
                ExpressionAttributeValues={":waiting": {"S": _WAITING}},
                ConsistentRead=True,
            )
        )
        for page in pages:
            for item in page.get("Items", []):
                found.append(
                    Waiting(
                        identity=item["pk"]["S"].removeprefix(_WAITING),
                        bucket=item["bucket"]["S"],
                        trigger=item["trigger"]["S"],
                        sample=item["sample"]["S"],
                        reason=item["reason"]["S"],
                        first_seen=float(item["first_seen"]["N"]),
                        last_seen=float(item["last_seen"]["N"]),
                        settling=bool(item.get("settling", {}).get("BOOL", False)),
                    )
                )
        return sorted(found, key=lambda w: w.first_seen)

    def record_run(self, identity: str, inputs: dict[str, str]) -> None:
        client().put_item(
            TableName=self.table,
            Item={
                "pk": {"S": _RUN + identity},
                "inputs": {"S": json.dumps(inputs, sort_keys=True)},
                "expires_at": {"N": str(int(time.time()) + EXECUTION_RETENTION_S)},
            },
        )

    def last_run(self, identity: str) -> dict[str, str] | None:
        item = client().get_item(
            TableName=self.table, Key={"pk": {"S": _RUN + identity}}, ConsistentRead=True
        )
        found = item.get("Item")
        return None if found is None else dict(json.loads(found["inputs"]["S"]))


class DynamoSubmissions:
    """genopipe.jobs.submission.SubmissionLedger in the intake table."""

    def __init__(self, table: str) -> None:
        self.table = table

    def claim_submission(self, token: str, now: float) -> Claim | None:
        dynamo = client()
        try:
            dynamo.put_item(
                TableName=self.table,
                Item={
                    "pk": {"S": _SUBMIT + token},
                    "claimed_at": _number(now),
                    "expires_at": {"N": str(int(now) + EXECUTION_RETENTION_S)},
                },
                ConditionExpression="attribute_not_exists(pk)",
            )
        except dynamo.exceptions.ConditionalCheckFailedException:
            key = {"pk": {"S": _SUBMIT + token}}
            item = dynamo.get_item(TableName=self.table, Key=key, ConsistentRead=True)["Item"]
            job_id = item.get("job_id", {}).get("S")
            return Claim(claimed_at=float(item["claimed_at"]["N"]), job_id=job_id)
        return None

    def record_submission(self, token: str, job_id: str) -> None:
        client().update_item(
            TableName=self.table,
            Key={"pk": {"S": _SUBMIT + token}},
            UpdateExpression="SET job_id = :job",
            ExpressionAttributeValues={":job": {"S": job_id}},
        )
