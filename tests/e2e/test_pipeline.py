"""Schedule -> poll_dispatcher -> SQS FIFO -> mail_sync -> DynamoDB -> HTTP API, all real."""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from datetime import UTC, datetime

import boto3
import pytest
import requests
from pydantic import SecretStr

from crmsync.models.accounts import AccountState, MailAccount
from crmsync.models.identity import Principal
from crmsync.models.jobs import SyncAccount
from crmsync.models.servers import ServerEndpoint
from crmsync.runtime import current_runtime
from crmsync.services.accounts import ConnectAccount
from crmsync_local.auth import LocalJwtKeys
from crmsync_local.stack import LocalStack
from crmsync_local.testservers.dovecot import DovecotServer
from crmsync_local.testservers.smtp import SmtpServer

pytestmark = pytest.mark.e2e
SCHEDULE = "PollDispatcherFunction.Every"


@pytest.fixture
def seed(
    trusted_mail_servers: object,
    dovecot: DovecotServer,
    smtp_server: SmtpServer,
) -> Callable[..., MailAccount]:
    """Connect a fresh Dovecot user through the accounts service (a real login)."""

    def connect(state: AccountState = AccountState.ACTIVE) -> MailAccount:
        user = dovecot.add_user(f"u-{uuid.uuid4().hex[:10]}@{dovecot.domain}", uuid.uuid4().hex)
        owner = Principal(user_id="owner-1", company_id=f"co-{uuid.uuid4().hex[:8]}", role="user")
        service = current_runtime().accounts_service()
        account = service.connect(
            owner,
            ConnectAccount(
                email=user.email,
                password=SecretStr(user.password),
                imap=ServerEndpoint(host="localhost", port=dovecot.ssl_port, security="ssl"),
                smtp=ServerEndpoint(host="localhost", port=smtp_server.port, security="starttls"),
            ),
        )
        if state == AccountState.STOPPED:
            account = service.stop(owner, account.id)
        return account

    return connect


def _runs(stack: LocalStack, account: MailAccount, token: str | None) -> requests.Response:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return requests.get(
        f"{stack.url}/v1/mail-accounts/{account.id}/sync-runs", headers=headers, timeout=10
    )


def test_scheduled_sync_is_stored_and_served(
    local_stack: LocalStack, seed: Callable[..., MailAccount]
) -> None:
    account = seed()
    local_stack.published_events()  # forget what earlier tests published

    dispatched = local_stack.fire(SCHEDULE)
    assert dispatched["enqueued"] >= 1
    local_stack.drain()

    owner = local_stack.token("owner-1", account.company_id, "user")
    reply = _runs(local_stack, account, owner)
    assert reply.status_code == 200, reply.text
    body = reply.json()
    assert body["next_cursor"] is None
    assert [run["outcome"] for run in body["items"]] == ["ok"]
    assert body["items"][0]["account_id"] == account.id

    events = [e for e in local_stack.published_events() if e["detail"]["account_id"] == account.id]
    assert [e["detail-type"] for e in events] == ["mail_sync.completed"]
    assert events[0]["source"] == "crmsync"
    assert events[0]["detail"]["company_id"] == account.company_id

    # The account is now scheduled in the future: the next tick does not enqueue it again.
    local_stack.fire(SCHEDULE)
    local_stack.drain()
    assert len(_runs(local_stack, account, owner).json()["items"]) == 1


def test_route_requires_a_token_signed_by_the_authorizer_key(
    local_stack: LocalStack, seed: Callable[..., MailAccount]
) -> None:
    account = seed()
    assert _runs(local_stack, account, None).status_code == 401
    forged = LocalJwtKeys.generate().mint("owner-1", account.company_id, "admin")
    assert _runs(local_stack, account, forged).status_code == 401
    assert _runs(local_stack, account, "not-a-jwt").status_code == 401
    assert _runs(local_stack, account, local_stack.token("owner-1", account.company_id)).ok


def test_accounts_are_isolated_by_company_and_owner(
    local_stack: LocalStack, seed: Callable[..., MailAccount]
) -> None:
    account = seed()
    other_company = local_stack.token("owner-1", "another-company", "admin")
    colleague = local_stack.token("colleague", account.company_id, "user")
    admin = local_stack.token("boss", account.company_id, "admin")
    assert _runs(local_stack, account, other_company).status_code == 404
    assert _runs(local_stack, account, colleague).status_code == 404
    problem = _runs(local_stack, account, colleague)
    assert problem.headers["content-type"] == "application/problem+json"
    assert problem.json()["title"] == "Not found"
    assert _runs(local_stack, account, admin).status_code == 200


def test_duplicate_delivery_of_a_sync_job_changes_nothing(
    local_stack: LocalStack, seed: Callable[..., MailAccount], dovecot: DovecotServer
) -> None:
    account = seed()
    local_stack.fire(SCHEDULE)  # the first poll out of the way
    local_stack.drain()
    local_stack.published_events()
    new = (
        b"From: a@x.test\r\nTo: b@x.test\r\nSubject: New\r\nMessage-ID: <dup@x.test>\r\n\r\nhi\r\n"
    )
    dovecot.append(account.email, "INBOX", new)
    job = SyncAccount(
        job_id=f"{account.id}:dup",
        account_id=account.id,
        company_id=account.company_id,
        enqueued_at=datetime.now(UTC),
    )
    sqs = boto3.client("sqs")
    for attempt in range(2):  # two deliveries past FIFO deduplication
        sqs.send_message(
            QueueUrl=local_stack.resource("SyncQueue"),
            MessageBody=job.model_dump_json(),
            MessageGroupId=account.id,
            MessageDeduplicationId=f"dup-{attempt}",
        )
    local_stack.drain()
    owner = local_stack.token("owner-1", account.company_id)
    runs = _runs(local_stack, account, owner).json()["items"]
    # The first delivery fetched the new message; the second found nothing to do.
    assert [r["id"] for r in runs].count(job.job_id) == 1
    (run,) = [r for r in runs if r["id"] == job.job_id]
    assert run["messages_fetched"] == 1
    published = [
        e for e in local_stack.published_events() if e["detail"].get("run_id") == job.job_id
    ]
    assert len(published) == 1


def test_stopped_accounts_are_not_dispatched(
    local_stack: LocalStack, seed: Callable[..., MailAccount]
) -> None:
    account = seed(AccountState.STOPPED)
    local_stack.fire(SCHEDULE)
    local_stack.drain()
    owner = local_stack.token("owner-1", account.company_id)
    assert _runs(local_stack, account, owner).json()["items"] == []


def test_health_reports_the_emulators(local_stack: LocalStack) -> None:
    reply = requests.get(f"{local_stack.url}/health", timeout=10)
    assert reply.status_code == 200
    body = reply.json()
    assert body["checks"] == {"dynamodb": "ok"}
    emulators = body["runtime"]["emulators"]
    assert emulators["dynamodb_local"][0].isdigit()
    assert emulators["moto"][0].isdigit()


def test_unknown_route_is_404(local_stack: LocalStack) -> None:
    reply = requests.get(f"{local_stack.url}/v1/nothing-here", timeout=10)
    assert reply.status_code == 404
    assert json.loads(reply.text) == {"message": "Not Found"}
