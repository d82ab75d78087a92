"""Retention (SPEC E7) through the local stack: a real Dovecot account syncs, is stopped or
removed, and the daily MaintenanceFunction purges its synced data and records that it did."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
import requests
from pydantic import SecretStr

from crmsync.models.accounts import MailAccount
from crmsync.models.identity import Principal
from crmsync.models.servers import ServerEndpoint
from crmsync.runtime import current_runtime
from crmsync.services.accounts import ConnectAccount
from crmsync.store import keys
from crmsync.store.retention import DynamoRetentionRepository
from crmsync_local.stack import LocalStack
from crmsync_local.testservers.dovecot import DovecotServer
from crmsync_local.testservers.smtp import SmtpServer

pytestmark = [pytest.mark.e2e, pytest.mark.usefixtures("trusted_mail_servers")]
POLL = "PollDispatcherFunction.Every"
MAINTENANCE = "MaintenanceFunction.Daily"
OWNER = "owner-1"


@pytest.fixture
def retention_now() -> Iterator[None]:
    """The 30 days pass at once: CRMSYNC_RETENTION_DAYS=0 (allowed in local mode only).

    The index keeps when each account's clock started, and the period is applied by the
    sweep when it reads, so shortening the setting moves time for the sweep without writing
    anything into the table behind the code's back: the keys under test stay the ones the
    stop and DELETE routes wrote."""
    os.environ["CRMSYNC_RETENTION_DAYS"] = "0"
    current_runtime.cache_clear()
    yield
    os.environ.pop("CRMSYNC_RETENTION_DAYS", None)
    current_runtime.cache_clear()


@pytest.fixture
def synced_account(
    local_stack: LocalStack, dovecot: DovecotServer, smtp_server: SmtpServer
) -> MailAccount:
    """A fresh Dovecot user connected through the accounts service (a real login), then
    synced once by the poll schedule, so a sync run exists."""
    user = dovecot.add_user(f"u-{uuid.uuid4().hex[:10]}@{dovecot.domain}", uuid.uuid4().hex)
    owner = Principal(user_id=OWNER, company_id=f"co-{uuid.uuid4().hex[:8]}", role="user")
    account = (
        current_runtime()
        .accounts_service()
        .connect(
            owner,
            ConnectAccount(
                email=user.email,
                password=SecretStr(user.password),
                imap=ServerEndpoint(host="localhost", port=dovecot.ssl_port, security="ssl"),
                smtp=ServerEndpoint(host="localhost", port=smtp_server.port, security="starttls"),
            ),
        )
    )
    local_stack.fire(POLL)
    local_stack.drain()
    assert [r["outcome"] for r in _runs(local_stack, account)] == ["ok"]
    local_stack.published_events()  # forget what the connect and the sync published
    return account


def _call(stack: LocalStack, account: MailAccount, method: str, path: str = "") -> Any:
    token = stack.token(OWNER, account.company_id)
    return requests.request(
        method,
        f"{stack.url}/v1/mail-accounts/{account.id}{path}",
        headers={"Authorization": f"Bearer {token}"},
        timeout=30,
    )


def _runs(stack: LocalStack, account: MailAccount) -> list[dict[str, Any]]:
    reply = _call(stack, account, "GET", "/sync-runs")
    assert reply.status_code == 200, reply.text
    items: list[dict[str, Any]] = reply.json()["items"]
    return items


def _table(stack: LocalStack) -> Any:
    return boto3.resource("dynamodb").Table(stack.resource("MainTable"))


def _purged(stack: LocalStack, account: MailAccount) -> list[dict[str, Any]]:
    return [
        e
        for e in stack.published_events()
        if e["detail-type"] == "account.data_purged" and e["detail"]["account_id"] == account.id
    ]


def test_a_stopped_accounts_synced_data_is_kept_within_the_retention_period(
    local_stack: LocalStack, synced_account: MailAccount
) -> None:
    assert _call(local_stack, synced_account, "POST", "/stop").json()["state"] == "stopped"

    local_stack.fire(MAINTENANCE)  # the default 30 days

    assert len(_runs(local_stack, synced_account)) == 1
    records = DynamoRetentionRepository(_table(local_stack)).list_records(synced_account.company_id)
    assert records == []
    assert _purged(local_stack, synced_account) == []


@pytest.mark.usefixtures("retention_now")
def test_a_stopped_accounts_synced_data_is_purged_once_and_recorded(
    local_stack: LocalStack, synced_account: MailAccount
) -> None:
    account = synced_account
    stopped = _call(local_stack, account, "POST", "/stop")
    assert stopped.status_code == 200, stopped.text
    item = _table(local_stack).get_item(
        Key={"PK": keys.account_pk(account.company_id, account.id), "SK": keys.ACCOUNT_SK}
    )["Item"]
    assert str(item["poll_shard"]).startswith("purge-")
    # Neither the dispatcher nor a sync finishing late moves a stopped account's keys.
    local_stack.fire(POLL)
    local_stack.drain()
    runtime = current_runtime()
    runtime.accounts.finish_poll(
        account.company_id, account.id, runtime.clock.now(), runtime.clock.now()
    )
    after = _table(local_stack).get_item(Key={"PK": item["PK"], "SK": item["SK"]})["Item"]
    assert (after["poll_shard"], after["next_poll_at"]) == (
        item["poll_shard"],
        item["next_poll_at"],
    )
    assert len(_runs(local_stack, account)) == 1

    swept = local_stack.fire(MAINTENANCE)

    assert swept["purged"] >= 1
    assert _runs(local_stack, account) == []
    shown = _call(local_stack, account, "GET").json()
    assert shown["state"] == "stopped"
    assert shown["data_purged_at"] is not None
    (record,) = DynamoRetentionRepository(_table(local_stack)).list_records(account.company_id)
    assert (record.account_id, record.reason) == (account.id, "inactive")
    assert record.counts["sync_runs"] == 1
    (event,) = _purged(local_stack, account)
    assert event["source"] == "crmsync"
    assert event["detail"]["company_id"] == account.company_id
    assert event["detail"]["reason"] == "inactive"
    assert event["detail"]["counts"]["sync_runs"] == 1

    again = local_stack.fire(MAINTENANCE)

    assert again["purged"] == 0
    assert len(DynamoRetentionRepository(_table(local_stack)).list_records(account.company_id)) == 1
    assert _purged(local_stack, account) == []


@pytest.mark.usefixtures("retention_now")
def test_a_removed_account_leaves_a_marker_that_the_sweep_purges_and_records(
    local_stack: LocalStack, synced_account: MailAccount
) -> None:
    account = synced_account
    assert _call(local_stack, account, "DELETE").status_code == 204
    marker_key = {
        "PK": keys.retention_pk(account.company_id),
        "SK": keys.retention_marker_sk(account.id),
    }
    marker = _table(local_stack).get_item(Key=marker_key)["Item"]
    assert str(marker["poll_shard"]).startswith("purge-")

    local_stack.fire(MAINTENANCE)

    (record,) = DynamoRetentionRepository(_table(local_stack)).list_records(account.company_id)
    assert (record.account_id, record.reason) == (account.id, "removed")
    assert "Item" not in _table(local_stack).get_item(Key=marker_key)
    (event,) = _purged(local_stack, account)
    assert event["detail"]["reason"] == "removed"
    assert local_stack.fire(MAINTENANCE)["purged"] == 0
