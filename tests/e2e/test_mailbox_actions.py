"""Two-way mailbox actions (SPEC S9) end to end: read, archive and delete in the CRM move and
flag the messages on the real Dovecot server (read back over IMAP); what the user does in
the mail app reaches the CRM on the next poll; nothing ping-pongs; a redelivered job is
harmless; an action on an account waiting for re-authentication is applied after it."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import pytest
import requests

from crmsync.models.jobs import MailboxActionsJob
from crmsync.ports import QueuedSync
from crmsync.runtime import current_runtime
from tests.e2e.mailbox import Mailbox, mail, mailbox

__all__ = ["mailbox"]  # the fixture, used by name

pytestmark = pytest.mark.e2e


def _call(box: Mailbox, method: str, path: str, body: Any = None) -> requests.Response:
    return requests.request(
        method, f"{box.stack.url}{path}", json=body, headers=box.headers, timeout=20
    )


def _server(box: Mailbox) -> dict[str, dict[str, list[str]]]:
    """Folder -> subject -> flags, as the server has them now."""
    client = box.imap()
    found: dict[str, dict[str, list[str]]] = {}
    try:
        for folder in ("INBOX", "Archive", "Trash"):
            client.select_folder(folder, readonly=True)
            uids = client.search()
            fetched = client.fetch(uids, ["ENVELOPE", "FLAGS"]) if uids else {}
            found[folder] = {
                item[b"ENVELOPE"].subject.decode(): sorted(
                    f.decode() for f in item[b"FLAGS"] if f != b"\\Recent"
                )
                for item in fetched.values()
            }
    finally:
        client.logout()
    return found


def _by_subject(box: Mailbox, folder: str = "all") -> dict[str, dict[str, Any]]:
    page = box.get("/v1/threads", account_id=box.account.id, folder=folder, limit=100)
    return {t["subject"]: t for t in page["items"]}


def _imap(box: Mailbox, folder: str, subject: str, action: Callable[[Any, int], Any]) -> None:
    client = box.imap()
    try:
        client.select_folder(folder)
        for uid, item in client.fetch(client.search(), ["ENVELOPE"]).items():
            if item[b"ENVELOPE"].subject.decode() == subject:
                action(client, uid)
    finally:
        client.logout()


def test_crm_actions_reach_the_server_and_mailbox_changes_come_back(
    mailbox: Callable[..., Mailbox],
) -> None:
    box = mailbox(sync_start="1_month", archive_sync_back=True, delete_sync_back=True)
    for sender, subject in (
        ("a@x.test", "Keep"),
        ("b@x.test", "Archive me"),
        ("c@x.test", "Delete me"),
    ):
        box.append("INBOX", mail(sender, box.user.email, subject))
    box.sync()
    threads = _by_subject(box)
    assert {s: t["boxes"] for s, t in threads.items()} == {
        "Keep": ["inbox"],
        "Archive me": ["inbox"],
        "Delete me": ["inbox"],
    }

    # Read in the CRM -> \Seen on the server.
    reply = _call(box, "PATCH", f"/v1/threads/{threads['Keep']['id']}", {"read": True})
    assert reply.status_code == 200, reply.text
    assert reply.json()["unread_count"] == 0  # at once, before the server knows
    box.stack.drain()
    assert _server(box)["INBOX"]["Keep"] == ["\\Seen"]

    # Archive in the CRM -> moved to the special-use \Archive folder.
    reply = _call(box, "PATCH", f"/v1/threads/{threads['Archive me']['id']}", {"archived": True})
    assert reply.status_code == 200, reply.text
    assert reply.json()["boxes"] == ["archive"]
    box.stack.drain()
    server = _server(box)
    assert "Archive me" not in server["INBOX"]
    assert "Archive me" in server["Archive"]

    # Delete in the CRM -> moved to \Trash.
    assert _call(box, "DELETE", f"/v1/threads/{threads['Delete me']['id']}").status_code == 204
    box.stack.drain()
    server = _server(box)
    assert "Delete me" not in server["INBOX"]
    assert "Delete me" in server["Trash"]

    # The syncs that ran with each action read the result back: the CRM agrees with the
    # server, and more polls change nothing on either side (no ping-pong).
    settled = _server(box)
    for _ in range(2):
        box.sync()
    assert _server(box) == settled
    threads = _by_subject(box)
    assert (threads["Keep"]["boxes"], threads["Keep"]["unread_count"]) == (["inbox"], 0)
    assert threads["Archive me"]["boxes"] == ["archive"]
    assert threads["Archive me"]["folders"] == ["Archive"]
    assert "Delete me" not in threads
    assert current_runtime().mailbox_actions.pending(box.owner.company_id, box.account.id) == []

    # A redelivered mailbox_actions job (nothing pending any more) changes nothing.
    job = MailboxActionsJob(
        job_id=f"again-{uuid.uuid4().hex}",
        account_id=box.account.id,
        company_id=box.owner.company_id,
        enqueued_at=datetime.now(UTC),
    )
    for _ in range(2):
        current_runtime().jobs.send_syncs([QueuedSync(job=job, deduplication_id=uuid.uuid4().hex)])
    box.stack.drain()
    assert _server(box) == settled

    # In the mail app: unread, then archived by hand -> the CRM follows on the next poll.
    _imap(box, "INBOX", "Keep", lambda client, uid: client.remove_flags([uid], [b"\\Seen"]))
    box.sync()
    assert _by_subject(box)["Keep"]["unread_count"] == 1
    _imap(box, "INBOX", "Keep", lambda client, uid: client.add_flags([uid], [b"\\Seen"]))
    box.sync()
    assert _by_subject(box)["Keep"]["unread_count"] == 0
    _imap(box, "INBOX", "Keep", lambda client, uid: client.move([uid], "Archive"))
    box.sync()
    assert _by_subject(box)["Keep"]["boxes"] == ["archive"]
    assert "Keep" in _server(box)["Archive"]  # and the CRM did not move it back


def test_an_action_waits_for_reauthentication_and_is_then_applied(
    mailbox: Callable[..., Mailbox],
) -> None:
    box = mailbox(sync_start="1_month", archive_sync_back=True)
    box.append("INBOX", mail("d@x.test", box.user.email, "Later"))
    box.sync()
    thread = _by_subject(box)["Later"]

    new_password = uuid.uuid4().hex
    box.user = box.dovecot.set_password(box.user.username, new_password)
    box.sync()  # the login is refused: the account needs re-authentication
    account = box.get(f"/v1/mail-accounts/{box.account.id}")
    assert account["state"] == "needs_reauth"

    reply = _call(box, "PATCH", f"/v1/threads/{thread['id']}", {"archived": True})
    assert reply.status_code == 200, reply.text
    box.stack.drain()
    assert "Later" in _server(box)["INBOX"]  # not applied: the account cannot log in
    [kept] = current_runtime().mailbox_actions.pending(box.owner.company_id, box.account.id)
    assert kept.op == "archive"

    reply = _call(
        box,
        "POST",
        f"/v1/mail-accounts/{box.account.id}/reauthenticate",
        {"password": new_password},
    )
    assert reply.status_code == 200, reply.text
    box.sync()
    server = _server(box)
    assert "Later" in server["Archive"]
    assert "Later" not in server["INBOX"]
    assert current_runtime().mailbox_actions.pending(box.owner.company_id, box.account.id) == []
    assert _by_subject(box)["Later"]["boxes"] == ["archive"]
