"""What a user does to a thread (SPEC L3, L4, S9) over in-memory stores and the real MIME
parser: manual links and unlinks that survive re-processing and re-matching, the sharing
rule, read / archive / delete in the CRM, and the mailbox actions they leave for the sync."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from crmsync.errors import ForbiddenError, NotFoundError, ValidationFailedError
from crmsync.mail.parse import header_summary
from crmsync.models.accounts import AccountState, MailAccount
from crmsync.models.actions import MailboxAction
from crmsync.models.deals import Deal
from crmsync.models.identity import Principal
from crmsync.models.mail import (
    MessageLocation,
    ProcessMessage,
    RelinkThreads,
    Thread,
    ThreadLink,
    folder_id,
    message_key,
)
from crmsync.services.mail_reads import MailReader, can_read_thread
from crmsync.services.message_processor import MessageProcessor
from crmsync.services.thread_actions import LinkInput, ThreadActions, ThreadPatch
from crmsync.services.threads import ThreadAssembler
from tests.unit.fakes import FakeAccountRepository, FakeClock, FakeEventPublisher, FakeJobQueue
from tests.unit.fakes_mail import (
    FakeBlockedStore,
    FakeContactDirectory,
    FakeRawStore,
    FakeThreadStore,
    mime,
)

NOW = datetime(2025, 3, 3, 9, 0, tzinfo=UTC)
ME = "me@example.com"
ANN = "ann@example.com"
OWNER = Principal(user_id="u1", company_id="c1", role="user")
ADMIN = Principal(user_id="boss", company_id="c1", role="admin")
COLLEAGUE = Principal(user_id="u2", company_id="c1", role="user")
OUTSIDER = Principal(user_id="u1", company_id="c2", role="user")


class MemoryActions:
    def __init__(self) -> None:
        self.items: dict[str, MailboxAction] = {}

    def add(self, action: MailboxAction) -> None:
        self.items[action.id] = action

    def pending(self, company_id: str, account_id: str) -> list[MailboxAction]:
        return sorted(
            (
                a
                for a in self.items.values()
                if (a.company_id, a.account_id) == (company_id, account_id)
            ),
            key=lambda a: a.id,
        )

    def done(self, action: MailboxAction) -> None:
        self.items.pop(action.id, None)


class Rig:
    def __init__(self, **settings: Any) -> None:
        self.clock = FakeClock(NOW)
        self.accounts = FakeAccountRepository()
        self.store = FakeThreadStore()
        self.raw = FakeRawStore()
        self.contacts = FakeContactDirectory()
        self.events = FakeEventPublisher()
        self.jobs = FakeJobQueue()
        self.actions = MemoryActions()
        # Records u2 may read: only deal d-shared (the directory's answer, by id).
        self.readable: dict[str, set[tuple[str, str]]] = {
            "u2": {("deal", "d-shared")},
            "u1": {("deal", "d-shared"), ("deal", "d9"), ("person", "p-ann"), ("lead", "l1")},
        }
        account = MailAccount.model_validate(
            {
                "id": "a1",
                "company_id": "c1",
                "user_id": "u1",
                "email": ME,
                "created_at": NOW - timedelta(days=30),
                "settings": settings,
            }
        )
        self.accounts.put(account, 8)
        self.assembler = ThreadAssembler(self.store, self.contacts, self.events, self.clock.now)
        self.processor = MessageProcessor(
            self.accounts,
            self.store,
            self.raw,
            self.contacts,
            FakeBlockedStore(),
            self.assembler,
            self.clock.now,
        )
        self.service = ThreadActions(
            self.accounts,
            self.store,
            self.assembler,
            self.can_read_record,
            self.actions,
            self.jobs,
            self.clock.now,
        )
        self.reader = MailReader(self.accounts, self.store, self.raw, self.can_read_record)

    def can_read_record(self, principal: Principal, link_type: str, record_id: str) -> bool:
        if principal.is_admin:
            return True
        return (link_type, record_id) in self.readable.get(principal.user_id, set())

    def deliver(self, subject: str = "Quote", uid: int = 1, folder: str = "INBOX") -> Thread:
        raw = mime(subject=subject, sender=ANN, to=[ME], message_id=f"{subject}-{uid}@x")
        key, sha = self.raw.put_raw("c1", "a1", raw)
        mid = header_summary(raw).message_id
        job = ProcessMessage(
            op="upsert",
            company_id="c1",
            account_id="a1",
            message_key=message_key("c1", "a1", message_id=mid, raw_sha256=sha),
            location=MessageLocation(
                folder=folder, folder_id=folder_id(folder), uidvalidity=7, uid=uid, role="inbox"
            ),
            raw_key=key,
            raw_sha256=sha,
            size=len(raw),
            internaldate=self.clock.now(),
        )
        self.processor.process(job)
        thread_id = self.store.message_thread("c1", job.message_key)
        assert thread_id is not None
        thread = self.store.thread("c1", thread_id)
        assert thread is not None
        return thread

    def reprocess(self, thread: Thread) -> Thread:
        self.assembler.assemble(self.account(), thread.id)
        return self.thread(thread.id)

    def account(self) -> MailAccount:
        account = self.accounts.get("c1", "a1")
        assert account is not None
        return account

    def thread(self, thread_id: str) -> Thread:
        thread = self.store.thread("c1", thread_id)
        assert thread is not None
        return thread


def links(thread: Thread) -> set[tuple[str, str, str]]:
    return {(link.type, link.id, link.reason) for link in thread.links}


@pytest.fixture
def rig() -> Rig:
    return Rig()


def test_a_manual_link_survives_reprocessing_and_a_rematch(rig: Rig) -> None:
    rig.contacts.add_person("p-ann", ANN)
    thread = rig.deliver()
    assert links(thread) == {("person", "p-ann", "auto:person")}

    linked = rig.service.link(OWNER, thread.id, LinkInput(type="deal", id="d9"))
    assert ("deal", "d9", "manual") in links(linked)

    # A new open deal of Ann would be linked automatically, but the user chose d9.
    rig.contacts.add_deal(
        Deal.model_validate(
            {
                "id": "d-new",
                "title": "New",
                "person_id": "p-ann",
                "owner_id": "u1",
                "created_at": NOW,
                "updated_at": NOW,
            }
        )
    )
    rig.clock.advance(timedelta(minutes=1))
    rig.deliver(uid=2)  # a second message of the thread (same subject, same people)
    again = rig.reprocess(thread)
    assert links(again) == {("person", "p-ann", "auto:person"), ("deal", "d9", "manual")}

    # Ann changes her address: the automatic person link goes, the manual deal link stays.
    rig.contacts.remove_person("p-ann")
    rig.contacts.add_person("p-ann", "ann@new.example")
    rig.processor.relink(
        RelinkThreads(company_id="c1", job_id="j1", addresses=[ANN], person_ids=["p-ann"])
    )
    assert links(rig.thread(thread.id)) == {("deal", "d9", "manual")}


def test_a_manual_unlink_keeps_the_automatic_link_away(rig: Rig) -> None:
    rig.contacts.add_person("p-ann", ANN)
    thread = rig.deliver()
    rig.service.unlink(OWNER, thread.id, "person", "p-ann")
    assert links(rig.thread(thread.id)) == set()
    assert links(rig.reprocess(thread)) == set()
    rig.processor.relink(
        RelinkThreads(company_id="c1", job_id="j2", addresses=[ANN], person_ids=["p-ann"])
    )
    assert links(rig.thread(thread.id)) == set()
    # Linking by hand again brings it back, now as a manual link.
    rig.service.link(OWNER, thread.id, LinkInput(type="person", id="p-ann"))
    assert links(rig.reprocess(thread)) == {("person", "p-ann", "manual")}


def test_link_and_unlink_refuse_what_cannot_be_done(rig: Rig) -> None:
    thread = rig.deliver()
    with pytest.raises(NotFoundError, match="deal nope"):
        rig.service.link(OWNER, thread.id, LinkInput(type="deal", id="nope"))
    with pytest.raises(NotFoundError, match="not linked"):
        rig.service.unlink(OWNER, thread.id, "deal", "d9")
    with pytest.raises(NotFoundError):
        rig.service.link(OWNER, "t-missing", LinkInput(type="deal", id="d9"))
    with pytest.raises(NotFoundError):  # another company: as if the thread did not exist
        rig.service.link(OUTSIDER, thread.id, LinkInput(type="deal", id="d9"))
    with pytest.raises(NotFoundError):  # private: a colleague cannot even see it
        rig.service.patch(COLLEAGUE, thread.id, ThreadPatch(read=True))


def test_the_sharing_rule(rig: Rig) -> None:
    thread = rig.deliver()
    rig.service.link(OWNER, thread.id, LinkInput(type="deal", id="d-shared"))
    private = rig.thread(thread.id)
    assert private.visibility == "private"
    check = rig.can_read_record
    assert can_read_thread(OWNER, private, check)
    assert not can_read_thread(ADMIN, private, check)
    assert not can_read_thread(COLLEAGUE, private, check)

    shared = rig.service.patch(OWNER, thread.id, ThreadPatch(visibility="shared"))
    assert shared.visibility == "shared"
    assert can_read_thread(COLLEAGUE, shared, check)
    assert can_read_thread(ADMIN, shared, check)
    assert not can_read_thread(OUTSIDER, shared, check)
    assert rig.reader.thread(COLLEAGUE, thread.id).id == thread.id
    page = rig.reader.linked_threads(COLLEAGUE, "deal", "d-shared", 10, None)
    assert [t.id for t in page.items] == [thread.id]

    # Shared but linked only to a record the colleague cannot read: invisible to them.
    rig.service.unlink(OWNER, thread.id, "deal", "d-shared")
    rig.service.link(OWNER, thread.id, LinkInput(type="deal", id="d9"))
    hidden = rig.thread(thread.id)
    assert not can_read_thread(COLLEAGUE, hidden, check)
    with pytest.raises(NotFoundError):
        rig.reader.thread(COLLEAGUE, thread.id)
    # A colleague who may read it still may not change it.
    rig.service.link(OWNER, thread.id, LinkInput(type="deal", id="d-shared"))
    with pytest.raises(ForbiddenError):
        rig.service.patch(COLLEAGUE, thread.id, ThreadPatch(archived=True))


def test_a_shared_thread_without_any_link_is_the_owners_alone() -> None:
    thread = Thread(
        id="t1",
        account_id="a1",
        company_id="c1",
        owner_user_id="u1",
        first_message_at=NOW,
        last_message_at=NOW,
        visibility="shared",
    )
    assert can_read_thread(OWNER, thread, lambda *_: True)
    assert not can_read_thread(ADMIN, thread, lambda *_: True)
    linked = thread.model_copy(
        update={"links": [ThreadLink(type="lead", id="l1", reason="manual")]}
    )
    assert can_read_thread(COLLEAGUE, linked, lambda p, t, i: (t, i) == ("lead", "l1"))
    assert not can_read_thread(COLLEAGUE, linked, lambda p, t, i: t == "deal")


def test_read_marks_every_message_and_queues_the_server_change(rig: Rig) -> None:
    thread = rig.deliver()
    rig.deliver(uid=2, subject="Re: Quote")
    assert rig.thread(thread.id).unread_count == 2
    done = rig.service.patch(OWNER, thread.id, ThreadPatch(read=True))
    assert done.unread_count == 0
    assert all(not m.unread for m in rig.store.thread_messages("c1", thread.id))
    [action] = rig.actions.pending("c1", "a1")
    assert action.op == "read"
    assert action.message_keys == [m.id for m in rig.store.thread_messages("c1", thread.id)]
    assert [job.account_id for job in rig.jobs.action_jobs] == ["a1"]
    rig.clock.advance(timedelta(seconds=1))
    assert rig.service.patch(OWNER, thread.id, ThreadPatch(read=False)).unread_count == 2
    # Unread again before the server saw the read: the click undoes the waiting one.
    assert [a.op for a in rig.actions.pending("c1", "a1")] == ["unread"]


def test_settings_decide_which_changes_go_to_the_server() -> None:
    rig = Rig(read_sync_back=False, archive_sync_back=False, delete_sync_back=False)
    thread = rig.deliver()
    rig.service.patch(OWNER, thread.id, ThreadPatch(read=True, archived=True))
    rig.service.delete(OWNER, thread.id)
    assert rig.actions.pending("c1", "a1") == []
    assert rig.jobs.sent == []
    both = Rig(archive_sync_back=True, delete_sync_back=True)
    other = both.deliver()
    both.service.patch(OWNER, other.id, ThreadPatch(archived=True))
    both.clock.advance(timedelta(milliseconds=1))
    both.service.delete(OWNER, other.id)
    assert [a.op for a in both.actions.pending("c1", "a1")] == ["archive", "delete"]


def test_archive_and_delete_in_the_crm_until_a_newer_message(rig: Rig) -> None:
    thread = rig.deliver()
    assert rig.thread(thread.id).boxes == ["inbox"]
    archived = rig.service.patch(OWNER, thread.id, ThreadPatch(archived=True))
    assert (archived.archived, archived.boxes) == (True, ["archive"])
    unarchived = rig.service.patch(OWNER, thread.id, ThreadPatch(archived=False))
    assert (unarchived.archived, unarchived.boxes) == (False, ["inbox"])
    rig.service.delete(OWNER, thread.id)
    deleted = rig.thread(thread.id)
    assert (deleted.deleted, deleted.boxes) == (True, [])
    # A reply that arrives later brings the conversation back to the inbox.
    rig.clock.advance(timedelta(minutes=5))
    raw = mime(
        subject="Re: Quote",
        sender=ANN,
        to=[ME],
        message_id="r@x",
        in_reply_to="Quote-1@x",
        sent=rig.clock.now(),
    )
    key, sha = rig.raw.put_raw("c1", "a1", raw)
    rig.processor.process(
        ProcessMessage(
            op="upsert",
            company_id="c1",
            account_id="a1",
            message_key=message_key("c1", "a1", message_id="r@x", raw_sha256=sha),
            location=MessageLocation(
                folder="INBOX", folder_id=folder_id("INBOX"), uidvalidity=7, uid=3, role="inbox"
            ),
            raw_key=key,
            raw_sha256=sha,
            internaldate=rig.clock.now(),
        )
    )
    back = rig.thread(thread.id)
    assert (back.deleted, back.boxes, back.message_count) == (False, ["inbox"], 2)


def test_an_action_on_an_account_waiting_for_reauthentication_is_kept_not_sent() -> None:
    rig = Rig(archive_sync_back=True)
    thread = rig.deliver()
    account = rig.account().model_copy(update={"state": AccountState.NEEDS_REAUTH})
    rig.accounts.put(account, 8)
    rig.service.patch(OWNER, thread.id, ThreadPatch(archived=True))
    assert [a.op for a in rig.actions.pending("c1", "a1")] == ["archive"]
    assert rig.jobs.sent == []


def test_an_empty_patch_is_refused(rig: Rig) -> None:
    thread = rig.deliver()
    with pytest.raises(ValidationFailedError):
        rig.service.patch(OWNER, thread.id, ThreadPatch())
