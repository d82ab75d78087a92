"""The poll dispatcher: which accounts are due, one SyncAccount job each."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from crmsync.clock import Clock, iso
from crmsync.models.jobs import SyncAccount
from crmsync.ports import AccountRepository, JobQueue, QueuedSync


@dataclass(frozen=True)
class DispatchResult:
    due: int
    enqueued: int
    lost_claims: int


class PollDispatcher:
    """Reads the sparse PollDue index shard by shard (a Query each, never a Scan).

    Claiming moves `next_poll_at` forward by a lease with a conditional write before the job
    is sent, so overlapping ticks or a second dispatcher never enqueue the same account twice.
    The runtime makes the lease the poll interval: the claim is then the poll's only write,
    and a sync of an unchanged mailbox writes nothing more (SPEC S1); a sync that changed
    something or failed reschedules the account itself. A job lost in between is retried when
    the lease runs out, and a sync still running when the next one is due makes the FIFO
    group queue the next behind it.
    """

    def __init__(
        self,
        accounts: AccountRepository,
        queue: JobQueue,
        clock: Clock,
        shard_count: int,
        lease: timedelta,
    ) -> None:
        self._accounts = accounts
        self._queue = queue
        self._clock = clock
        self._shard_count = shard_count
        self._lease = lease

    def dispatch(self) -> DispatchResult:
        now = self._clock.now()
        due = lost = 0
        claimed: list[QueuedSync] = []
        for shard in range(self._shard_count):
            for account in self._accounts.due(shard, now):
                due += 1
                if not self._accounts.claim_poll(account, now + self._lease):
                    lost += 1
                    continue
                job = SyncAccount(
                    job_id=f"{account.account_id}:{account.next_poll_at}",
                    account_id=account.account_id,
                    company_id=account.company_id,
                    enqueued_at=now,
                )
                claimed.append(
                    QueuedSync(job=job, deduplication_id=f"{account.account_id}:{iso(now)}")
                )
        self._queue.send_syncs(claimed)
        return DispatchResult(due=due, enqueued=len(claimed), lost_claims=lost)
