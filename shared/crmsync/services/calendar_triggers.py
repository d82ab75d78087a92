"""What starts a calendar sync besides a user's "sync now": an activity that changes (its
owner's calendar accounts get a push marker and a job), and the schedule (due accounts)."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Protocol

from crmsync.clock import Clock, iso
from crmsync.models.activities import Activity
from crmsync.models.calendar import CalendarAccount, CalendarSyncJob
from crmsync.models.directory import Record
from crmsync.ports import CalendarSyncQueue, DueAccount
from crmsync.services.directory import DirectoryChanges


class CalendarAccountsOfUser(Protocol):
    def list_for_user(self, company_id: str, user_id: str) -> list[CalendarAccount]: ...


class PushMarkers(Protocol):
    def mark_push(
        self, company_id: str, account_id: str, activity_id: str, changed_at: datetime
    ) -> None: ...


class CalendarPushOnChange:
    """Told after every committed directory write. An activity's change marks it for the
    push of each calendar account of its owner (before and after, when the owner changed)
    that has a calendar chosen, and queues a sync of those that poll. The marker stays until
    a push handles it, so a change made while an account waits for re-authentication is
    pushed by the first sync after it."""

    def __init__(
        self,
        accounts: CalendarAccountsOfUser,
        markers: PushMarkers,
        queue: CalendarSyncQueue,
        clock: Clock,
    ) -> None:
        self._accounts = accounts
        self._markers = markers
        self._queue = queue
        self._clock = clock

    def changed(self, company_id: str, before: Record | None, after: Record | None) -> None:
        record = after or before
        if not isinstance(record, Activity):
            return
        now = self._clock.now()
        owners = sorted({r.owner_id for r in (before, after) if isinstance(r, Activity)})
        jobs: list[CalendarSyncJob] = []
        for owner in owners:
            for account in self._accounts.list_for_user(company_id, owner):
                if account.calendar_id is None:
                    continue
                self._markers.mark_push(company_id, account.id, record.id, now)
                if account.state.polls:
                    jobs.append(
                        CalendarSyncJob(
                            job_id=f"{account.id}:activity:{record.id}:{iso(now)}",
                            company_id=company_id,
                            account_id=account.id,
                            reason="activity",
                            enqueued_at=now,
                        )
                    )
        if jobs:
            self._queue.send(jobs)


class DirectoryChangeListeners:
    """Several listeners behind DirectoryService's one `changes` hook, told in order."""

    def __init__(self, listeners: Sequence[DirectoryChanges]) -> None:
        self._listeners = list(listeners)

    def changed(self, company_id: str, before: Record | None, after: Record | None) -> None:
        for listener in self._listeners:
            listener.changed(company_id, before, after)


class DueCalendarAccounts(Protocol):
    def due(self, shard: int, now: datetime) -> Iterator[DueAccount]: ...

    def claim(self, due: DueAccount, lease_until: datetime) -> bool: ...


@dataclass(frozen=True)
class CalendarDispatch:
    due: int
    enqueued: int
    lost_claims: int


class CalendarPollDispatcher:
    """Due calendar accounts (PollDue shards `CAL#NN`, one Query each) → one job each. The
    claim moves the account's next poll to now + the lease (the poll interval) before the
    job is sent, so two ticks never queue it twice and an idle sync needs no write."""

    def __init__(
        self,
        accounts: DueCalendarAccounts,
        queue: CalendarSyncQueue,
        clock: Clock,
        shard_count: int,
        lease: timedelta,
    ) -> None:
        self._accounts = accounts
        self._queue = queue
        self._clock = clock
        self._shard_count = shard_count
        self._lease = lease

    def dispatch(self) -> CalendarDispatch:
        now = self._clock.now()
        due = lost = 0
        jobs: list[CalendarSyncJob] = []
        for shard in range(self._shard_count):
            for account in self._accounts.due(shard, now):
                due += 1
                if not self._accounts.claim(account, now + self._lease):
                    lost += 1
                    continue
                jobs.append(
                    CalendarSyncJob(
                        job_id=f"{account.account_id}:schedule:{account.next_poll_at}",
                        company_id=account.company_id,
                        account_id=account.account_id,
                        reason="schedule",
                        enqueued_at=now,
                    )
                )
        if jobs:
            self._queue.send(jobs)
        return CalendarDispatch(due=due, enqueued=len(jobs), lost_claims=lost)
