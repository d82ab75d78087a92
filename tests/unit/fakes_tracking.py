"""An in-memory TrackingStore with the DynamoDB adapter's semantics (one partition per
message; the first-open marker is a conditional put)."""

from __future__ import annotations

from datetime import datetime

from crmsync.tracking.models import TrackedMessage, TrackingHit
from crmsync.tracking.service import TrackingStoreError


class FakeTrackingStore:
    def __init__(self) -> None:
        self.messages: dict[tuple[str, str], TrackedMessage] = {}
        self.hits: dict[tuple[str, str], list[TrackingHit]] = {}
        self.first_opens: dict[tuple[str, str, str], datetime] = {}
        self.broken = False

    def _check(self) -> None:
        if self.broken:
            raise TrackingStoreError("the table is unreachable")

    def register(self, message: TrackedMessage) -> None:
        self._check()
        self.messages[(message.company_id, message.message_key)] = message

    def registered(self, company_id: str, message_key: str) -> TrackedMessage | None:
        self._check()
        return self.messages.get((company_id, message_key))

    def add_hit(self, company_id: str, message_key: str, hit: TrackingHit) -> None:
        self._check()
        self.hits.setdefault((company_id, message_key), []).append(hit)

    def mark_first_open(
        self, company_id: str, message_key: str, recipient: str, at: datetime
    ) -> bool:
        self._check()
        key = (company_id, message_key, recipient)
        if key in self.first_opens:
            return False
        self.first_opens[key] = at
        return True

    def partition(
        self, company_id: str, message_key: str
    ) -> tuple[TrackedMessage | None, list[TrackingHit]]:
        self._check()
        key = (company_id, message_key)
        return self.messages.get(key), list(self.hits.get(key, []))
