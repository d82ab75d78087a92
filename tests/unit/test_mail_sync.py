"""One mail sync run: recorded once, announced, and the account rescheduled."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from crmsync.clock import iso
from crmsync.models.accounts import AccountState, MailAccount
from crmsync.models.jobs import SyncAccount
from crmsync.services.mail_sync import MailSync
from tests.unit.fakes import (
    FakeAccountRepository,
    FakeClock,
    FakeEventPublisher,
    FakeSyncRunRepository,
)

NOW = datetime(2025, 3, 3, 9, 0, tzinfo=UTC)
ENQUEUED = NOW - timedelta(seconds=20)
INTERVAL = timedelta(minutes=5)
SHARDS = 8
LEASED_UNTIL = NOW + timedelta(minutes=15)


def mail_account(state: AccountState = AccountState.ACTIVE) -> MailAccount:
    return MailAccount(
        id="a1",
        company_id="c1",
        user_id="u1",
        email="a1@example.com",
        state=state,
        created_at=NOW - timedelta(days=30),
        next_poll_at=LEASED_UNTIL,
    )


JOB = SyncAccount(job_id="a1:job", account_id="a1", company_id="c1", enqueued_at=ENQUEUED)


@pytest.fixture
def accounts() -> FakeAccountRepository:
    return FakeAccountRepository()


@pytest.fixture
def runs() -> FakeSyncRunRepository:
    return FakeSyncRunRepository()


@pytest.fixture
def events() -> FakeEventPublisher:
    return FakeEventPublisher()


@pytest.fixture
def sync(
    accounts: FakeAccountRepository, runs: FakeSyncRunRepository, events: FakeEventPublisher
) -> MailSync:
    return MailSync(accounts, runs, events, FakeClock(NOW), poll_interval=INTERVAL)


def test_run_on_an_active_account_records_one_ok_run(
    accounts: FakeAccountRepository, runs: FakeSyncRunRepository, sync: MailSync
) -> None:
    accounts.put(mail_account(), SHARDS)

    run = sync.run(JOB)

    assert runs.recorded == [run]
    assert (run.id, run.account_id, run.outcome) == ("a1:job", "a1", "ok")
    assert (run.reason, run.enqueued_at, run.started_at, run.finished_at) == (
        "schedule",
        ENQUEUED,
        NOW,
        NOW,
    )


def test_run_on_an_active_account_publishes_one_completed_event(
    accounts: FakeAccountRepository, events: FakeEventPublisher, sync: MailSync
) -> None:
    accounts.put(mail_account(), SHARDS)

    sync.run(JOB)

    (event,) = events.events
    assert event.detail_type == "mail_sync.completed"
    assert event.company_id == "c1"
    assert event.occurred_at == NOW
    assert event.detail == {"account_id": "a1", "run_id": "a1:job", "outcome": "ok"}


def test_run_on_an_active_account_schedules_the_next_poll_one_interval_out(
    accounts: FakeAccountRepository, sync: MailSync
) -> None:
    accounts.put(mail_account(), SHARDS)

    sync.run(JOB)

    account = accounts.get("c1", "a1")
    poll = accounts.poll_keys("c1", "a1")
    assert account is not None
    assert poll is not None
    assert account.last_synced_at == NOW
    assert account.next_poll_at == NOW + INTERVAL
    assert poll.next_poll_at == iso(NOW + INTERVAL)


@pytest.mark.parametrize(
    ("state", "detail"),
    [
        (AccountState.STOPPED, "account is stopped"),
        (AccountState.NEEDS_REAUTH, "account is needs_reauth"),
    ],
)
def test_run_on_an_account_that_does_not_poll_is_skipped_and_not_rescheduled(
    state: AccountState,
    detail: str,
    accounts: FakeAccountRepository,
    runs: FakeSyncRunRepository,
    sync: MailSync,
) -> None:
    accounts.put(mail_account(state), SHARDS)

    run = sync.run(JOB)

    assert (run.outcome, run.detail) == ("skipped", detail)
    assert runs.recorded == [run]
    account = accounts.get("c1", "a1")
    assert account is not None
    assert account.next_poll_at == LEASED_UNTIL
    assert account.last_synced_at is None
    assert accounts.poll_keys("c1", "a1") is None


def test_run_on_a_removed_account_is_skipped(
    runs: FakeSyncRunRepository, events: FakeEventPublisher, sync: MailSync
) -> None:
    run = sync.run(JOB)

    assert (run.outcome, run.detail) == ("skipped", "account removed")
    assert runs.recorded == [run]
    assert [e.detail["outcome"] for e in events.events] == ["skipped"]


def test_same_job_run_twice_leaves_one_recorded_run(
    accounts: FakeAccountRepository,
    runs: FakeSyncRunRepository,
    events: FakeEventPublisher,
    sync: MailSync,
) -> None:
    accounts.put(mail_account(), SHARDS)

    sync.run(JOB)
    sync.run(JOB)

    assert [run.id for run in runs.recorded] == ["a1:job"]
    assert len(runs.list("c1", "a1", limit=10, cursor=None).items) == 1
    # The announcement may repeat; consumers dedupe on run_id.
    assert {e.detail["run_id"] for e in events.events} == {"a1:job"}


def test_distinct_jobs_are_recorded_separately(
    accounts: FakeAccountRepository, runs: FakeSyncRunRepository, sync: MailSync
) -> None:
    accounts.put(mail_account(), SHARDS)

    sync.run(JOB)
    sync.run(JOB.model_copy(update={"job_id": "a1:next", "enqueued_at": NOW}))

    assert sorted(run.id for run in runs.recorded) == ["a1:job", "a1:next"]
