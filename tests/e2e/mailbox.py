"""A connected Dovecot mailbox for end-to-end mail tests, and message builders."""

from __future__ import annotations

import subprocess
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid
from typing import Any, Literal

import pytest
import requests
from pydantic import SecretStr

from crmsync.models.accounts import MailAccount, SyncSettingsPatch
from crmsync.models.deals import Deal, DealCreate
from crmsync.models.directory import Person, PersonCreate, User, UserCreate
from crmsync.models.identity import Principal
from crmsync.models.servers import ServerEndpoint
from crmsync.runtime import current_runtime
from crmsync.services.accounts import ConnectAccount
from crmsync_local.stack import LocalStack
from crmsync_local.testservers.dovecot import DovecotServer, MailUser
from crmsync_local.testservers.smtp import SmtpServer


@dataclass
class Mailbox:
    """One company, one user, one Dovecot mailbox connected as a mail account."""

    stack: LocalStack
    dovecot: DovecotServer
    user: MailUser
    owner: Principal
    account: MailAccount

    @property
    def headers(self) -> dict[str, str]:
        token = self.stack.token(self.owner.user_id, self.owner.company_id, "user")
        return {"Authorization": f"Bearer {token}"}

    def get(self, path: str, **params: Any) -> Any:
        reply = requests.get(
            f"{self.stack.url}{path}", params=params, headers=self.headers, timeout=10
        )
        assert reply.status_code == 200, reply.text
        return reply.json()

    def threads(self) -> list[dict[str, Any]]:
        items: list[dict[str, Any]] = []
        cursor = None
        while True:
            params = {"account_id": self.account.id, "limit": 100}
            page = self.get("/v1/threads", **params, **({"cursor": cursor} if cursor else {}))
            items += page["items"]
            cursor = page["next_cursor"]
            if cursor is None:
                return items

    def sync(self) -> None:
        """A manual sync through the API, then every queue drained."""
        reply = requests.post(
            f"{self.stack.url}/v1/mail-accounts/{self.account.id}/sync",
            headers=self.headers,
            timeout=10,
        )
        assert reply.status_code == 202, reply.text
        self.stack.drain()

    def append(self, folder: str, message: EmailMessage, **kwargs: Any) -> int:
        return self.dovecot.append(self.user, folder, message.as_bytes(), **kwargs)

    def imap(self) -> Any:
        return self.dovecot.connect(self.user)


def mail(
    sender: str,
    to: str,
    subject: str,
    body: str = "Hello",
    *,
    reply_to: EmailMessage | None = None,
    date: datetime | None = None,
) -> EmailMessage:
    message = EmailMessage()
    message["From"] = sender
    message["To"] = to
    message["Subject"] = subject
    message["Message-ID"] = make_msgid(domain="e2e.test")
    message["Date"] = format_datetime(date or datetime.now(UTC))
    if reply_to is not None:
        message["In-Reply-To"] = reply_to["Message-ID"]
        message["References"] = reply_to["Message-ID"]
    message.set_content(body)
    return message


def connect_mailbox(
    local_stack: LocalStack,
    dovecot: DovecotServer,
    smtp_server: SmtpServer,
    *,
    role: Literal["admin", "user"] = "admin",
    imap: ServerEndpoint | None = None,
    **settings: Any,
) -> Mailbox:
    """A new Dovecot user, its company with the owner as a CRM user, and its account
    connected through the accounts service (a real login)."""
    user = dovecot.add_user(f"u-{uuid.uuid4().hex[:10]}@{dovecot.domain}", uuid.uuid4().hex)
    company = f"co-{uuid.uuid4().hex[:8]}"
    owner = Principal(user_id="owner-1", company_id=company, role=role)
    runtime = current_runtime()
    runtime.directory().create(
        owner.model_copy(update={"role": "admin"}),
        User,
        UserCreate(id="owner-1", name="Olga Owner", email=user.email),
    )
    account = runtime.accounts_service().connect(
        owner,
        ConnectAccount(
            email=user.email,
            password=SecretStr(user.password),
            imap=imap or ServerEndpoint(host="localhost", port=dovecot.ssl_port, security="ssl"),
            smtp=ServerEndpoint(host="localhost", port=smtp_server.port, security="starttls"),
            settings=SyncSettingsPatch(**settings) if settings else None,
        ),
    )
    return Mailbox(local_stack, dovecot, user, owner, account)


@pytest.fixture
def mailbox(
    local_stack: LocalStack,
    trusted_mail_servers: object,
    dovecot: DovecotServer,
    smtp_server: SmtpServer,
) -> Callable[..., Mailbox]:
    def make(imap: ServerEndpoint | None = None, **settings: Any) -> Mailbox:
        return connect_mailbox(local_stack, dovecot, smtp_server, imap=imap, **settings)

    return make


def person(box: Mailbox, name: str, *emails: str) -> str:
    person = (
        current_runtime()
        .directory()
        .create(box.owner, Person, PersonCreate(name=name, emails=list(emails)))
    )
    return person.id


def deal(box: Mailbox, title: str, person_id: str, status: str = "open") -> str:
    deal = (
        current_runtime()
        .directory()
        .create(box.owner, Deal, DealCreate(title=title, person_id=person_id, status=status))
    )
    return deal.id


def links(thread: dict[str, Any]) -> set[tuple[str, str, str]]:
    return {(link["type"], link["id"], link["reason"]) for link in thread["links"]}


def reset_uidvalidity(box: Mailbox, folder: str) -> None:
    """A new UIDVALIDITY, as after a server-side restore: doveadm sets it directly."""
    client = box.imap()
    try:
        old = client.folder_status(folder, [b"UIDVALIDITY"])[b"UIDVALIDITY"]
    finally:
        client.logout()
    subprocess.run(
        [
            box.dovecot._doveadm_bin,
            "-c",
            str(box.dovecot.config_path),
            "mailbox",
            "update",
            "-u",
            box.user.username,
            "--uid-validity",
            str(old + 1000),
            folder,
        ],
        check=True,
        capture_output=True,
        timeout=20,
    )
    client = box.imap()
    try:
        assert client.folder_status(folder, [b"UIDVALIDITY"])[b"UIDVALIDITY"] == old + 1000
    finally:
        client.logout()
