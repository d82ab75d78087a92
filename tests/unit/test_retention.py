"""The retention sweep (SPEC E7): inactive or removed for 30 days -> purged once, recorded."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from botocore.exceptions import ClientError
from pydantic import SecretStr, ValidationError

from crmsync.clock import iso
from crmsync.config import Settings
from crmsync.models.accounts import AccountKind, AccountState, MailAccount, SyncSettingsPatch
from crmsync.models.identity import Principal
from crmsync.models.retention import PurgeRecord
from crmsync.models.servers import ConnectionProblem, ServerEndpoint
from crmsync.models.sync import SyncRun
from crmsync.ports import PurgeDue
from crmsync.services.accounts import AccountService, ConnectAccount
from crmsync.services.polling import PollDispatcher
from crmsync.services.retention import RetentionSweeper, SweepResult
from crmsync.store.dynamodb import DynamoAccountRepository
from crmsync.store.keys import purge_shard
from crmsync.store.retention import DynamoRetentionRepository
from tests.unit.fakes import (
    FakeAccountRepository,
    FakeClock,
    FakeEventPublisher,
    FakeJobQueue,
    FakeMailbox,
    FakeRetentionRepository,
    FakeSecretBox,
    FakeSyncRunRepository,
)

NOW = datetime(2025, 3, 3, 9, 0, tzinfo=UTC)
SHARDS = 8
OWNER = Principal(user_id="u1", company_id="c1", role="user", email="alex@example.com")
IMAP = ServerEndpoint(host="imap.example.com", port=993, security="ssl")
SMTP = ServerEndpoint(host="smtp.example.com", port=465, security="ssl")


class World:
    def __init__(self) -> None:
        self.clock = FakeClock(NOW)
        self.accounts = FakeAccountRepository()
        self.runs = FakeSyncRunRepository()
        self.retention = FakeRetentionRepository(self.accounts, self.runs)
        self.events = FakeEventPublisher()
        self.jobs = FakeJobQueue()
        self.mailbox = FakeMailbox()
        self.mailbox.passwords["alex@example.com"] = "pw"
        ids = iter(f"acct{n}" for n in range(100))
        self.service = AccountService(
            self.accounts,
            FakeSecretBox(),
            self.mailbox,
            self.jobs,
            self.events,
            self.clock,
            shard_count=SHARDS,
            poll_interval=timedelta(minutes=5),
            new_id=lambda: next(ids),
        )
        self.sweeper = RetentionSweeper(self.retention, self.events, self.clock, SHARDS)
        self.dispatcher = PollDispatcher(
            self.accounts, self.jobs, self.clock, SHARDS, lease=timedelta(minutes=15)
        )

    def connect(self) -> str:
        request = ConnectAccount(
            email="alex@example.com", password=SecretStr("pw"), imap=IMAP, smtp=SMTP
        )
        account_id = self.service.connect(OWNER, request).id
        self.synced(account_id)
        return account_id

    def synced(self, account_id: str) -> None:
        """What a sync leaves behind: a run and the folder checkpoints."""
        now = self.clock.now()
        self.runs.record(
            "c1",
            SyncRun(
                id=f"{account_id}:{iso(now)}",
                account_id=account_id,
                reason="schedule",
                enqueued_at=now,
                outcome="ok",
                started_at=now,
                finished_at=now,
            ),
        )
        self.retention.folder_checkpoints[("c1", account_id)] = {"FOLDER#inbox", "FOLDER#sent"}

    def purged_events(self) -> list[dict[str, Any]]:
        return [e.detail for e in self.events.events if e.detail_type == "account.data_purged"]


@pytest.fixture
def world() -> World:
    return World()


def test_a_stopped_account_is_kept_29_days_and_purged_once_after_30(world: World) -> None:
    account_id = world.connect()
    world.service.stop(OWNER, account_id)

    world.clock.advance(timedelta(days=29))
    assert world.sweeper.sweep() == SweepResult(purged=0, items_deleted=0)
    assert world.runs.list("c1", account_id, 10, None).items != []

    world.clock.advance(timedelta(days=2))
    assert world.sweeper.sweep() == SweepResult(purged=1, items_deleted=3)

    assert world.runs.list("c1", account_id, 10, None).items == []
    assert ("c1", account_id) not in world.retention.folder_checkpoints
    (record,) = world.retention.records
    assert (record.account_id, record.reason, record.since) == (account_id, "inactive", NOW)
    assert record.counts == {"sync_runs": 1, "folder_checkpoints": 2}
    assert record.purged_at == NOW + timedelta(days=31)
    (event,) = world.purged_events()
    assert event == {
        "account_id": account_id,
        "reason": "inactive",
        "since": NOW.isoformat(),
        "counts": {"sync_runs": 1, "folder_checkpoints": 2},
    }
    # The account stays, says so, and is out of the retention shards.
    account = world.service.get(OWNER, account_id)
    assert account.state == AccountState.STOPPED
    assert account.data_purged_at == NOW + timedelta(days=31)
    assert world.accounts.purge_keys("c1", account_id) is None

    world.clock.advance(timedelta(days=1))
    assert world.sweeper.sweep() == SweepResult(purged=0, items_deleted=0)
    assert len(world.retention.records) == 1


def test_a_change_to_a_purged_account_does_not_purge_it_again(world: World) -> None:
    account_id = world.connect()
    world.service.stop(OWNER, account_id)
    world.clock.advance(timedelta(days=31))
    world.sweeper.sweep()

    world.service.update_settings(OWNER, account_id, SyncSettingsPatch(track_opens=False))
    world.clock.advance(timedelta(days=31))

    assert world.accounts.purge_keys("c1", account_id) is None
    assert world.sweeper.sweep().purged == 0


def test_resuming_before_30_days_clears_the_purge_keys(world: World) -> None:
    account_id = world.connect()
    world.service.stop(OWNER, account_id)
    keys = world.accounts.purge_keys("c1", account_id)
    assert keys is not None
    assert (keys.shard, keys.next_poll_at) == (purge_shard(account_id, SHARDS), iso(NOW))

    world.clock.advance(timedelta(days=20))
    world.service.resume(OWNER, account_id)

    assert world.accounts.purge_keys("c1", account_id) is None
    assert world.accounts.poll_keys("c1", account_id) is not None
    world.clock.advance(timedelta(days=20))
    assert world.sweeper.sweep().purged == 0
    assert world.runs.list("c1", account_id, 10, None).items != []


def test_a_resumed_and_stopped_again_account_starts_a_new_30_days(world: World) -> None:
    account_id = world.connect()
    world.service.stop(OWNER, account_id)
    world.clock.advance(timedelta(days=31))
    world.sweeper.sweep()
    world.service.resume(OWNER, account_id)
    world.synced(account_id)  # the fresh sync after the purge
    world.service.stop(OWNER, account_id)

    world.clock.advance(timedelta(days=29))
    assert world.sweeper.sweep().purged == 0
    world.clock.advance(timedelta(days=2))
    assert world.sweeper.sweep().purged == 1
    assert len(world.retention.records) == 2


@pytest.mark.parametrize(
    ("code", "state"),
    [
        ("auth_failed", AccountState.NEEDS_REAUTH),
        ("permission_denied", AccountState.PERMISSION_DENIED),
    ],
)
def test_accounts_that_need_their_user_count_as_inactive(
    world: World, code: str, state: AccountState
) -> None:
    account_id = world.connect()
    account = world.service.get(OWNER, account_id)
    problem = ConnectionProblem(code=code, message="Refused.", action="Re-authenticate.")
    assert world.service.record_failure(account, problem).state == state

    world.clock.advance(timedelta(days=31))

    assert world.sweeper.sweep().purged == 1
    assert world.retention.records[0].reason == "inactive"


def test_a_removed_accounts_marker_is_purged_after_30_days(world: World) -> None:
    account_id = world.connect()
    world.clock.advance(timedelta(days=3))
    world.service.remove(OWNER, account_id)
    assert ("c1", account_id) in world.accounts.retention_markers

    world.clock.advance(timedelta(days=29))
    assert world.sweeper.sweep().purged == 0
    world.clock.advance(timedelta(days=2))
    assert world.sweeper.sweep() == SweepResult(purged=1, items_deleted=3)

    (record,) = world.retention.records
    assert (record.reason, record.since) == ("removed", NOW + timedelta(days=3))
    assert world.purged_events()[0]["reason"] == "removed"
    assert world.accounts.retention_markers == {}
    assert world.sweeper.sweep().purged == 0


@pytest.mark.parametrize(
    "state", [AccountState.ACTIVE, AccountState.CONNECTION_ERROR, AccountState.NEEDS_ATTENTION]
)
def test_accounts_that_poll_are_never_purged(world: World, state: AccountState) -> None:
    old = MailAccount(
        id="a1",
        company_id="c1",
        user_id="u1",
        email="a1@example.com",
        state=state,
        created_at=NOW - timedelta(days=400),
        state_changed_at=NOW - timedelta(days=400),
        next_poll_at=NOW - timedelta(days=300),
    )
    world.accounts.put(old, SHARDS)
    world.synced("a1")

    world.clock.advance(timedelta(days=365))

    assert world.sweeper.sweep().purged == 0
    assert world.accounts.purge_keys("c1", "a1") is None
    assert world.runs.recorded != []


def test_an_exchange_account_waiting_for_its_adapter_is_not_inactive(world: World) -> None:
    request = ConnectAccount.model_validate(
        {
            "kind": "exchange",
            "email": "a@corp.example",
            "password": "pw",
            "exchange": {"username": "CORP\\alex"},
        }
    )
    account = world.service.connect(OWNER, request)
    assert account.kind == AccountKind.EXCHANGE
    world.clock.advance(timedelta(days=60))

    assert world.sweeper.sweep().purged == 0


def test_purge_keys_are_never_dispatched_nor_moved_by_a_finishing_sync(world: World) -> None:
    account_id = world.connect()
    world.dispatcher.dispatch()  # the first poll out of the way
    world.jobs.sent.clear()
    world.service.stop(OWNER, account_id)
    before = world.accounts.purge_keys("c1", account_id)

    world.clock.advance(timedelta(days=45))
    assert world.dispatcher.dispatch().due == 0
    assert world.jobs.jobs == []
    # A sync that was running when the account stopped finishes now.
    world.accounts.finish_poll("c1", account_id, world.clock.now(), world.clock.now())

    assert world.accounts.purge_keys("c1", account_id) == before
    assert world.service.get(OWNER, account_id).last_synced_at is None
    assert world.sweeper.sweep().purged == 1


def test_an_account_resumed_during_the_sweep_is_left_alone(world: World) -> None:
    account_id = world.connect()
    world.service.stop(OWNER, account_id)
    world.clock.advance(timedelta(days=31))

    class ResumedMeanwhile(FakeRetentionRepository):
        def still_due(self, due: PurgeDue) -> bool:
            world.service.resume(OWNER, account_id)
            return super().still_due(due)

    racing = ResumedMeanwhile(world.accounts, world.runs)
    sweeper = RetentionSweeper(racing, world.events, world.clock, SHARDS)

    assert sweeper.sweep().purged == 0
    assert world.runs.list("c1", account_id, 10, None).items != []
    assert world.purged_events() == []


def test_a_sweep_out_of_time_stops_between_accounts_and_leaves_the_rest_due(
    world: World,
) -> None:
    account_id = world.connect()
    world.service.stop(OWNER, account_id)
    world.clock.advance(timedelta(days=31))

    assert world.sweeper.sweep(keep_going=lambda: False) == SweepResult(0, 0, complete=False)
    assert world.sweeper.sweep().purged == 1


def test_the_retention_period_is_a_setting() -> None:
    base = {"TABLE_NAME": "t"}
    assert Settings.from_env(base).retention_days == 30
    assert Settings.from_env({**base, "CRMSYNC_RETENTION_DAYS": "90"}).retention_days == 90
    local = {**base, "CRMSYNC_ENV": "local", "CRMSYNC_RETENTION_DAYS": "0"}
    assert Settings.from_env(local).retention_days == 0
    with pytest.raises(ValidationError):
        Settings.from_env({**base, "CRMSYNC_RETENTION_DAYS": "0"})  # not in production


# ---------------------------------------------------------------- DynamoDB adapters


class StubTable:
    """Keeps the arguments of update_item/delete_item; optionally fails them."""

    name = "t"

    def __init__(self, error_code: str | None = None) -> None:
        self.error_code = error_code
        self.calls: list[tuple[str, dict[str, Any]]] = []

    def _call(self, operation: str, kwargs: dict[str, Any]) -> dict[str, Any]:
        self.calls.append((operation, kwargs))
        if self.error_code:
            raise ClientError({"Error": {"Code": self.error_code, "Message": ""}}, operation)
        return {}

    def update_item(self, **kwargs: Any) -> dict[str, Any]:
        return self._call("UpdateItem", kwargs)

    def delete_item(self, **kwargs: Any) -> dict[str, Any]:
        return self._call("DeleteItem", kwargs)

    def put_item(self, **kwargs: Any) -> dict[str, Any]:
        return self._call("PutItem", kwargs)


def _stopped(**changes: Any) -> MailAccount:
    return MailAccount(
        id="a1",
        company_id="c1",
        user_id="u1",
        email="a1@example.com",
        state=AccountState.STOPPED,
        created_at=NOW - timedelta(days=90),
        state_changed_at=NOW,
        **changes,
    )


def test_dynamo_item_of_an_inactive_account_is_keyed_for_the_sweep() -> None:
    table = StubTable()
    DynamoAccountRepository(table).put(_stopped(), SHARDS)  # type: ignore[arg-type]

    ((_, put),) = table.calls
    assert put["Item"]["poll_shard"] == purge_shard("a1", SHARDS)
    assert put["Item"]["poll_shard"].startswith("purge-")
    assert put["Item"]["next_poll_at"] == iso(NOW)


def test_dynamo_item_of_a_purged_account_leaves_the_index() -> None:
    table = StubTable()
    purged = _stopped(data_purged_at=NOW + timedelta(days=31))
    DynamoAccountRepository(table).put(purged, SHARDS)  # type: ignore[arg-type]

    ((_, put),) = table.calls
    assert "poll_shard" not in put["Item"]
    assert "next_poll_at" not in put["Item"]


def test_dynamo_finish_poll_never_touches_the_retention_shards() -> None:
    table = StubTable("ConditionalCheckFailedException")
    repository = DynamoAccountRepository(table)  # type: ignore[arg-type]

    repository.finish_poll("c1", "a1", NOW, NOW)  # a failed condition is no error

    ((_, update),) = table.calls
    assert "NOT begins_with(poll_shard, :purge)" in update["ConditionExpression"]
    assert update["ExpressionAttributeValues"][":purge"] == "purge-"


DUE_INACTIVE = PurgeDue(company_id="c1", account_id="a1", reason="inactive", since=iso(NOW))
DUE_REMOVED = DUE_INACTIVE.model_copy(update={"reason": "removed"})


def test_dynamo_release_of_an_account_marks_it_purged_iff_the_keys_are_unchanged() -> None:
    table = StubTable()

    assert DynamoRetentionRepository(table).release(DUE_INACTIVE, NOW)  # type: ignore[arg-type]

    ((operation, update),) = table.calls
    assert operation == "UpdateItem"
    assert update["Key"] == {"PK": "COMPANY#c1#ACCOUNT#a1", "SK": "ACCOUNT"}
    assert update["UpdateExpression"].startswith("REMOVE poll_shard, next_poll_at")
    assert "#d.version = #d.version + :one" in update["UpdateExpression"]
    assert update["ConditionExpression"] == (
        "begins_with(poll_shard, :purge) AND next_poll_at = :seen"
    )
    assert update["ExpressionAttributeValues"][":seen"] == iso(NOW)


def test_dynamo_release_of_a_removed_account_deletes_its_marker() -> None:
    table = StubTable()

    assert DynamoRetentionRepository(table).release(DUE_REMOVED, NOW)  # type: ignore[arg-type]

    ((operation, delete),) = table.calls
    assert operation == "DeleteItem"
    assert delete["Key"] == {"PK": "COMPANY#c1#RETENTION", "SK": "ACCOUNT#a1"}


def test_dynamo_release_lost_to_a_change_returns_false() -> None:
    table = StubTable("ConditionalCheckFailedException")

    assert not DynamoRetentionRepository(table).release(DUE_INACTIVE, NOW)  # type: ignore[arg-type]


def test_dynamo_purge_record_is_kept_without_ttl() -> None:
    table = StubTable()
    record = PurgeRecord(
        company_id="c1",
        account_id="a1",
        reason="inactive",
        since=NOW,
        purged_at=NOW + timedelta(days=31),
        counts={"sync_runs": 2},
    )

    DynamoRetentionRepository(table).record(record)  # type: ignore[arg-type]

    ((_, put),) = table.calls
    assert put["Item"]["PK"] == "COMPANY#c1#PURGES"
    assert put["Item"]["SK"] == f"{iso(NOW + timedelta(days=31))}#a1"
    assert "expires_at" not in put["Item"]
    assert PurgeRecord.model_validate(put["Item"]["data"]) == record
