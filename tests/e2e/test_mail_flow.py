"""Mail sync end to end: real Dovecot, DynamoDB Local, moto S3/SQS, the local stack's queues.

Schedule -> poll_dispatcher -> sync queue -> mail_sync (IMAP, S3) -> process queue ->
message_processor (parse, thread, link) -> DynamoDB -> HTTP API.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import requests

from crmsync.models.jobs import SyncAccount
from crmsync.runtime import current_runtime
from tests.e2e.mailbox import Mailbox, deal, links, mail, mailbox, person, reset_uidvalidity

__all__ = ["mailbox"]  # the fixture, used by name

pytestmark = pytest.mark.e2e
SCHEDULE = "PollDispatcherFunction.Every"


def test_mail_is_synced_threaded_and_linked(mailbox: Callable[..., Mailbox]) -> None:
    box = mailbox(sync_start="1_month")
    ann = person(box, "Ann Buyer", "ann@customer.test", "Ann.Other@Customer.test")
    older = deal(box, "Small deal", ann)
    big = deal(box, "Big deal", ann)  # updated last: the one the rule picks
    deal(box, "Lost deal", ann, status="lost")
    first = mail("Ann Buyer <ANN.OTHER@customer.test>", box.user.email, "Pricing question")
    box.append("INBOX", first)
    box.stack.published_events()

    dispatched = box.stack.fire(SCHEDULE)  # one scheduled tick, then the queues drain
    assert dispatched["enqueued"] >= 1
    box.stack.drain()

    threads = box.threads()
    assert len(threads) == 1
    thread = threads[0]
    assert thread["subject"] == "Pricing question"
    assert thread["message_count"] == 1
    assert links(thread) == {("person", ann, "auto:person"), ("deal", big, "auto:deal")}
    assert older not in {link["id"] for link in thread["links"]}
    assert {p["email"]: p["person_id"] for p in thread["participants"]} == {
        "ann.other@customer.test": ann,
        box.user.email: None,
    }

    later = datetime.now(UTC) + timedelta(minutes=1)
    reply = mail(
        box.user.email, "ann@customer.test", "Re: Pricing question", reply_to=first, date=later
    )
    box.append("Sent", reply, flags=["\\Seen"])
    box.sync()
    threads = box.threads()
    assert len(threads) == 1, "the reply from Sent joins the thread"
    detail = box.get(f"/v1/threads/{threads[0]['id']}")
    assert [m["subject"] for m in detail["messages"]] == [
        "Pricing question",
        "Re: Pricing question",
    ]
    assert [m["folder"] for m in detail["messages"]] == ["INBOX", "Sent"]
    assert detail["messages"][1]["from"]["email"] == box.user.email
    assert detail["messages"][0]["message_id_header"] == first["Message-ID"].strip("<>")
    assert "Hello" in detail["messages"][0]["text"]

    for path in (f"/v1/persons/{ann}/threads", f"/v1/deals/{big}/threads"):
        assert [t["id"] for t in box.get(path)["items"]] == [threads[0]["id"]]

    message_id = detail["messages"][0]["id"]
    assert box.get(f"/v1/messages/{message_id}")["subject"] == "Pricing question"
    raw = requests.get(
        f"{box.stack.url}/v1/messages/{message_id}/raw", headers=box.headers, timeout=10
    )
    assert raw.status_code == 200
    assert b"Pricing question" in raw.content

    updates = [e for e in box.stack.published_events() if e["detail-type"] == "thread.updated"]
    assert updates, "new threads are announced"
    assert all("subject" not in e["detail"] for e in updates)


def test_idle_poll_costs_one_status_per_folder_and_no_writes(
    mailbox: Callable[..., Mailbox],
) -> None:
    box = mailbox()
    box.append("INBOX", mail("a@x.test", box.user.email, "Something"))
    box.sync()
    runtime = current_runtime()
    writes: list[str] = []

    def count(event_name: str, **_: Any) -> None:
        writes.append(event_name.rsplit(".", 1)[-1])

    client = runtime.table.meta.client
    client.meta.events.register("before-call.dynamodb.*", count)
    try:
        job = SyncAccount(
            job_id=f"idle-{uuid.uuid4().hex}",
            account_id=box.account.id,
            company_id=box.account.company_id,
            enqueued_at=datetime.now(UTC),
        )
        run = runtime.mail_sync().run(job)
    finally:
        client.meta.events.unregister("before-call.dynamodb.*", count)
    assert run.outcome == "idle"
    write_calls = {"PutItem", "UpdateItem", "DeleteItem", "BatchWriteItem", "TransactWriteItems"}
    assert [w for w in writes if w in write_calls] == []
    # Synced by default: INBOX, Sent, Archive (Drafts, Trash and Junk are not conversation).
    assert run.folders_checked == 3
    # CAPABILITY + LOGIN + one LIST-STATUS for every folder at once (RFC 5819; LOGOUT is
    # not counted). Servers without LIST-STATUS cost a LIST and one STATUS per folder.
    assert run.imap_commands == 3


def test_flags_moves_expunges_and_uidvalidity_reset(mailbox: Callable[..., Mailbox]) -> None:
    box = mailbox()
    box.sync()
    one = mail("b@x.test", box.user.email, "One")
    two = mail("c@x.test", box.user.email, "Two")
    box.append("INBOX", one)
    box.append("INBOX", two)
    box.sync()
    assert {t["subject"]: t["unread_count"] for t in box.threads()} == {"One": 1, "Two": 1}

    client = box.imap()
    try:
        client.select_folder("INBOX")
        uids = {
            client.fetch([u], ["ENVELOPE"])[u][b"ENVELOPE"].subject.decode(): u
            for u in client.search()
        }
        client.add_flags([uids["One"]], [b"\\Seen"])
        client.move([uids["Two"]], "Archive")
    finally:
        client.logout()
    box.sync()
    threads = {t["subject"]: t for t in box.threads()}
    assert threads["One"]["unread_count"] == 0
    assert threads["Two"]["folders"] == ["Archive"]
    assert threads["Two"]["message_count"] == 1

    client = box.imap()
    try:
        client.select_folder("INBOX")
        client.delete_messages(client.search())
        client.expunge()
    finally:
        client.logout()
    box.sync()
    assert sorted(t["subject"] for t in box.threads()) == ["Two"]

    before = box.threads()
    reset_uidvalidity(box, "Archive")
    box.sync()
    after = box.threads()
    assert [(t["id"], t["message_count"]) for t in after] == [
        (t["id"], t["message_count"]) for t in before
    ]
    detail = box.get(f"/v1/threads/{after[0]['id']}")
    assert len(detail["messages"]) == 1


def test_backfill_beyond_one_budget_resumes_and_stores_each_message_once(
    mailbox: Callable[..., Mailbox],
) -> None:
    box = mailbox(sync_start="1_month")
    base = datetime.now(UTC) - timedelta(days=5)
    for index in range(23):
        box.append(
            "INBOX",
            mail(f"s{index}@x.test", box.user.email, f"Backfill {index}"),
            msg_time=base + timedelta(minutes=index),
        )
    runtime = current_runtime()
    checks = {"n": 0}

    def out_of_time() -> bool:
        checks["n"] += 1
        return checks["n"] > 2  # two batches, then the budget is spent

    job = SyncAccount(
        job_id=f"backfill-{uuid.uuid4().hex}",
        account_id=box.account.id,
        company_id=box.account.company_id,
        enqueued_at=datetime.now(UTC),
        reason="manual",
    )
    previous = runtime.settings.fetch_batch_size
    runtime.settings.fetch_batch_size = 5
    try:
        first = runtime.mail_sync().run(job, out_of_time=out_of_time)
    finally:
        runtime.settings.fetch_batch_size = previous
    assert first.messages_fetched == 10
    assert first.complete is False
    box.stack.drain()  # the processor, then the "continue" job the sync queued for itself
    subjects = sorted(t["subject"] for t in box.threads())
    assert subjects == sorted(f"Backfill {i}" for i in range(23))
    assert all(t["message_count"] == 1 for t in box.threads())


def test_sync_start_and_crm_contacts_scope_and_blocked_addresses(
    mailbox: Callable[..., Mailbox],
) -> None:
    box = mailbox(sync_start="1_month", historical_scope="crm_contacts")
    person(box, "Carla Contact", "carla@contact.test")
    blocked = requests.post(
        f"{box.stack.url}/v1/me/blocked-addresses",
        json={"address": "@spam.test"},
        headers=box.headers,
        timeout=10,
    )
    assert blocked.status_code == 201, blocked.text
    assert box.get("/v1/me/blocked-addresses")["items"][0]["address"] == "@spam.test"
    now = datetime.now(UTC)
    old, recent = now - timedelta(days=60), now - timedelta(days=10)
    box.append("INBOX", mail("carla@contact.test", box.user.email, "Too old"), msg_time=old)
    box.append(
        "INBOX", mail("carla@contact.test", box.user.email, "Contact recent"), msg_time=recent
    )
    box.append(
        "INBOX", mail("stranger@else.test", box.user.email, "Stranger recent"), msg_time=recent
    )
    box.append("INBOX", mail("bot@spam.test", box.user.email, "Blocked recent"), msg_time=recent)
    box.sync()
    assert sorted(t["subject"] for t in box.threads()) == ["Contact recent"]

    box.append("INBOX", mail("stranger@else.test", box.user.email, "Stranger new"))
    box.append("INBOX", mail("BOT@Spam.test", box.user.email, "Blocked new"))
    box.append("Sent", mail(box.user.email, "x@spam.test", "To blocked only"))
    box.sync()
    assert sorted(t["subject"] for t in box.threads()) == ["Contact recent", "Stranger new"]


def test_rematch_links_existing_threads_when_a_person_gains_an_address(
    mailbox: Callable[..., Mailbox],
) -> None:
    box = mailbox()
    box.sync()
    box.append("INBOX", mail("dora@later.test", box.user.email, "Before she was a contact"))
    box.sync()
    assert box.threads()[0]["links"] == []
    dora = person(box, "Dora Later", "Dora@Later.test")
    box.stack.drain()
    assert links(box.threads()[0]) == {("person", dora, "auto:person")}
    current_runtime().directory().delete(
        box.owner, __import__("crmsync.models.directory", fromlist=["Person"]).Person, dora
    )
    box.stack.drain()
    assert box.threads()[0]["links"] == []
