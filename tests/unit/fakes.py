"""In-memory fakes of the ports in crmsync.ports, with the conditions of the real adapters.

The account fake keeps a sparse poll index beside the records, like the PollDue GSI: only
accounts that poll and have a next poll time are in it, and claim/finish are conditional on it
exactly as DynamoAccountRepository's condition expressions are. Inactive accounts and the
markers of removed ones sit in the same index under `purge-NN` shards (the retention sweep's),
which claim and finish never touch.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from crmsync.clock import iso
from crmsync.models.accounts import MailAccount
from crmsync.models.events import DomainEvent
from crmsync.models.jobs import MailboxActionsJob, SyncAccount
from crmsync.models.pages import Page
from crmsync.models.retention import PurgeRecord
from crmsync.models.servers import ConnectionProblem, MailServerError
from crmsync.models.sync import SyncRun
from crmsync.ports import DueAccount, FolderInfo, PurgeDue, QueuedSync
from crmsync.store import keys
from crmsync.store.cursor import decode_cursor, encode_cursor


class FakeClock:
    def __init__(self, start: datetime) -> None:
        self._now = start

    def now(self) -> datetime:
        return self._now

    def set(self, moment: datetime) -> None:
        self._now = moment

    def advance(self, delta: timedelta) -> None:
        self._now += delta


@dataclass
class PollKeys:
    """The two PollDue key attributes of one account item."""

    shard: str
    next_poll_at: str

    @property
    def is_purge(self) -> bool:
        return self.shard.startswith(keys.PURGE_SHARD_PREFIX)


class FakeAccountRepository:
    def __init__(self) -> None:
        self._accounts: dict[tuple[str, str], MailAccount] = {}
        self._poll_index: dict[tuple[str, str], PollKeys] = {}
        self.credentials: dict[tuple[str, str], dict[str, Any]] = {}
        # The RETENTION markers that removals leave: (company, account) -> purge keys.
        self.retention_markers: dict[tuple[str, str], PollKeys] = {}

    def get(self, company_id: str, account_id: str) -> MailAccount | None:
        account = self._accounts.get((company_id, account_id))
        return account.model_copy(deep=True) if account else None

    def put(self, account: MailAccount, shard_count: int) -> None:
        key = (account.company_id, account.id)
        self._accounts[key] = account.model_copy(deep=True)
        self._poll_index.pop(key, None)
        inactive_since = account.inactive_since
        if account.state.polls and account.next_poll_at is not None:
            self._poll_index[key] = PollKeys(
                keys.poll_shard(account.id, shard_count), iso(account.next_poll_at)
            )
        elif inactive_since is not None:
            self._poll_index[key] = PollKeys(
                keys.purge_shard(account.id, shard_count), iso(inactive_since)
            )

    def due(self, shard: int, now: datetime) -> Iterator[DueAccount]:
        wanted, cutoff = f"{shard:02d}", iso(now)
        hits = sorted(
            (poll.next_poll_at, key)
            for key, poll in self._poll_index.items()
            if poll.shard == wanted and poll.next_poll_at <= cutoff
        )
        for next_poll_at, (company_id, account_id) in hits:
            yield DueAccount(
                account_id=account_id, company_id=company_id, next_poll_at=next_poll_at
            )

    def claim_poll(self, due: DueAccount, lease_until: datetime) -> bool:
        poll = self._poll_index.get((due.company_id, due.account_id))
        if poll is None or poll.is_purge or poll.next_poll_at != due.next_poll_at:
            return False
        poll.next_poll_at = iso(lease_until)
        return True

    def finish_poll(
        self, company_id: str, account_id: str, synced_at: datetime, next_poll_at: datetime
    ) -> None:
        key = (company_id, account_id)
        poll = self._poll_index.get(key)
        if poll is None or poll.is_purge:
            return
        poll.next_poll_at = iso(next_poll_at)
        self._accounts[key] = self._accounts[key].model_copy(
            update={"last_synced_at": synced_at, "next_poll_at": next_poll_at}
        )

    def create(
        self, account: MailAccount, shard_count: int, credentials: dict[str, Any] | None
    ) -> None:
        key = (account.company_id, account.id)
        if key in self._accounts:
            raise AssertionError("create must never overwrite an account")
        self.put(account, shard_count)
        if credentials is not None:
            self.credentials[key] = dict(credentials)

    def save(self, account: MailAccount, shard_count: int, expected_version: int) -> bool:
        stored = self._accounts.get((account.company_id, account.id))
        if stored is None or stored.version != expected_version:
            return False
        self.put(account.model_copy(update={"version": expected_version + 1}), shard_count)
        return True

    def save_credentials(self, company_id: str, account_id: str, sealed: dict[str, Any]) -> None:
        assert (company_id, account_id) in self._accounts
        self.credentials[(company_id, account_id)] = dict(sealed)

    def load_credentials(self, company_id: str, account_id: str) -> dict[str, Any] | None:
        sealed = self.credentials.get((company_id, account_id))
        return dict(sealed) if sealed else None

    def list_for_user(self, company_id: str, user_id: str) -> list[MailAccount]:
        return [
            a for (c, _), a in self._accounts.items() if c == company_id and a.user_id == user_id
        ]

    def list_for_company(self, company_id: str) -> list[MailAccount]:
        return [a for (c, _), a in self._accounts.items() if c == company_id]

    def delete(
        self, company_id: str, account_id: str, shard_count: int, removed_at: datetime
    ) -> int:
        key = (company_id, account_id)
        self.retention_markers[key] = PollKeys(
            keys.purge_shard(account_id, shard_count), iso(removed_at)
        )
        removed = int(self._accounts.pop(key, None) is not None)
        removed += int(self.credentials.pop(key, None) is not None)
        self._poll_index.pop(key, None)
        return removed

    def poll_keys(self, company_id: str, account_id: str) -> PollKeys | None:
        """What the dispatcher's shards of PollDue hold for the account; None when it is not
        there (it may still be in the retention shards: purge_keys)."""
        poll = self._poll_index.get((company_id, account_id))
        return PollKeys(poll.shard, poll.next_poll_at) if poll and not poll.is_purge else None

    def purge_keys(self, company_id: str, account_id: str) -> PollKeys | None:
        """What the retention shards of PollDue hold for the account item (not a marker)."""
        poll = self._poll_index.get((company_id, account_id))
        return PollKeys(poll.shard, poll.next_poll_at) if poll and poll.is_purge else None

    def purge_index(self) -> Iterator[tuple[str, str, str, PollKeys]]:
        """(reason, company, account, keys) of everything in the retention shards."""
        for (company_id, account_id), poll in self._poll_index.items():
            if poll.is_purge:
                yield "inactive", company_id, account_id, poll
        for (company_id, account_id), marker in self.retention_markers.items():
            yield "removed", company_id, account_id, marker

    def release_purge(self, due: PurgeDue, purged_at: datetime) -> bool:
        """DynamoRetentionRepository.release: conditional on the keys seen."""
        key = (due.company_id, due.account_id)
        if due.reason == "removed":
            marker = self.retention_markers.get(key)
            if marker is None or marker.next_poll_at != due.since:
                return False
            del self.retention_markers[key]
            return True
        poll = self._poll_index.get(key)
        if poll is None or not poll.is_purge or poll.next_poll_at != due.since:
            return False
        del self._poll_index[key]
        account = self._accounts[key]
        self._accounts[key] = account.model_copy(
            update={"data_purged_at": purged_at, "version": account.version + 1}
        )
        return True


class FakeSyncRunRepository:
    def __init__(self) -> None:
        self._partitions: dict[str, dict[str, SyncRun]] = {}

    @property
    def recorded(self) -> list[SyncRun]:
        return [run for runs in self._partitions.values() for run in runs.values()]

    def record(self, company_id: str, run: SyncRun) -> bool:
        partition = self._partitions.setdefault(keys.account_pk(company_id, run.account_id), {})
        sort_key = keys.sync_run_sk(iso(run.enqueued_at), run.id)
        if sort_key in partition:
            return False
        partition[sort_key] = run.model_copy(deep=True)
        return True

    def list(
        self, company_id: str, account_id: str, limit: int, cursor: str | None
    ) -> Page[SyncRun]:
        pk = keys.account_pk(company_id, account_id)
        start = decode_cursor(cursor, pk)
        partition = self._partitions.get(pk, {})
        newest_first = sorted(partition, reverse=True)
        if start:
            newest_first = [sk for sk in newest_first if sk < str(start["SK"])]
        page = newest_first[:limit]
        last = {"PK": pk, "SK": page[-1]} if len(newest_first) > limit else None
        return Page[SyncRun](items=[partition[sk] for sk in page], next_cursor=encode_cursor(last))

    def remove_account(self, company_id: str, account_id: str) -> int:
        return len(self._partitions.pop(keys.account_pk(company_id, account_id), {}))


class FakeRetentionRepository:
    """The retention port over the account and sync run fakes (one table in DynamoDB)."""

    def __init__(self, accounts: FakeAccountRepository, runs: FakeSyncRunRepository) -> None:
        self._accounts = accounts
        self._runs = runs
        self.folder_checkpoints: dict[tuple[str, str], set[str]] = {}
        self.records: list[PurgeRecord] = []

    def due(self, shard: int, inactive_before: datetime) -> Iterator[PurgeDue]:
        wanted, cutoff = f"{keys.PURGE_SHARD_PREFIX}{shard:02d}", iso(inactive_before)
        hits = sorted(
            (poll.next_poll_at, reason, company_id, account_id)
            for reason, company_id, account_id, poll in self._accounts.purge_index()
            if poll.shard == wanted and poll.next_poll_at <= cutoff
        )
        for since, reason, company_id, account_id in hits:
            yield PurgeDue(
                company_id=company_id,
                account_id=account_id,
                reason="removed" if reason == "removed" else "inactive",
                since=since,
            )

    def still_due(self, due: PurgeDue) -> bool:
        return any(
            (reason, company_id, account_id, poll.next_poll_at)
            == (due.reason, due.company_id, due.account_id, due.since)
            for reason, company_id, account_id, poll in self._accounts.purge_index()
        )

    def purge(self, company_id: str, account_id: str) -> dict[str, int]:
        return {
            "sync_runs": self._runs.remove_account(company_id, account_id),
            "folder_checkpoints": len(self.folder_checkpoints.pop((company_id, account_id), set())),
        }

    def record(self, record: PurgeRecord) -> None:
        self.records.append(record.model_copy(deep=True))

    def release(self, due: PurgeDue, purged_at: datetime) -> bool:
        return self._accounts.release_purge(due, purged_at)


class FakeJobQueue:
    def __init__(self) -> None:
        self.sent: list[tuple[SyncAccount | MailboxActionsJob, str]] = []

    @property
    def jobs(self) -> list[SyncAccount]:
        return [job for job, _ in self.sent if isinstance(job, SyncAccount)]

    @property
    def action_jobs(self) -> list[MailboxActionsJob]:
        return [job for job, _ in self.sent if isinstance(job, MailboxActionsJob)]

    def send_syncs(self, jobs: Sequence[QueuedSync]) -> None:
        self.sent.extend((queued.job, queued.deduplication_id) for queued in jobs)


class FakeEventPublisher:
    def __init__(self) -> None:
        self.events: list[DomainEvent] = []

    def publish(self, events: Sequence[DomainEvent]) -> None:
        self.events.extend(events)


class FakeSecretBox:
    """Reversible 'sealing' that, like KMS envelope encryption, refuses another context."""

    def seal(self, password: str, context: dict[str, str]) -> dict[str, Any]:
        return {"box": password[::-1], "context": dict(context)}

    def open(self, sealed: dict[str, Any], context: dict[str, str]) -> str:
        if sealed["context"] != context:
            raise ValueError("sealed for another account")
        return str(sealed["box"])[::-1]


class FakeMailbox:
    """A mail server with one password per login; `down` makes it unreachable."""

    def __init__(self) -> None:
        self.passwords: dict[str, str] = {}
        self.down = False
        self.folders = [
            FolderInfo(name="INBOX", delimiter="/"),
            FolderInfo(name="Sent", delimiter="/", flags=["\\Sent"], special_use="\\Sent"),
        ]

    def _login(self, account: MailAccount, password: str) -> None:
        if self.down:
            raise MailServerError(
                ConnectionProblem(
                    code="connection_refused",
                    message="Nothing answers.",
                    action="Check the server and port.",
                )
            )
        if self.passwords.get(account.login) != password:
            raise MailServerError(
                ConnectionProblem(
                    code="auth_failed",
                    message="The mail server refused the user name or password.",
                    action="If your provider uses "
                    "two-factor authentication, create an app password and "
                    "re-authenticate.",
                )
            )

    def verify(self, account: MailAccount, password: str) -> list[FolderInfo]:
        self._login(account, password)
        return list(self.folders)
