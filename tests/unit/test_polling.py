"""The poll dispatcher: due accounts, claims with a lease, one FIFO group per account."""

from __future__ import annotations

import json
import uuid
from collections import Counter
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from botocore.exceptions import ClientError

from crmsync.clock import iso
from crmsync.messaging.sqs import JobSendError, SqsJobQueue
from crmsync.models.accounts import AccountState, MailAccount
from crmsync.models.jobs import SyncAccount
from crmsync.ports import DueAccount, QueuedSync
from crmsync.services.polling import DispatchResult, PollDispatcher
from crmsync.store.dynamodb import DynamoAccountRepository
from crmsync.store.keys import poll_shard
from tests.unit.fakes import FakeAccountRepository, FakeClock, FakeJobQueue

NOW = datetime(2025, 3, 3, 9, 0, tzinfo=UTC)
SHARDS = 8
LEASE = timedelta(minutes=15)
QUEUE_URL = "https://sqs.us-east-1.amazonaws.com/123456789012/crmsync-test-sync.fifo"


def mail_account(
    account_id: str,
    next_poll_at: datetime | None,
    state: AccountState = AccountState.ACTIVE,
    company_id: str = "c1",
) -> MailAccount:
    return MailAccount(
        id=account_id,
        company_id=company_id,
        user_id="u1",
        email=f"{account_id}@example.com",
        state=state,
        created_at=NOW - timedelta(days=30),
        next_poll_at=next_poll_at,
    )


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(NOW)


@pytest.fixture
def accounts() -> FakeAccountRepository:
    return FakeAccountRepository()


@pytest.fixture
def queue() -> FakeJobQueue:
    return FakeJobQueue()


@pytest.fixture
def dispatcher(
    accounts: FakeAccountRepository, queue: FakeJobQueue, clock: FakeClock
) -> PollDispatcher:
    return PollDispatcher(accounts, queue, clock, shard_count=SHARDS, lease=LEASE)


def enqueued_ids(queue: FakeJobQueue) -> list[str]:
    return sorted(job.account_id for job in queue.jobs)


def test_dispatch_enqueues_every_due_account_in_every_shard(
    accounts: FakeAccountRepository, queue: FakeJobQueue, dispatcher: PollDispatcher
) -> None:
    due_ids = [f"acct-{i:03d}" for i in range(40)]
    for minutes, account_id in enumerate(due_ids):
        accounts.put(mail_account(account_id, NOW - timedelta(minutes=minutes)), SHARDS)
    assert {poll_shard(a, SHARDS) for a in due_ids} == {f"{s:02d}" for s in range(SHARDS)}

    result = dispatcher.dispatch()

    assert result == DispatchResult(due=40, enqueued=40, lost_claims=0)
    assert enqueued_ids(queue) == due_ids


def test_account_due_exactly_now_is_dispatched(
    accounts: FakeAccountRepository, queue: FakeJobQueue, dispatcher: PollDispatcher
) -> None:
    accounts.put(mail_account("a1", NOW), SHARDS)

    dispatcher.dispatch()

    assert enqueued_ids(queue) == ["a1"]


def test_accounts_due_later_are_not_dispatched(
    accounts: FakeAccountRepository, queue: FakeJobQueue, dispatcher: PollDispatcher
) -> None:
    accounts.put(mail_account("soon", NOW + timedelta(seconds=1)), SHARDS)
    accounts.put(mail_account("due", NOW - timedelta(seconds=1)), SHARDS)

    result = dispatcher.dispatch()

    assert enqueued_ids(queue) == ["due"]
    assert result.due == 1


@pytest.mark.parametrize(
    "state", [AccountState.STOPPED, AccountState.NEEDS_REAUTH, AccountState.PERMISSION_DENIED]
)
def test_accounts_that_do_not_poll_are_not_dispatched(
    state: AccountState,
    accounts: FakeAccountRepository,
    queue: FakeJobQueue,
    dispatcher: PollDispatcher,
) -> None:
    accounts.put(mail_account("a1", NOW - timedelta(hours=1), state=state), SHARDS)

    assert dispatcher.dispatch() == DispatchResult(due=0, enqueued=0, lost_claims=0)
    assert queue.jobs == []


@pytest.mark.parametrize(
    "state", [AccountState.ACTIVE, AccountState.SYNCING, AccountState.CONNECTION_ERROR]
)
def test_accounts_that_poll_are_dispatched(
    state: AccountState,
    accounts: FakeAccountRepository,
    queue: FakeJobQueue,
    dispatcher: PollDispatcher,
) -> None:
    accounts.put(mail_account("a1", NOW - timedelta(hours=1), state=state), SHARDS)

    dispatcher.dispatch()

    assert enqueued_ids(queue) == ["a1"]


def test_account_that_stops_leaves_the_poll_index(
    accounts: FakeAccountRepository, queue: FakeJobQueue, dispatcher: PollDispatcher
) -> None:
    account = mail_account("a1", NOW - timedelta(hours=1))
    accounts.put(account, SHARDS)
    accounts.put(account.model_copy(update={"state": AccountState.STOPPED}), SHARDS)

    dispatcher.dispatch()

    assert queue.jobs == []


def test_account_without_a_next_poll_time_is_not_dispatched(
    accounts: FakeAccountRepository, queue: FakeJobQueue, dispatcher: PollDispatcher
) -> None:
    accounts.put(mail_account("a1", None), SHARDS)

    dispatcher.dispatch()

    assert queue.jobs == []


class RivalClaimsFirst(FakeAccountRepository):
    """Another dispatcher moves next_poll_at between our read of the index and our claim."""

    def claim_poll(self, due: DueAccount, lease_until: datetime) -> bool:
        assert super().claim_poll(due, lease_until + timedelta(seconds=1))
        return super().claim_poll(due, lease_until)


def test_lost_claim_is_counted_and_not_enqueued(queue: FakeJobQueue, clock: FakeClock) -> None:
    accounts = RivalClaimsFirst()
    accounts.put(mail_account("a1", NOW - timedelta(minutes=1)), SHARDS)
    dispatcher = PollDispatcher(accounts, queue, clock, shard_count=SHARDS, lease=LEASE)

    result = dispatcher.dispatch()

    assert result == DispatchResult(due=1, enqueued=0, lost_claims=1)
    assert queue.jobs == []


def test_claim_moves_next_poll_to_the_end_of_the_lease(
    accounts: FakeAccountRepository, dispatcher: PollDispatcher
) -> None:
    accounts.put(mail_account("a1", NOW - timedelta(minutes=1)), SHARDS)

    dispatcher.dispatch()

    poll = accounts.poll_keys("c1", "a1")
    assert poll is not None
    assert poll.next_poll_at == iso(NOW + LEASE)


def test_second_dispatch_within_the_lease_enqueues_nothing_again(
    accounts: FakeAccountRepository,
    queue: FakeJobQueue,
    clock: FakeClock,
    dispatcher: PollDispatcher,
) -> None:
    for account_id in ("a1", "a2", "a3"):
        accounts.put(mail_account(account_id, NOW - timedelta(minutes=5)), SHARDS)

    dispatcher.dispatch()
    clock.advance(timedelta(minutes=1))
    second = dispatcher.dispatch()

    assert second == DispatchResult(due=0, enqueued=0, lost_claims=0)
    assert enqueued_ids(queue) == ["a1", "a2", "a3"]


def test_account_is_dispatched_again_once_its_lease_runs_out(
    accounts: FakeAccountRepository,
    queue: FakeJobQueue,
    clock: FakeClock,
    dispatcher: PollDispatcher,
) -> None:
    accounts.put(mail_account("a1", NOW - timedelta(minutes=5)), SHARDS)

    dispatcher.dispatch()
    clock.advance(LEASE)
    dispatcher.dispatch()

    first, retry = queue.jobs
    assert retry.account_id == first.account_id == "a1"
    assert retry.job_id != first.job_id


def test_job_names_the_account_the_due_time_and_the_tick(
    accounts: FakeAccountRepository, queue: FakeJobQueue, dispatcher: PollDispatcher
) -> None:
    due_at = NOW - timedelta(minutes=2)
    accounts.put(mail_account("a1", due_at, company_id="acme"), SHARDS)

    dispatcher.dispatch()

    ((job, deduplication_id),) = queue.sent
    assert job == SyncAccount(
        job_id=f"a1:{iso(due_at)}",
        account_id="a1",
        company_id="acme",
        reason="schedule",
        enqueued_at=NOW,
    )
    assert deduplication_id == f"a1:{iso(NOW)}"


class RecordingSqsClient:
    """Stands in for boto3's SQS client: keeps each entry sent, with its queue URL."""

    def __init__(self, failed: list[dict[str, Any]] | None = None) -> None:
        self.messages: list[dict[str, Any]] = []
        self.batches: list[int] = []
        self.failed = failed or []

    def send_message_batch(self, QueueUrl: str, Entries: list[dict[str, Any]]) -> dict[str, Any]:
        self.batches.append(len(Entries))
        self.messages.extend({"QueueUrl": QueueUrl, **entry} for entry in Entries)
        return {"Successful": [], "Failed": self.failed}


def test_sync_jobs_are_grouped_by_account_on_the_fifo_queue(
    accounts: FakeAccountRepository, clock: FakeClock
) -> None:
    client = RecordingSqsClient()
    queue = SqsJobQueue(client, QUEUE_URL)  # type: ignore[arg-type]
    for account_id in ("a1", "a2"):
        accounts.put(mail_account(account_id, NOW - timedelta(minutes=1)), SHARDS)

    PollDispatcher(accounts, queue, clock, shard_count=SHARDS, lease=LEASE).dispatch()

    assert len(client.messages) == 2
    for message in client.messages:
        job = SyncAccount.model_validate(json.loads(message["MessageBody"]))
        assert message["QueueUrl"] == QUEUE_URL
        assert message["MessageGroupId"] == job.account_id
        assert message["MessageDeduplicationId"] == f"{job.account_id}:{iso(NOW)}"


def test_sqs_deduplication_id_is_cut_to_the_128_character_limit() -> None:
    client = RecordingSqsClient()
    job = SyncAccount(job_id="j1", account_id="a1", company_id="c1", enqueued_at=NOW)

    SqsJobQueue(client, QUEUE_URL).send_syncs(  # type: ignore[arg-type]
        [QueuedSync(job=job, deduplication_id="x" * 300)]
    )

    assert client.messages[0]["MessageDeduplicationId"] == "x" * 128


def test_sync_jobs_go_out_in_batches_of_ten() -> None:
    client = RecordingSqsClient()
    jobs = [
        QueuedSync(
            job=SyncAccount(job_id=f"j{i}", account_id=f"a{i}", company_id="c1", enqueued_at=NOW),
            deduplication_id=f"d{i}",
        )
        for i in range(23)
    ]

    SqsJobQueue(client, QUEUE_URL).send_syncs(jobs)  # type: ignore[arg-type]

    assert client.batches == [10, 10, 3]
    assert len({m["MessageDeduplicationId"] for m in client.messages}) == 23


def test_a_refused_batch_entry_fails_the_dispatch() -> None:
    client = RecordingSqsClient(failed=[{"Id": "0", "Code": "InternalError", "SenderFault": False}])
    job = SyncAccount(job_id="j1", account_id="a1", company_id="c1", enqueued_at=NOW)

    with pytest.raises(JobSendError):
        SqsJobQueue(client, QUEUE_URL).send_syncs(  # type: ignore[arg-type]
            [QueuedSync(job=job, deduplication_id="d1")]
        )


class StubTable:
    """Stands in for a boto3 Table: keeps update_item arguments, optionally fails them."""

    def __init__(self, error_code: str | None = None) -> None:
        self.error_code = error_code
        self.updates: list[dict[str, Any]] = []

    def update_item(self, **kwargs: Any) -> dict[str, Any]:
        self.updates.append(kwargs)
        if self.error_code:
            raise ClientError({"Error": {"Code": self.error_code, "Message": ""}}, "UpdateItem")
        return {}


DUE = DueAccount(account_id="a1", company_id="c1", next_poll_at=iso(NOW))


def test_dynamo_claim_is_conditional_on_the_seen_time_and_the_poll_index() -> None:
    table = StubTable()

    assert DynamoAccountRepository(table).claim_poll(DUE, NOW + LEASE)  # type: ignore[arg-type]

    (update,) = table.updates
    condition = update["ConditionExpression"]
    assert "next_poll_at = :seen" in condition
    assert "attribute_exists(poll_shard)" in condition
    assert "NOT begins_with(poll_shard, :purge)" in condition  # never the retention shards
    assert update["ExpressionAttributeValues"] == {
        ":lease": iso(NOW + LEASE),
        ":seen": iso(NOW),
        ":purge": "purge-",
    }


def test_dynamo_claim_lost_to_a_condition_returns_false() -> None:
    table = StubTable("ConditionalCheckFailedException")

    assert not DynamoAccountRepository(table).claim_poll(DUE, NOW + LEASE)  # type: ignore[arg-type]


def test_dynamo_claim_raises_other_errors() -> None:
    table = StubTable("ProvisionedThroughputExceededException")

    with pytest.raises(ClientError):
        DynamoAccountRepository(table).claim_poll(DUE, NOW + LEASE)  # type: ignore[arg-type]


def test_poll_shard_is_stable_across_processes_and_zero_padded() -> None:
    # Pinned values: a process-salted hash() would break these and split one account's
    # index entries across shards between deploys.
    assert poll_shard("acct-0001", 8) == "03"
    assert poll_shard("01HZX3K9Q2", 16) == "04"


@pytest.mark.parametrize("shard_count", [1, 8, 16, 64])
def test_poll_shards_spread_ids_over_every_shard_evenly(shard_count: int) -> None:
    ids = [str(uuid.uuid5(uuid.NAMESPACE_URL, f"account/{i}")) for i in range(1000)]

    counts = Counter(poll_shard(account_id, shard_count) for account_id in ids)

    assert set(counts) == {f"{s:02d}" for s in range(shard_count)}
    assert max(counts.values()) <= 2 * len(ids) / shard_count
