"""EventBridge PutEvents for the notify Lambda (genopipe.notify.announce.EventBus)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import boto3

from genopipe.aws.clients import sdk_client
from genopipe.contracts import SampleEvent

if TYPE_CHECKING:
    from mypy_boto3_events import EventBridgeClient
else:
    EventBridgeClient = Any


class PutEventsFailed(Exception):
    """EventBridge accepted the call but not the entry."""


@sdk_client
def client() -> EventBridgeClient:
    return boto3.client("events")


class EventBridgeBus:
    def __init__(self, bus_name: str = "default") -> None:
        self.bus_name = bus_name

    def put(self, event: SampleEvent) -> None:
        response = client().put_events(
            Entries=[
                {
                    "Source": event.source,
                    "DetailType": event.detail_type,
                    "Detail": event.detail.model_dump_json(exclude_none=True),
                    "EventBusName": self.bus_name,
                }
            ]
        )
        if response.get("FailedEntryCount"):
            entry = response["Entries"][0]
            raise PutEventsFailed(f"{self.bus_name}: {entry.get('ErrorCode')}: {entry.get('ErrorMessage')}")
