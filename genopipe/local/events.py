"""Capture every genopipe EventBridge event: a rule on each bus -> an SQS queue -> listeners.

This is the chain moto delivers (rules with Lambda or Step Functions targets are not emulated),
and it is what a user's own consumer of the events would do on AWS.
"""

from __future__ import annotations

import json
import logging
import threading
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import boto3

log = logging.getLogger(__name__)

SOURCE = "genopipe"
QUEUE_NAME = "genopipe-local-events"
RULE_NAME = "genopipe-local-capture"


class EventCapture:
    """Receives the genopipe events; appends each to `events_file` (one JSON line) and tells listeners."""

    def __init__(self, events_file: Path | None = None) -> None:
        self.events_file = events_file
        self.listeners: list[Callable[[dict[str, Any]], None]] = []
        self.received: list[dict[str, Any]] = []
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._file_lock = threading.Lock()
        # a queue and rule of its own: two stacks in one process share moto's backends, and with
        # one shared queue each capture thread would take some of the other stack's events
        suffix = uuid.uuid4().hex[:8]
        self.queue_name, self.rule_name = f"{QUEUE_NAME}-{suffix}", f"{RULE_NAME}-{suffix}"

    def start(self) -> None:
        sqs = boto3.client("sqs")
        events = boto3.client("events")
        queue_url = sqs.create_queue(QueueName=self.queue_name)["QueueUrl"]
        queue_arn = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])["Attributes"][
            "QueueArn"
        ]
        for bus in events.list_event_buses()["EventBuses"]:
            events.put_rule(
                Name=self.rule_name, EventBusName=bus["Name"], EventPattern=json.dumps({"source": [SOURCE]})
            )
            events.put_targets(
                Rule=self.rule_name,
                EventBusName=bus["Name"],
                Targets=[{"Id": "local-capture", "Arn": queue_arn}],
            )
        self._thread = threading.Thread(
            target=self._poll, args=(queue_url,), name="genopipe-events", daemon=True
        )
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def _poll(self, queue_url: str) -> None:
        sqs = boto3.client("sqs")
        while not self._stop.is_set():
            try:
                messages = sqs.receive_message(
                    QueueUrl=queue_url, MaxNumberOfMessages=10, WaitTimeSeconds=1
                ).get("Messages", [])
            except Exception as error:  # the server is going away
                log.debug("event capture: %s", error)
                if self._stop.wait(0.5):
                    return
                continue
            for message in messages:
                self._deliver(json.loads(message["Body"]))
                sqs.delete_message(QueueUrl=queue_url, ReceiptHandle=message["ReceiptHandle"])

    def _deliver(self, event: dict[str, Any]) -> None:
        self.received.append(event)
        if self.events_file is not None:
            with self._file_lock, self.events_file.open("a") as out:
                out.write(json.dumps(event, separators=(",", ":")) + "\n")
        for listener in list(self.listeners):
            try:
                listener(event)
            except Exception:
                log.exception("event capture: a listener failed")
