"""Compose and send over in-memory stores, a fake IMAP server and a scripted SMTP server
(SPEC I2, I3, I5, T3): what is accepted, idempotency, scheduling and cancelling, and how the
worker answers each SMTP reply without sending anyone a message twice."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from crmsync.errors import ConflictError, NotFoundError, ValidationFailedError
from crmsync.mail.connect import SmtpEnvelope, SmtpOutcome, SmtpRefusedError, SmtpReply
from crmsync.models.accounts import AccountState, MailAccount, SyncSettingsPatch
from crmsync.models.identity import Principal
from crmsync.models.outbox import OutboxEntry, OutboxPayload, SendMessageJob, SendRequest
from crmsync.models.servers import MailServerError, ServerEndpoint
from crmsync.services.mail_sender import MAX_ATTEMPTS, MailSender, RetryLaterError
from crmsync.services.message_processor import MessageProcessor
from crmsync.services.sending import InvalidRecipientProblem, SendService
from crmsync.services.threads import ThreadAssembler
from tests.unit.fakes import FakeAccountRepository, FakeClock, FakeEventPublisher
from tests.unit.fakes_mail import (
    FakeAccountHealth,
    FakeBlockedStore,
    FakeContactDirectory,
    FakeImapServer,
    FakeImapSessions,
    FakeRawStore,
    FakeThreadStore,
    problem,
)

NOW = datetime(2025, 3, 3, 9, 0, tzinfo=UTC)
ME = Principal(user_id="u1", company_id="c1", role="user")
OTHER = Principal(user_id="u2", company_id="c1", role="user")


class MemoryOutbox:
    def __init__(self) -> None:
        self.entries: dict[str, OutboxEntry] = {}

    def get(self, company_id: str, outbox_id: str) -> OutboxEntry | None:
        entry = self.entries.get(outbox_id)
        return entry if entry and entry.company_id == company_id else None

    def create(self, entry: OutboxEntry) -> bool:
        if entry.id in self.entries:
            return False
        self.entries[entry.id] = entry
        return True

    def save(self, entry: OutboxEntry, seen_version: int) -> bool:
        if self.entries[entry.id].version != seen_version:
            return False
        self.entries[entry.id] = entry
        return True

    def due(self, shard: int, now: datetime) -> Iterator[tuple[str, str]]:
        for entry in list(self.entries.values()):
            if (
                shard == 0
                and entry.status == "scheduled"
                and entry.send_at
                and entry.send_at <= now
            ):
                yield entry.company_id, entry.id


class MemoryPayloads:
    def __init__(self) -> None:
        self.items: dict[str, OutboxPayload] = {}

    def put(self, key: str, payload: OutboxPayload) -> None:
        self.items[key] = payload

    def get(self, key: str) -> OutboxPayload:
        return self.items[key]


class MemoryQueue:
    def __init__(self) -> None:
        self.jobs: list[SendMessageJob] = []

    def send(self, jobs: Any) -> None:
        self.jobs.extend(jobs)


class ScriptedSmtp:
    """Answers each transaction with the next scripted reply; records what was accepted."""

    def __init__(self) -> None:
        self.script: list[Any] = []
        self.accepted: list[tuple[list[str], bytes]] = []

    def send_mail(self, account: MailAccount, password: str, envelope: SmtpEnvelope) -> SmtpOutcome:
        step = self.script.pop(0) if self.script else None
        if isinstance(step, Exception):
            raise step
        refused: dict[str, SmtpReply] = step or {}
        kept = [r for r in envelope.recipients if r not in refused]
        if kept:
            self.accepted.append((kept, envelope.data))
        return SmtpOutcome(refused={r: refused[r] for r in envelope.recipients if r in refused})


class Rig:
    def __init__(self, **settings: Any) -> None:
        self.clock = FakeClock(NOW)
        self.accounts = FakeAccountRepository()
        self.account = MailAccount.model_validate(
            {
                "id": "a1",
                "company_id": "c1",
                "user_id": "u1",
                "email": "me@example.com",
                "imap": ServerEndpoint(host="imap.example.com", port=993, security="ssl"),
                "smtp": ServerEndpoint(host="smtp.example.com", port=587, security="starttls"),
                "created_at": NOW - timedelta(days=3),
                "settings": settings,
            }
        )
        self.accounts.put(self.account, 8)
        self.outbox = MemoryOutbox()
        self.payloads = MemoryPayloads()
        self.queue = MemoryQueue()
        self.threads = FakeThreadStore()
        self.remembered: list[SyncSettingsPatch] = []
        self.service = SendService(
            self.accounts,
            self.outbox,
            self.payloads,
            lambda c, a, o: f"outbox/{c}/{a}/{o}.json",
            self.threads,
            self.queue,
            self.clock.now,
            shard_count=1,
            remember_tracking=lambda p, a, patch: self.remembered.append(patch),
        )
        self.server = FakeImapServer()
        self.server.add_folder("Sent", special_use="\\Sent")
        self.smtp = ScriptedSmtp()
        self.raw = FakeRawStore()
        contacts = FakeContactDirectory()
        events = FakeEventPublisher()
        assembler = ThreadAssembler(self.threads, contacts, events, self.clock.now)
        processor = MessageProcessor(
            self.accounts,
            self.threads,
            self.raw,
            contacts,
            FakeBlockedStore(),
            assembler,
            self.clock.now,
        )
        self.sender = MailSender(
            self.accounts,
            self.outbox,
            self.payloads,
            FakeAccountHealth(),
            self.smtp,
            FakeImapSessions(self.server),
            self.raw,
            self.threads,
            processor.process,
            self.clock.now,
        )

    def request(self, **changes: Any) -> SendRequest:
        fields: dict[str, Any] = {
            "account_id": "a1",
            "to": ["ann@example.org"],
            "subject": "Quote",
            "html": "<p>Hello</p>",
        }
        return SendRequest.model_validate({**fields, **changes})

    def work(self) -> OutboxEntry | None:
        """The worker on every queued job (like one queue drain without retries)."""
        result = None
        for job in list(self.queue.jobs):
            self.queue.jobs.remove(job)
            result = self.sender.send(job)
        return result


@pytest.fixture
def rig() -> Rig:
    return Rig()


@pytest.mark.parametrize("bad", list('\\/":<>|*`~^\u00b4'))
def test_every_invalid_character_is_refused_before_anything_is_stored(rig: Rig, bad: str) -> None:
    address = f"a{bad}b@example.org"
    with pytest.raises(InvalidRecipientProblem) as refused:
        rig.service.submit(ME, rig.request(bcc=[address]))
    assert refused.value.address == address
    assert address in str(refused.value)
    assert rig.outbox.entries == {}
    assert rig.payloads.items == {}
    assert rig.queue.jobs == []


def test_what_else_is_refused(rig: Rig) -> None:
    with pytest.raises(InvalidRecipientProblem):
        rig.service.submit(ME, rig.request(to=["ann@example"]))
    with pytest.raises(ValidationFailedError, match="at least one recipient"):
        rig.service.submit(ME, rig.request(to=[]))
    with pytest.raises(NotFoundError):  # someone else's account
        rig.service.submit(OTHER, rig.request())
    with pytest.raises(ValidationFailedError, match="not base64"):
        rig.service.submit(
            ME,
            rig.request(attachments=[{"filename": "a.pdf", "content_base64": "***"}]),
        )
    with pytest.raises(NotFoundError):
        rig.service.submit(ME, rig.request(reply_to_message_id="m-missing"))
    assert rig.outbox.entries == {}


def test_an_idempotency_key_gives_one_entry_and_one_job(rig: Rig) -> None:
    first = rig.service.submit(ME, rig.request(), "k1")
    again = rig.service.submit(ME, rig.request(), "k1")
    assert first.id == again.id
    assert len(rig.queue.jobs) == 1
    with pytest.raises(ConflictError, match="different message"):
        rig.service.submit(ME, rig.request(subject="Other"), "k1")
    assert rig.service.submit(ME, rig.request(), "k2").id != first.id
    assert len(rig.queue.jobs) == 2


def test_a_tracking_choice_becomes_the_default_and_plain_text_gets_no_pixel(rig: Rig) -> None:
    accepted = rig.service.submit(ME, rig.request(track_opens=False))
    assert rig.remembered == [SyncSettingsPatch(track_opens=False)]
    assert accepted.pixel is False
    plain = rig.service.submit(ME, rig.request(html="", text="Hi https://example.org/x"))
    assert plain.pixel is False
    assert plain.pixel_note is not None
    assert "plain-text" in plain.pixel_note
    assert rig.service.submit(ME, rig.request()).pixel is True


def test_scheduled_messages_wait_for_the_dispatcher_and_can_be_cancelled(rig: Rig) -> None:
    later = rig.service.submit(ME, rig.request(send_at=NOW + timedelta(minutes=10)))
    never = rig.service.submit(ME, rig.request(send_at=NOW + timedelta(minutes=10)))
    assert later.status == "scheduled"
    assert rig.queue.jobs == []
    assert rig.service.cancel(ME, never.id).status == "cancelled"
    assert rig.service.dispatch_due() == 0
    rig.clock.advance(timedelta(minutes=10))
    assert rig.service.dispatch_due() == 1
    assert rig.service.dispatch_due() == 0  # a second tick finds it queued already
    assert [job.outbox_id for job in rig.queue.jobs] == [later.id]
    assert rig.service.status(ME, never.id).status == "cancelled"
    with pytest.raises(ConflictError):
        rig.service.cancel(ME, later.id)
    with pytest.raises(NotFoundError):
        rig.service.status(OTHER, later.id)


def test_the_worker_sends_copies_to_sent_and_threads_the_message(rig: Rig) -> None:
    accepted = rig.service.submit(ME, rig.request(cc=["bob@example.org"], bcc=["cat@x.org"]))
    entry = rig.work()
    assert entry is not None
    assert entry.status == "sent"
    [(recipients, data)] = rig.smtp.accepted
    assert recipients == ["ann@example.org", "bob@example.org", "cat@x.org"]
    assert b"Bcc:" not in data
    [copy] = rig.server.folders["Sent"].messages.values()
    assert b"Bcc: cat@x.org" in copy.raw
    assert copy.flags == ["\\Seen"]
    stored = rig.threads.find_message("c1", entry.message_id or "")
    assert stored is not None
    assert stored.direction == "outbound"
    [location] = stored.locations
    assert (location.folder, location.uid) == ("Sent", copy.uid)
    assert entry.thread_id == stored.thread_id
    # A redelivered job does nothing more.
    assert (
        rig.sender.send(SendMessageJob(outbox_id=accepted.id, company_id="c1", account_id="a1"))
        == entry
    )
    assert len(rig.smtp.accepted) == 1


def test_a_4xx_or_a_hang_up_is_retried_and_nobody_gets_it_twice(rig: Rig) -> None:
    accepted = rig.service.submit(ME, rig.request(to=["ann@example.org", "bob@example.org"]))
    job = rig.queue.jobs[0]
    rig.smtp.script = [
        {"bob@example.org": SmtpReply(code=452, text="4.2.2 Mailbox full, try later")},
        MailServerError(problem("server_error")),
    ]
    with pytest.raises(RetryLaterError):
        rig.sender.send(job)
    assert rig.outbox.entries[accepted.id].delivered_to == ["ann@example.org"]
    with pytest.raises(RetryLaterError):
        rig.sender.send(job)
    entry = rig.sender.send(job)
    assert entry is not None
    assert (entry.status, entry.attempts) == ("sent", 3)
    assert [r for r, _ in rig.smtp.accepted] == [["ann@example.org"], ["bob@example.org"]]


def test_a_5xx_fails_with_the_servers_words(rig: Rig) -> None:
    rig.service.submit(ME, rig.request())
    rig.smtp.script = [SmtpRefusedError(554, "5.7.1 Rejected as spam")]
    entry = rig.work()
    assert entry is not None
    assert entry.status == "failed"
    assert entry.error is not None
    assert (entry.error.code, entry.error.message) == ("smtp_554", "554 5.7.1 Rejected as spam")
    assert rig.server.folders["Sent"].messages == {}


def test_recipients_refused_for_good(rig: Rig) -> None:
    rig.service.submit(ME, rig.request(to=["ann@example.org", "bob@example.org"]))
    rig.smtp.script = [{"bob@example.org": SmtpReply(code=550, text="5.1.1 No such user")}]
    partly = rig.work()
    assert partly is not None
    assert partly.status == "sent"
    assert partly.error is not None
    assert partly.error.code == "some_recipients_refused"
    assert "bob@example.org: 550 5.1.1 No such user" in partly.error.message
    rig.service.submit(ME, rig.request(to=["bob@example.org"]))
    rig.smtp.script = [{"bob@example.org": SmtpReply(code=550, text="5.1.1 No such user")}]
    nobody = rig.work()
    assert nobody is not None
    assert (nobody.status, nobody.error.code if nobody.error else None) == (
        "failed",
        "recipients_refused",
    )


def test_it_gives_up_after_max_attempts_and_on_an_account_that_cannot_send(rig: Rig) -> None:
    rig.service.submit(ME, rig.request())
    job = rig.queue.jobs[0]
    rig.smtp.script = [SmtpRefusedError(421, "4.7.0 Try later")] * MAX_ATTEMPTS
    for _ in range(MAX_ATTEMPTS - 1):
        with pytest.raises(RetryLaterError):
            rig.sender.send(job)
    entry = rig.sender.send(job)
    assert entry is not None
    assert entry.status == "failed"
    assert entry.error is not None
    assert "Gave up after 5 attempts: 421 4.7.0 Try later" in entry.error.message

    rig.service.submit(ME, rig.request(subject="Next"))
    rig.accounts.put(rig.account.model_copy(update={"state": AccountState.NEEDS_REAUTH}), 8)
    waiting = rig.work()
    assert waiting is not None
    assert waiting.status == "failed"
    assert waiting.error is not None
    assert "re-authenticate" in waiting.error.message
