"""One mail sync run: recorded once, announced, and the account rescheduled."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from crmsync.clock import iso
from crmsync.models.accounts import AccountState, MailAccount
from crmsync.models.jobs import SyncAccount
from crmsync.services.accounts import AccountService
from crmsync.services.mail_sync import MailSync
from tests.unit.fakes import (
    FakeAccountRepository,
    FakeClock,
    FakeEventPublisher,
    FakeJobQueue,
    FakeMailbox,
    FakeSecretBox,
    FakeSyncRunRepository,
)

NOW = datetime(2025, 3, 3, 9, 0, tzinfo=UTC)
ENQUEUED = NOW - timedelta(seconds=20)
INTERVAL = timedelta(minutes=5)
SHARDS = 8
LEASED_UNTIL = NOW + timedelta(minutes=15)
PASSWORD = "correct horse"


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
def mailbox() -> FakeMailbox:
    server = FakeMailbox()
    server.passwords["a1@example.com"] = PASSWORD
    return server


@pytest.fixture
def sync(
    accounts: FakeAccountRepository,
    runs: FakeSyncRunRepository,
    events: FakeEventPublisher,
    mailbox: FakeMailbox,
) -> MailSync:
    secrets = FakeSecretBox()
    accounts.credentials[("c1", "a1")] = secrets.seal(
        PASSWORD, {"company_id": "c1", "account_id": "a1"}
    )
    clock = FakeClock(NOW)
    health = AccountService(
        accounts, secrets, mailbox, FakeJobQueue(), events, clock, SHARDS, INTERVAL
    )
    return MailSync(
        accounts, runs, events, clock, poll_interval=INTERVAL, mailbox=mailbox, health=health
    )


def test_run_on_an_active_account_records_one_ok_run(
    accounts: FakeAccountRepository, runs: FakeSyncRunRepository, sync: MailSync
) -> None:
    accounts.put(mail_account(), SHARDS)

    run = sync.run(JOB)

    assert runs.recorded == [run]
    assert (run.id, run.account_id, run.outcome) == ("a1:job", "a1", "ok")
    assert (run.folders_checked, run.messages_on_server) == (2, 7)  # what the poll reported
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


def test_a_refused_password_moves_the_account_to_needs_reauth_and_out_of_polling(
    accounts: FakeAccountRepository,
    runs: FakeSyncRunRepository,
    events: FakeEventPublisher,
    mailbox: FakeMailbox,
    sync: MailSync,
) -> None:
    accounts.put(mail_account(), SHARDS)
    mailbox.passwords["a1@example.com"] = "changed on the server"

    run = sync.run(JOB)

    assert (run.outcome, run.detail) == ("failed", "auth_failed")
    stored = accounts.get("c1", "a1")
    assert stored is not None
    assert stored.state == AccountState.NEEDS_REAUTH
    assert stored.last_error is not None
    assert "app password" in stored.last_error.action
    assert accounts.poll_keys("c1", "a1") is None
    changes = [e for e in events.events if e.detail_type == "account.state_changed"]
    assert [(e.detail["from"], e.detail["to"]) for e in changes] == [("active", "needs_reauth")]


def test_an_unreachable_server_backs_off_and_keeps_polling(
    accounts: FakeAccountRepository, mailbox: FakeMailbox, sync: MailSync
) -> None:
    accounts.put(mail_account(), SHARDS)
    mailbox.down = True

    sync.run(JOB)
    first = accounts.get("c1", "a1")
    sync.run(JOB.model_copy(update={"job_id": "a1:job2"}))
    second = accounts.get("c1", "a1")

    assert first is not None
    assert second is not None
    assert first.state == second.state == AccountState.CONNECTION_ERROR
    assert (first.failures, second.failures) == (1, 2)
    assert first.next_poll_at is not None
    assert second.next_poll_at is not None
    assert first.next_poll_at >= NOW + INTERVAL
    assert second.next_poll_at - NOW > first.next_poll_at - NOW - INTERVAL / 5
    assert accounts.poll_keys("c1", "a1") is not None


def test_the_next_good_poll_clears_the_connection_error(
    accounts: FakeAccountRepository, mailbox: FakeMailbox, sync: MailSync
) -> None:
    accounts.put(mail_account(), SHARDS)
    mailbox.down = True
    sync.run(JOB)
    mailbox.down = False

    run = sync.run(JOB.model_copy(update={"job_id": "a1:job2"}))

    stored = accounts.get("c1", "a1")
    assert run.outcome == "ok"
    assert stored is not None
    assert (stored.state, stored.failures, stored.last_error) == (AccountState.ACTIVE, 0, None)


def test_an_idle_healthy_poll_does_not_rewrite_the_account(
    accounts: FakeAccountRepository, mailbox: FakeMailbox, sync: MailSync
) -> None:
    accounts.put(mail_account(), SHARDS)
    before = accounts.get("c1", "a1")

    sync.run(JOB)

    after = accounts.get("c1", "a1")
    assert before is not None
    assert after is not None
    assert after.version == before.version
    assert mailbox.polls == 1


def test_a_connection_error_lasting_three_days_needs_attention_but_keeps_polling(
    accounts: FakeAccountRepository,
    mailbox: FakeMailbox,
    sync: MailSync,
    events: FakeEventPublisher,
) -> None:
    accounts.put(mail_account(), SHARDS)
    mailbox.down = True
    sync.run(JOB)
    clock = sync._clock
    assert isinstance(clock, FakeClock)

    clock.advance(timedelta(days=2))
    sync.run(JOB.model_copy(update={"job_id": "a1:job2"}))
    still = accounts.get("c1", "a1")
    clock.advance(timedelta(days=1, minutes=1))
    sync.run(JOB.model_copy(update={"job_id": "a1:job3"}))
    late = accounts.get("c1", "a1")

    assert still is not None
    assert late is not None
    assert still.state == AccountState.CONNECTION_ERROR
    assert late.state == AccountState.NEEDS_ATTENTION
    assert accounts.poll_keys("c1", "a1") is not None
    moves = [
        (e.detail["from"], e.detail["to"])
        for e in events.events
        if e.detail_type == "account.state_changed"
    ]
    assert moves == [("active", "connection_error"), ("connection_error", "needs_attention")]
