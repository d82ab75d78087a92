"""The retention sweep (SPEC E7): synced data of accounts inactive for more than 30 days,
or removed 30 days ago, is purged, and a record says that it was."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from crmsync.clock import Clock
from crmsync.models.events import DomainEvent
from crmsync.models.retention import PurgeRecord
from crmsync.ports import EventPublisher, PurgeDue, RetentionRepository

RETENTION = timedelta(days=30)


@dataclass(frozen=True)
class SweepResult:
    purged: int
    items_deleted: int
    complete: bool = True


class RetentionSweeper:
    """Reads the `purge-NN` shards of the PollDue index (a Query each, never a Scan).

    The index holds when each account's clock started (it went stopped, needs_reauth or
    permission_denied, or was removed), so the period is applied here, at read time: a
    changed period holds for every account at once. Per account: re-check, purge, record,
    announce, and only then release the keys, so a crash anywhere repeats the purge the next
    day instead of losing it; an account resumed meanwhile fails the re-check or the release.
    """

    def __init__(
        self,
        retention: RetentionRepository,
        events: EventPublisher,
        clock: Clock,
        shard_count: int,
        after: timedelta = RETENTION,
    ) -> None:
        self._retention = retention
        self._events = events
        self._clock = clock
        self._shard_count = shard_count
        self._after = after

    def sweep(self, keep_going: Callable[[], bool] = lambda: True) -> SweepResult:
        """Purge every account that is due; `keep_going` False stops between accounts (the
        rest stays due for the next run)."""
        inactive_before = self._clock.now() - self._after
        purged = deleted = 0
        for shard in range(self._shard_count):
            for due in self._retention.due(shard, inactive_before):
                if not keep_going():
                    return SweepResult(purged, deleted, complete=False)
                record = self._purge(due)
                if record is not None:
                    purged += 1
                    deleted += record.items_deleted
        return SweepResult(purged, deleted)

    def _purge(self, due: PurgeDue) -> PurgeRecord | None:
        if not self._retention.still_due(due):
            return None
        counts = self._retention.purge(due.company_id, due.account_id)
        now = self._clock.now()
        record = PurgeRecord(
            company_id=due.company_id,
            account_id=due.account_id,
            reason=due.reason,
            since=datetime.fromisoformat(due.since),
            purged_at=now,
            counts=counts,
        )
        self._retention.record(record)
        self._events.publish(
            [
                DomainEvent(
                    detail_type="account.data_purged",
                    company_id=due.company_id,
                    occurred_at=now,
                    detail={
                        "account_id": due.account_id,
                        "reason": due.reason,
                        "since": record.since.isoformat(),
                        "counts": counts,
                    },
                )
            ]
        )
        self._retention.release(due, now)
        return record
