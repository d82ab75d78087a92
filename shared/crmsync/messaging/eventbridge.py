"""Domain events onto the product's EventBridge bus."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from crmsync.models.events import EVENT_SOURCE, DomainEvent

if TYPE_CHECKING:
    from mypy_boto3_events import EventBridgeClient

PUT_EVENTS_MAX = 10


class EventPublishError(RuntimeError):
    """Some events were not accepted; the caller's job fails and is retried."""


class EventBridgePublisher:
    def __init__(self, client: EventBridgeClient, bus_name: str) -> None:
        self._client = client
        self._bus_name = bus_name

    def publish(self, events: Sequence[DomainEvent]) -> None:
        for start in range(0, len(events), PUT_EVENTS_MAX):
            chunk = events[start : start + PUT_EVENTS_MAX]
            entries: list[Any] = [
                {
                    "Source": EVENT_SOURCE,
                    "DetailType": event.detail_type,
                    "Detail": json.dumps(
                        {"company_id": event.company_id, **event.detail}, default=str
                    ),
                    "EventBusName": self._bus_name,
                    "Time": event.occurred_at,
                }
                for event in chunk
            ]
            reply = self._client.put_events(Entries=entries)
            if reply.get("FailedEntryCount"):
                raise EventPublishError(f"{reply['FailedEntryCount']} events were not accepted")
