"""Sync run listing: who may see an account's runs, newest first, page by page."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from crmsync.errors import NotFoundError, ValidationFailedError
from crmsync.models.accounts import MailAccount
from crmsync.models.identity import Principal
from crmsync.models.sync import SyncRun
from crmsync.services.sync_status import SyncStatus
from tests.unit.fakes import FakeAccountRepository, FakeSyncRunRepository

NOW = datetime(2025, 3, 3, 9, 0, tzinfo=UTC)
OWNER = Principal(user_id="u1", company_id="c1", role="user")


def sync_run(account_id: str, minutes_ago: int) -> SyncRun:
    at = NOW - timedelta(minutes=minutes_ago)
    return SyncRun(
        id=f"{account_id}:{minutes_ago}",
        account_id=account_id,
        reason="schedule",
        enqueued_at=at,
        outcome="ok",
        started_at=at,
        finished_at=at,
    )


@pytest.fixture
def runs() -> FakeSyncRunRepository:
    runs = FakeSyncRunRepository()
    for minutes_ago in (10, 30, 20, 40, 50):
        runs.record("c1", sync_run("a1", minutes_ago))
    return runs


@pytest.fixture
def status(runs: FakeSyncRunRepository) -> SyncStatus:
    accounts = FakeAccountRepository()
    for account_id, user_id in (("a1", "u1"), ("a2", "u2")):
        accounts.put(
            MailAccount(
                id=account_id,
                company_id="c1",
                user_id=user_id,
                email=f"{user_id}@example.com",
                created_at=NOW,
            ),
            shard_count=8,
        )
    return SyncStatus(accounts, runs)


def test_owner_pages_through_runs_newest_first(status: SyncStatus) -> None:
    first = status.runs(OWNER, "a1", limit=2, cursor=None)
    second = status.runs(OWNER, "a1", limit=2, cursor=first.next_cursor)
    last = status.runs(OWNER, "a1", limit=2, cursor=second.next_cursor)

    pages = [[run.id for run in page.items] for page in (first, second, last)]
    assert pages == [["a1:10", "a1:20"], ["a1:30", "a1:40"], ["a1:50"]]
    assert last.next_cursor is None


def test_admin_sees_a_colleagues_runs(status: SyncStatus) -> None:
    admin = Principal(user_id="u9", company_id="c1", role="admin")

    assert len(status.runs(admin, "a1", limit=10, cursor=None).items) == 5


def test_colleague_gets_not_found_like_a_missing_account(status: SyncStatus) -> None:
    colleague = Principal(user_id="u2", company_id="c1", role="user")

    with pytest.raises(NotFoundError):
        status.runs(colleague, "a1", limit=10, cursor=None)
    with pytest.raises(NotFoundError):
        status.runs(OWNER, "missing", limit=10, cursor=None)


def test_admin_of_another_company_cannot_address_the_account(status: SyncStatus) -> None:
    outsider = Principal(user_id="u1", company_id="c2", role="admin")

    with pytest.raises(NotFoundError):
        status.runs(outsider, "a1", limit=10, cursor=None)


def test_cursor_from_another_account_is_refused(status: SyncStatus) -> None:
    admin = Principal(user_id="u9", company_id="c1", role="admin")
    cursor = status.runs(admin, "a1", limit=1, cursor=None).next_cursor

    with pytest.raises(ValidationFailedError):
        status.runs(admin, "a2", limit=1, cursor=cursor)
