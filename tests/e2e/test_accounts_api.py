"""/v1/mail-accounts through the local stack against a real Dovecot and SMTP server."""

from __future__ import annotations

import uuid
from typing import Any

import boto3
import pytest
import requests

from crmsync_local.stack import LocalStack
from crmsync_local.testservers.dovecot import DovecotServer, MailUser
from crmsync_local.testservers.net import free_port
from crmsync_local.testservers.smtp import SmtpServer

pytestmark = [pytest.mark.e2e, pytest.mark.usefixtures("trusted_mail_servers")]
SCHEDULE = "PollDispatcherFunction.Every"


class Client:
    def __init__(self, stack: LocalStack, user: str, company: str, role: str = "user") -> None:
        self.base = stack.url
        self.headers = {"Authorization": f"Bearer {stack.token(user, company, role)}"}

    def __call__(self, method: str, path: str, body: Any = None) -> requests.Response:
        return requests.request(
            method, self.base + path, json=body, headers=self.headers, timeout=30
        )


def _connect_body(
    user: MailUser, dovecot: DovecotServer, smtp: SmtpServer, password: str | None = None
) -> dict[str, Any]:
    return {
        "email": user.email,
        "password": password or user.password,
        "imap": {"host": "localhost", "port": dovecot.ssl_port, "security": "ssl"},
        "smtp": {"host": "localhost", "port": smtp.port, "security": "starttls"},
    }


@pytest.fixture
def company() -> str:
    return f"co-{uuid.uuid4().hex[:8]}"


@pytest.fixture
def owner(local_stack: LocalStack, company: str) -> Client:
    return Client(local_stack, "owner", company)


@pytest.fixture
def connected(
    owner: Client, mail_user: MailUser, dovecot: DovecotServer, smtp_server: SmtpServer
) -> dict[str, Any]:
    reply = owner("POST", "/v1/mail-accounts", _connect_body(mail_user, dovecot, smtp_server))
    assert reply.status_code == 201, reply.text
    return dict(reply.json())


def test_connect_with_the_right_password_is_active_and_never_returns_a_secret(
    local_stack: LocalStack, owner: Client, mail_user: MailUser, connected: dict[str, Any]
) -> None:
    assert connected["state"] == "active"
    assert connected["last_error"] is None
    assert set(connected["settings"]) >= {"folders", "sync_start", "sharing_default"}
    shown = owner("GET", f"/v1/mail-accounts/{connected['id']}")
    assert shown.status_code == 200
    listed = owner("GET", "/v1/mail-accounts").json()
    assert [a["id"] for a in listed["items"]] == [connected["id"]]
    for text in (shown.text, listed_text := str(listed)):
        assert mail_user.password not in text
        assert "sealed" not in text
    del listed_text
    table = boto3.resource("dynamodb").Table(local_stack.resource("MainTable"))
    items = table.scan()["Items"]
    stored = [i for i in items if str(i["PK"]).endswith(connected["id"])]
    assert {i["SK"] for i in stored} >= {"ACCOUNT", "CREDENTIALS"}
    assert mail_user.password not in str(stored)


def test_a_wrong_password_is_refused_with_a_clear_problem_and_nothing_stored(
    owner: Client, mail_user: MailUser, dovecot: DovecotServer, smtp_server: SmtpServer
) -> None:
    body = _connect_body(mail_user, dovecot, smtp_server, password="not-the-password")
    reply = owner("POST", "/v1/mail-accounts", body)
    assert reply.status_code == 422
    assert reply.headers["content-type"] == "application/problem+json"
    assert "refused the user name or password" in reply.json()["detail"]
    assert reply.json()["code"] == "auth_failed"
    assert "app password" in reply.json()["action"]
    assert owner("GET", "/v1/mail-accounts").json()["items"] == []


def test_a_port_where_nothing_listens_is_a_connection_problem_and_nothing_stored(
    owner: Client, mail_user: MailUser, dovecot: DovecotServer, smtp_server: SmtpServer
) -> None:
    body = _connect_body(mail_user, dovecot, smtp_server)
    body["imap"]["port"] = free_port()
    reply = owner("POST", "/v1/mail-accounts", body)
    assert reply.status_code == 422
    assert str(body["imap"]["port"]) in reply.json()["detail"]
    assert reply.json()["code"] == "connection_refused"
    assert owner("GET", "/v1/mail-accounts").json()["items"] == []


def test_a_changed_password_moves_the_account_to_needs_reauth_until_reauthenticated(
    local_stack: LocalStack,
    owner: Client,
    mail_user: MailUser,
    dovecot: DovecotServer,
    connected: dict[str, Any],
) -> None:
    path = f"/v1/mail-accounts/{connected['id']}"
    dovecot.set_password(mail_user.username, "rotated-password")
    local_stack.fire(SCHEDULE)
    local_stack.drain()

    account = owner("GET", path).json()
    assert account["state"] == "needs_reauth"
    assert account["last_error"]["code"] == "auth_failed"
    assert "app password" in account["last_error"]["action"]
    changes = [
        e["detail"]
        for e in local_stack.published_events()
        if e["detail-type"] == "account.state_changed"
        and e["detail"]["account_id"] == connected["id"]
    ]
    assert {"from": "active", "to": "needs_reauth"}.items() <= changes[-1].items()

    reply = owner("POST", f"{path}/reauthenticate", {"password": "rotated-password"})
    assert reply.status_code == 200, reply.text
    assert reply.json()["state"] == "active"


def test_sync_now_runs_a_real_poll_of_every_folder(
    local_stack: LocalStack, owner: Client, connected: dict[str, Any]
) -> None:
    path = f"/v1/mail-accounts/{connected['id']}"
    local_stack.drain()  # the first scheduled poll, if any, out of the way
    reply = owner("POST", f"{path}/sync")
    assert reply.status_code == 202
    local_stack.drain()
    runs = owner("GET", f"{path}/sync-runs").json()["items"]
    manual = [r for r in runs if r["reason"] == "manual"]
    assert len(manual) == 1
    assert manual[0]["outcome"] == "ok"
    folders = owner("GET", f"{path}/folders").json()["items"]
    assert len(folders) >= 5
    # "All mail" is every selectable folder but Drafts, Trash and Junk (not conversation).
    synced = [f for f in folders if f["special_use"] not in {"\\Drafts", "\\Trash", "\\Junk"}]
    assert manual[0]["folders_checked"] == len(synced) >= 3
    assert {"\\Sent", "\\Trash"} <= {f["special_use"] for f in folders}


def test_settings_stop_resume_and_remove(
    local_stack: LocalStack, owner: Client, connected: dict[str, Any]
) -> None:
    path = f"/v1/mail-accounts/{connected['id']}"
    patched = owner(
        "PATCH", path, {"settings": {"sharing_default": "shared", "sync_start": "6_months"}}
    )
    assert patched.status_code == 200, patched.text
    assert patched.json()["settings"]["sharing_default"] == "shared"
    assert owner("PATCH", path, {"settings": {"sync_start": "10 years"}}).status_code == 422

    assert owner("POST", f"{path}/stop").json()["state"] == "stopped"
    assert owner("POST", f"{path}/sync").status_code == 409
    assert owner("POST", f"{path}/resume").json()["state"] == "active"

    assert owner("DELETE", path).status_code == 204
    assert owner("GET", path).status_code == 404
    assert owner("GET", f"{path}/sync-runs").status_code == 404


def test_no_other_company_or_colleague_reaches_the_account(
    local_stack: LocalStack, company: str, connected: dict[str, Any]
) -> None:
    path = f"/v1/mail-accounts/{connected['id']}"
    other_company = Client(local_stack, "owner", f"other-{company}", "admin")
    colleague = Client(local_stack, "colleague", company)
    admin = Client(local_stack, "boss", company, "admin")
    for client in (other_company, colleague):
        for method, suffix in (
            ("GET", ""),
            ("PATCH", ""),
            ("DELETE", ""),
            ("GET", "/folders"),
            ("GET", "/sync-runs"),
            ("POST", "/sync"),
            ("POST", "/stop"),
            ("POST", "/resume"),
            ("POST", "/reauthenticate"),
        ):
            body = {"settings": {}} if method == "PATCH" else {} if method == "POST" else None
            reply = client(method, path + suffix, body)
            assert reply.status_code == 404, (method, suffix, reply.text)
        assert client("GET", "/v1/mail-accounts").json()["items"] == []
    assert admin("GET", path).status_code == 200
    assert admin("POST", f"{path}/stop").status_code == 403


def test_discovery_answers_the_preset_of_a_known_provider(owner: Client) -> None:
    reply = owner("GET", "/v1/mail-accounts/discover?email=someone@gmail.com")
    assert reply.status_code == 200, reply.text
    found = reply.json()
    assert (found["found"], found["source"], found["provider_id"]) == (True, "preset", "gmail")
    assert found["imap"] == {"host": "imap.gmail.com", "port": 993, "security": "ssl"}
    assert owner("GET", "/v1/mail-accounts/discover?email=not-an-address").status_code in (
        400,
        422,
    )
