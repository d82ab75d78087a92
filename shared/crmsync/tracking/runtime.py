"""The public tracking function's composition root.

`crmsync.runtime` builds every adapter of the API and the workers and imports them all
(about a second on a cold start); the pixel and the redirect need three: the table, the
key set and the bus. So this builds just those, each on first use, from the same Settings.
The API reaches the same service through `crmsync.runtime.Runtime.tracking_service`.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from functools import cached_property, lru_cache
from typing import TYPE_CHECKING, Any

from crmsync.clock import Clock, SystemClock
from crmsync.config import Settings
from crmsync.tracking.keys import ParameterKeys
from crmsync.tracking.service import TrackingService

if TYPE_CHECKING:
    from crmsync.messaging.eventbridge import EventBridgePublisher
    from crmsync.store.tracking import DynamoTrackingStore


def aws_client(service: str) -> Any:
    """A boto3 client with the project's timeouts and retries (imported on first use)."""
    import boto3
    from botocore.config import Config

    config = Config(connect_timeout=3, read_timeout=10, retries={"mode": "standard"})
    return boto3.client(service, config=config)  # type: ignore[call-overload]


def _required(value: str | None, name: str) -> str:
    if not value:
        raise RuntimeError(f"{name} is missing from the function's environment.")
    return value


@dataclass
class TrackingRuntime:
    settings: Settings
    clock: Clock

    @cached_property
    def keys(self) -> ParameterKeys:
        return ParameterKeys(
            _required(self.settings.tracking_keys_parameter, "TRACKING_KEYS_PARAMETER")
        )

    @cached_property
    def store(self) -> DynamoTrackingStore:
        from crmsync.store.tracking import DynamoTrackingStore

        return DynamoTrackingStore(aws_client("dynamodb"), self.settings.table_name)

    @cached_property
    def events(self) -> EventBridgePublisher:
        from crmsync.messaging.eventbridge import EventBridgePublisher

        bus = _required(self.settings.event_bus_name, "EVENT_BUS_NAME")
        return EventBridgePublisher(aws_client("events"), bus)

    @cached_property
    def service(self) -> TrackingService:
        return TrackingService(
            self.store,
            self.keys.signer,
            self.events,
            self.clock.now,
            base_url=self.settings.tracking_base_url,
        )


@lru_cache(maxsize=1)
def tracking_runtime() -> TrackingRuntime:
    return TrackingRuntime(settings=Settings.from_env(os.environ), clock=SystemClock())
