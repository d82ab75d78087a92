"""Sharing (SPEC L4) and manual links (SPEC L3) end to end, over HTTP on the local stack with
a real Dovecot mailbox: the one rule holds on every read route, for a colleague with access
to the linked deal, one without, and an admin; manual links and unlinks survive a full
re-sync (UIDVALIDITY reset) and a re-match after a person's address changes."""

from __future__ import annotations

from collections.abc import Callable
from email.message import EmailMessage
from typing import Any

import pytest
import requests

from crmsync.models.deals import Deal, DealCreate, Lead, LeadCreate, Project, ProjectCreate
from crmsync.models.directory import Person, PersonCreate, PersonUpdate, User, UserCreate
from crmsync.runtime import current_runtime
from tests.e2e.mailbox import Mailbox, links, mail, mailbox, reset_uidvalidity

__all__ = ["mailbox"]  # the fixture, used by name

pytestmark = pytest.mark.e2e


class Client:
    def __init__(self, box: Mailbox, user_id: str, role: str = "user") -> None:
        self._box = box
        token = box.stack.token(user_id, box.owner.company_id, role)
        self._headers = {"Authorization": f"Bearer {token}"}

    def call(self, method: str, path: str, body: Any = None, **params: Any) -> requests.Response:
        return requests.request(
            method,
            f"{self._box.stack.url}{path}",
            json=body,
            params=params,
            headers=self._headers,
            timeout=10,
            allow_redirects=False,
        )

    def status(self, path: str, **params: Any) -> int:
        return self.call("GET", path, **params).status_code

    def ids(self, path: str, **params: Any) -> list[str]:
        reply = self.call("GET", path, **params)
        assert reply.status_code == 200, reply.text
        return [item["id"] for item in reply.json()["items"]]


def _with_attachment(message: EmailMessage) -> EmailMessage:
    message.add_attachment(
        b"%PDF-1.4 quote", maintype="application", subtype="pdf", filename="quote.pdf"
    )
    return message


def _users(box: Mailbox, *names: tuple[str, str]) -> None:
    directory = current_runtime().directory()
    admin = box.owner.model_copy(update={"role": "admin"})
    for user_id, role in names:
        directory.create(
            admin,
            User,
            UserCreate(id=user_id, name=user_id, email=f"{user_id}@crm.test", role=role),
        )


def test_one_sharing_rule_on_every_read_route(mailbox: Callable[..., Mailbox]) -> None:
    box = mailbox(sync_start="1_month")
    _users(box, ("colleague", "user"), ("stranger", "user"), ("boss", "admin"))
    directory = current_runtime().directory()
    # Ann is the owner's own contact (visibility "owner"); her deal belongs to the colleague
    # and is visible only to them (and admins): only the colleague has access to the thread's
    # records, through the deal.
    ann = directory.create(
        box.owner,
        Person,
        PersonCreate(name="Ann Buyer", emails=["ann@customer.test"], visibility="owner"),
    ).id
    deal = directory.create(
        box.owner,
        Deal,
        DealCreate(title="Big", person_id=ann, owner_id="colleague", visibility="owner"),
    ).id
    box.append("INBOX", _with_attachment(mail("ann@customer.test", box.user.email, "Quote")))
    box.sync()
    [thread] = box.threads()
    assert links(thread) == {("person", ann, "auto:person"), ("deal", deal, "auto:deal")}
    assert thread["visibility"] == "private"
    message = box.get(f"/v1/threads/{thread['id']}")["messages"][0]["id"]

    owner = Client(box, box.owner.user_id)
    colleague = Client(box, "colleague")
    stranger = Client(box, "stranger")
    boss = Client(box, "boss", role="admin")
    reads = [
        f"/v1/threads/{thread['id']}",
        f"/v1/messages/{message}",
        f"/v1/messages/{message}/raw",
        f"/v1/messages/{message}/attachments/0",
    ]

    def sees(client: Client) -> bool:
        """Every thread route agrees, and so do the deal's and person's lists."""
        answers = {client.status(path) for path in reads}
        assert answers in ({200, 302}, {404}), answers
        visible = answers != {404}
        for path in (f"/v1/deals/{deal}/threads", f"/v1/persons/{ann}/threads"):
            reply = client.call("GET", path)
            if reply.status_code == 200:
                assert (thread["id"] in [t["id"] for t in reply.json()["items"]]) == visible
            else:
                assert reply.status_code == 404  # the record itself is hidden
        return visible

    # Private: the owner's alone, admins included, on every route.
    assert sees(owner)
    assert not sees(colleague)
    assert not sees(stranger)
    assert not sees(boss)
    assert boss.status("/v1/threads", account_id=box.account.id) == 404
    assert boss.ids("/v1/threads") == []
    assert box.account.id not in str(boss.call("GET", "/v1/me/mail-counts").json())
    assert colleague.call("PATCH", f"/v1/threads/{thread['id']}", {"read": True}).status_code == 404

    shared = owner.call("PATCH", f"/v1/threads/{thread['id']}", {"visibility": "shared"})
    assert shared.status_code == 200, shared.text
    assert shared.json()["visibility"] == "shared"
    assert sees(colleague)  # has access to the deal
    assert not sees(stranger)  # has access to neither the person nor the deal
    assert sees(boss)  # admins read every record
    # Reading is not changing: only the mailbox's owner acts on the thread.
    refused = colleague.call("PATCH", f"/v1/threads/{thread['id']}", {"archived": True})
    assert refused.status_code == 403
    assert refused.headers["content-type"].startswith("application/problem+json")
    # The colleague's own inbox and counts stay their own.
    assert colleague.ids("/v1/threads") == []

    # Back to private: gone again everywhere.
    assert owner.call("PATCH", f"/v1/threads/{thread['id']}", {"visibility": "private"}).ok
    assert not sees(colleague)


def test_manual_links_survive_a_full_resync_and_a_rematch(mailbox: Callable[..., Mailbox]) -> None:
    box = mailbox(sync_start="1_month")
    owner = Client(box, box.owner.user_id)
    directory = current_runtime().directory()
    ann = directory.create(
        box.owner, Person, PersonCreate(name="Ann", emails=["ann@customer.test"])
    ).id
    bob = directory.create(box.owner, Person, PersonCreate(name="Bob", emails=["bob@x.test"])).id
    lead = directory.create(box.owner, Lead, LeadCreate(title="Inbound lead")).id
    project = directory.create(box.owner, Project, ProjectCreate(title="Rollout")).id
    box.append("INBOX", mail("ann@customer.test", box.user.email, "Hello"))
    box.sync()
    [thread] = box.threads()
    path = f"/v1/threads/{thread['id']}/links"
    assert links(thread) == {("person", ann, "auto:person")}

    for body in (
        {"type": "lead", "id": lead},
        {"type": "project", "id": project},
        {"type": "person", "id": bob},
    ):
        reply = owner.call("POST", path, body)
        assert reply.status_code == 201, reply.text
    assert owner.call("DELETE", f"{path}/person/{ann}").status_code == 204
    expected = {("lead", lead, "manual"), ("project", project, "manual"), ("person", bob, "manual")}
    assert links(box.threads()[0]) == expected
    assert owner.ids(f"/v1/leads/{lead}/threads") == [thread["id"]]
    assert owner.ids(f"/v1/projects/{project}/threads") == [thread["id"]]
    assert owner.ids(f"/v1/persons/{ann}/threads") == []

    # A full re-sync: the server says every UID is new; every message is fetched again.
    reset_uidvalidity(box, "INBOX")
    box.append("INBOX", mail("ann@customer.test", box.user.email, "Another topic"))
    box.sync()
    threads = {t["subject"]: t for t in box.threads()}
    assert links(threads["Hello"]) == expected
    assert links(threads["Another topic"]) == {("person", ann, "auto:person")}

    # Ann's address changes and changes back: the re-match never brings the unlinked link
    # back, never drops a manual one.
    for emails in (["ann@elsewhere.test"], ["ann@customer.test"]):
        directory.update(box.owner, Person, ann, PersonUpdate(emails=emails))
        box.stack.drain()
        assert links({t["subject"]: t for t in box.threads()}["Hello"]) == expected

    # Errors are problems, and change nothing.
    assert owner.call("POST", path, {"type": "deal", "id": "no-such-deal"}).status_code == 404
    assert owner.call("POST", path, {"type": "planet", "id": "x"}).status_code == 422
    assert owner.call("DELETE", f"{path}/person/{ann}").status_code == 404
    assert owner.call("DELETE", f"/v1/threads/t-missing/links/lead/{lead}").status_code == 404
    assert links({t["subject"]: t for t in box.threads()}["Hello"]) == expected
