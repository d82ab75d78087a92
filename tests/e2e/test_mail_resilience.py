"""Mail sync under bad conditions: hang-ups, redelivered and half-done jobs, tricky MIME."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import boto3
import pytest
import requests
from boto3.dynamodb.conditions import Attr

from crmsync.models.accounts import AccountState
from crmsync.models.jobs import SyncAccount
from crmsync.models.mail import ProcessMessage
from crmsync.models.servers import ServerEndpoint
from crmsync.runtime import current_runtime
from crmsync.services.threads import ThreadAssembler
from crmsync_local.testservers.dovecot import DovecotServer
from crmsync_local.testservers.hangup_proxy import HangupProxy
from tests.e2e.mailbox import Mailbox, mail, mailbox, person

__all__ = ["mailbox"]  # the fixture, used by name
pytestmark = pytest.mark.e2e
CORPUS = Path(__file__).parents[1] / "fixtures" / "mime"


def _job(box: Mailbox, reason: str = "manual") -> SyncAccount:
    return SyncAccount(
        job_id=f"{reason}-{uuid.uuid4().hex}",
        account_id=box.account.id,
        company_id=box.account.company_id,
        enqueued_at=datetime.now(UTC),
        reason="manual",
    )


def _snapshot(box: Mailbox) -> dict[str, Any]:
    """Everything a user sees, without ids that differ between two companies."""
    shown: dict[str, Any] = {}
    for thread in box.threads():
        detail = box.get(f"/v1/threads/{thread['id']}")
        shown[thread["subject"]] = {
            "count": thread["message_count"],
            "unread": thread["unread_count"],
            "links": sorted((link["type"], link["reason"]) for link in thread["links"]),
            "participants": sorted(
                "me" if p["email"] == box.user.email else p["email"] for p in thread["participants"]
            ),
            "messages": [(m["subject"], m["folders"], m["unread"]) for m in detail["messages"]],
        }
    return shown


@pytest.fixture
def proxy(dovecot: DovecotServer) -> Iterator[HangupProxy]:
    with HangupProxy(dovecot.host, dovecot.port) as running:
        yield running


def test_hang_up_mid_fetch_loses_nothing_and_the_next_poll_completes(
    mailbox: Callable[..., Mailbox], proxy: HangupProxy
) -> None:
    box = mailbox(
        imap=ServerEndpoint(host="localhost", port=proxy.port, security="none"),
        sync_start="1_month",
    )
    sent = datetime.now(UTC) - timedelta(days=2)
    for index in range(12):
        box.append(
            "INBOX",
            mail(f"p{index}@x.test", box.user.email, f"Padded {index}", "x" * 1500),
            msg_time=sent + timedelta(minutes=index),
        )
    runtime = current_runtime()
    previous = runtime.settings.fetch_batch_size
    runtime.settings.fetch_batch_size = 5
    try:
        proxy.arm(trigger=b"FETCH", server_bytes=12_000)  # inside the second batch
        failed = runtime.mail_sync().run(_job(box))
        assert proxy.cuts == 1
        assert failed.outcome == "failed"
        assert failed.detail == "server_error"
        account = runtime.accounts.get(box.account.company_id, box.account.id)
        assert account is not None
        assert account.state == AccountState.CONNECTION_ERROR

        proxy.disarm()
        done = runtime.mail_sync().run(_job(box))
    finally:
        runtime.settings.fetch_batch_size = previous
    assert done.outcome == "ok"
    assert done.messages_fetched == 7, "the batch finished before the hang-up is not fetched again"
    account = runtime.accounts.get(box.account.company_id, box.account.id)
    assert account is not None
    assert account.state == AccountState.ACTIVE
    box.stack.drain()
    threads = box.threads()
    assert sorted(t["subject"] for t in threads) == sorted(f"Padded {i}" for i in range(12))
    assert all(t["message_count"] == 1 for t in threads)


def _fill(box: Mailbox) -> None:
    person(box, "Eve Example", "eve@client.test")
    start = datetime.now(UTC) - timedelta(days=3)
    first = mail("eve@client.test", box.user.email, "Quote", date=start)
    box.append("INBOX", first, msg_time=start)
    answer = mail(
        box.user.email,
        "eve@client.test",
        "Re: Quote",
        reply_to=first,
        date=start + timedelta(hours=1),
    )
    box.append("Sent", answer, flags=["\\Seen"], msg_time=start + timedelta(hours=1))
    for index in range(4):
        when = start + timedelta(hours=2 + index)
        box.append(
            "INBOX",
            mail(f"n{index}@other.test", box.user.email, f"Note {index}", date=when),
            msg_time=when,
        )


def _record_jobs(monkeypatch: pytest.MonkeyPatch) -> list[ProcessMessage]:
    queue = current_runtime().process_queue
    recorded: list[ProcessMessage] = []
    send = queue.send_messages

    def recording(jobs: Any) -> None:
        recorded.extend(jobs)
        send(jobs)

    monkeypatch.setattr(queue, "send_messages", recording)
    return recorded


def test_every_job_delivered_twice_gives_the_state_of_once(
    mailbox: Callable[..., Mailbox], monkeypatch: pytest.MonkeyPatch
) -> None:
    box = mailbox(sync_start="1_month")
    _fill(box)
    jobs = _record_jobs(monkeypatch)
    box.sync()
    once = _snapshot(box)
    assert once["Quote"]["count"] == 2
    assert len(once) == 5
    assert jobs, "the sync sent processing jobs"

    # SQS redelivers: the same bodies again, under new deduplication ids, through the queue.
    sqs = boto3.client("sqs")
    url = box.stack.resource("ProcessQueue")
    for job in jobs:
        sqs.send_message(
            QueueUrl=url,
            MessageBody=job.model_dump_json(),
            MessageGroupId=job.message_key,
            MessageDeduplicationId=uuid.uuid4().hex,
        )
    # And the sync job itself runs again.
    again = current_runtime().mail_sync().run(_job(box))
    assert again.messages_fetched == 0
    box.stack.drain()
    assert _snapshot(box) == once


def test_a_worker_killed_mid_batch_then_redelivered_gives_the_state_of_once(
    mailbox: Callable[..., Mailbox], monkeypatch: pytest.MonkeyPatch
) -> None:
    reference = mailbox(sync_start="1_month")
    _fill(reference)
    reference.sync()
    expected = _snapshot(reference)

    box = mailbox(sync_start="1_month")
    _fill(box)
    runtime = current_runtime()
    held: list[ProcessMessage] = []
    monkeypatch.setattr(runtime.process_queue, "send_messages", held.extend)
    box.sync()
    monkeypatch.undo()
    assert len(held) == 6

    # The worker dies after storing the third message, before its thread is written.
    real_assemble = ThreadAssembler.assemble
    calls = {"n": 0}

    def dying(self: ThreadAssembler, *args: Any, **kwargs: Any) -> Any:
        calls["n"] += 1
        if calls["n"] == 3:
            raise SystemExit("worker killed")
        return real_assemble(self, *args, **kwargs)

    processor = runtime.message_processor()
    with monkeypatch.context() as patch:
        patch.setattr(ThreadAssembler, "assemble", dying)
        with pytest.raises(SystemExit):
            _process_all(processor, held)
    # The whole batch comes back (visibility timeout) and is processed in full.
    runtime.process_queue.send_messages(held)
    box.stack.drain()
    assert _snapshot(box) == expected


def _process_all(processor: Any, jobs: list[ProcessMessage]) -> None:
    for job in jobs:
        processor.process(job)


def test_tricky_corpus_is_processed_without_a_crash(mailbox: Callable[..., Mailbox]) -> None:
    box = mailbox()
    box.sync()
    files = sorted(CORPUS.glob("*.eml"))
    assert len(files) >= 15
    for path in files:
        box.dovecot.append(box.user, "INBOX", path.read_bytes())
    box.sync()
    stored = sum(t["message_count"] for t in box.threads())
    assert stored == len(files)
    dlq = boto3.client("sqs").get_queue_attributes(
        QueueUrl=box.stack.resource("ProcessDeadLetterQueue"),
        AttributeNames=["ApproximateNumberOfMessages"],
    )
    assert dlq["Attributes"]["ApproximateNumberOfMessages"] == "0"
    for thread in box.threads():
        detail = box.get(f"/v1/threads/{thread['id']}")
        for message in detail["messages"]:
            assert "<script" not in (message["html"] or "").lower()


def test_retention_purges_every_synced_mail_item_and_object(
    mailbox: Callable[..., Mailbox], monkeypatch: pytest.MonkeyPatch
) -> None:
    box = mailbox(sync_start="1_month")
    _fill(box)
    box.sync()
    assert len(box.threads()) == 5
    stopped = requests.post(
        f"{box.stack.url}/v1/mail-accounts/{box.account.id}/stop", headers=box.headers, timeout=10
    )
    assert stopped.status_code == 200, stopped.text
    company = box.account.company_id
    mail_kinds = {
        "thread",
        "message",
        "message_pointer",
        "thread_link",
        "message_id_ref",
        "subject_thread",
        "participant",
        "uid_entry",
        "folder_checkpoint",
    }

    def leftovers() -> list[str]:
        # The table is shared by the whole e2e run: a scan returns 1 MB per page, so follow
        # every page (a test-only scan; the product never scans).
        table = boto3.resource("dynamodb").Table(box.stack.resource("MainTable"))
        request: dict[str, object] = {
            "FilterExpression": Attr("PK").begins_with(f"COMPANY#{company}#")
            & Attr("kind").is_in(sorted(mail_kinds))
        }
        kinds: set[str] = set()
        while True:
            scan = table.scan(**request)  # type: ignore[arg-type]
            kinds |= {str(item["kind"]) for item in scan["Items"]}
            if "LastEvaluatedKey" not in scan:
                return sorted(kinds)
            request["ExclusiveStartKey"] = scan["LastEvaluatedKey"]

    def objects() -> int:
        listing = boto3.client("s3").list_objects_v2(
            Bucket=box.stack.resource("RawMailBucket"), Prefix=f"raw/{company}/"
        )
        return int(listing.get("KeyCount", 0))

    assert "message_id_ref" in leftovers()
    assert objects() == 6
    monkeypatch.setenv("CRMSYNC_RETENTION_DAYS", "0")
    current_runtime.cache_clear()
    try:
        box.stack.fire("MaintenanceFunction.Daily")
    finally:
        monkeypatch.delenv("CRMSYNC_RETENTION_DAYS")
        current_runtime.cache_clear()
    assert leftovers() == []
    assert objects() == 0
