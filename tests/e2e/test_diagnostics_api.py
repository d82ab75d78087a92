"""GET /v1/mail-accounts/{id}/diagnostics against real servers: each problem with its fix."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from crmsync.runtime import current_runtime
from crmsync_local.stack import LocalStack
from crmsync_local.testservers.dovecot import DovecotServer, MailUser
from crmsync_local.testservers.smtp import SmtpServer
from crmsync_local.testservers.tls import write_ca_bundle

pytestmark = [pytest.mark.e2e, pytest.mark.usefixtures("trusted_mail_servers")]


class Owner:
    def __init__(self, stack: LocalStack) -> None:
        self.base = stack.url
        token = stack.token("owner", f"co-{uuid.uuid4().hex[:8]}")
        self.headers = {"Authorization": f"Bearer {token}"}

    def __call__(self, method: str, path: str, body: Any = None) -> requests.Response:
        return requests.request(
            method, self.base + path, json=body, headers=self.headers, timeout=60
        )

    def connect(self, user: MailUser, dovecot: DovecotServer, smtp: SmtpServer) -> str:
        reply = self(
            "POST",
            "/v1/mail-accounts",
            {
                "email": user.email,
                "password": user.password,
                "imap": {"host": "localhost", "port": dovecot.ssl_port, "security": "ssl"},
                "smtp": {"host": "localhost", "port": smtp.port, "security": "starttls"},
            },
        )
        assert reply.status_code == 201, reply.text
        return str(reply.json()["id"])

    def checks(self, account_id: str) -> dict[str, dict[str, str]]:
        reply = self("GET", f"/v1/mail-accounts/{account_id}/diagnostics")
        assert reply.status_code == 200, reply.text
        return {check["name"]: check for check in reply.json()["checks"]}


@pytest.fixture
def owner(local_stack: LocalStack) -> Owner:
    return Owner(local_stack)


def test_a_healthy_account_passes_every_check(
    owner: Owner, mail_user: MailUser, dovecot: DovecotServer, smtp_server: SmtpServer
) -> None:
    account_id = owner.connect(mail_user, dovecot, smtp_server)
    reply = owner("GET", f"/v1/mail-accounts/{account_id}/diagnostics").json()
    assert reply["healthy"] is True
    statuses = {c["name"]: c["status"] for c in reply["checks"]}
    assert statuses["imap_login"] == statuses["smtp_login"] == "ok"
    assert statuses["imap_server"] == statuses["selected_folders"] == "ok"


def test_a_changed_password_is_reported_with_the_app_password_fix(
    owner: Owner, mail_user: MailUser, dovecot: DovecotServer, smtp_server: SmtpServer
) -> None:
    account_id = owner.connect(mail_user, dovecot, smtp_server)
    dovecot.set_password(mail_user.username, "changed-elsewhere")
    checks = owner.checks(account_id)
    assert checks["imap_server"]["status"] == "ok"
    assert checks["imap_login"]["status"] == "problem"
    assert "refused the user name or password" in checks["imap_login"]["message"]
    assert "app password" in checks["imap_login"]["fix"]


@pytest.fixture
def doomed(tmp_path: Path) -> Iterator[tuple[DovecotServer, SmtpServer]]:
    """A second Dovecot (with its SMTP) the test can switch off; their certificates join
    the trusted bundle for the test's duration."""
    server = DovecotServer().start()
    smtp = SmtpServer(server).start()
    bundle = Path(current_runtime().settings.local_ca_file or "")
    original = bundle.read_text()
    extra = write_ca_bundle([bundle, server.cafile, smtp.cafile], tmp_path / "bundle.pem")
    bundle.write_text(extra.read_text())
    yield server, smtp
    bundle.write_text(original)
    smtp.stop()
    server.stop()


def test_an_unreachable_server_is_reported_and_login_not_tried(
    owner: Owner, doomed: tuple[DovecotServer, SmtpServer]
) -> None:
    doomed_dovecot, doomed_smtp = doomed
    user = doomed_dovecot.add_user(f"u-{uuid.uuid4().hex[:8]}@{doomed_dovecot.domain}", "pw-1")
    account_id = owner.connect(user, doomed_dovecot, doomed_smtp)
    doomed_dovecot.stop()
    checks = owner.checks(account_id)
    assert checks["imap_server"]["status"] == "problem"
    assert str(doomed_dovecot.ssl_port) in checks["imap_server"]["message"]
    assert checks["imap_server"]["fix"]
    assert checks["imap_login"]["status"] == "info"


def test_a_selected_folder_that_disappeared_is_reported(
    owner: Owner, mail_user: MailUser, dovecot: DovecotServer, smtp_server: SmtpServer
) -> None:
    account_id = owner.connect(mail_user, dovecot, smtp_server)
    dovecot.create_folder(mail_user, "Projects")
    reply = owner(
        "PATCH",
        f"/v1/mail-accounts/{account_id}",
        {"settings": {"folders": "selected", "selected_folders": ["INBOX", "Projects"]}},
    )
    assert reply.status_code == 200, reply.text
    assert owner.checks(account_id)["selected_folders"]["status"] == "ok"
    client = dovecot.connect(mail_user)
    try:
        client.delete_folder("Projects")
    finally:
        client.logout()
    check = owner.checks(account_id)["selected_folders"]
    assert check["status"] == "problem"
    assert "Projects" in check["message"]
    assert "Choose the folders" in check["fix"]


def test_only_the_owner_may_run_diagnostics(
    local_stack: LocalStack,
    owner: Owner,
    mail_user: MailUser,
    dovecot: DovecotServer,
    smtp_server: SmtpServer,
) -> None:
    account_id = owner.connect(mail_user, dovecot, smtp_server)
    company = local_stack.token("x", "y")  # another company
    reply = requests.get(
        f"{local_stack.url}/v1/mail-accounts/{account_id}/diagnostics",
        headers={"Authorization": f"Bearer {company}"},
        timeout=30,
    )
    assert reply.status_code == 404
