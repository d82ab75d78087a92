"""The message processor with the real MIME parser over in-memory stores: storing once,
locations and flags, threading (references, Gmail, subject fallback), the blocked list and
historical scope, linking to persons and deals, re-matching, and what events carry."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from crmsync.mail.parse import header_summary
from crmsync.models.accounts import MailAccount
from crmsync.models.deals import Deal
from crmsync.models.directory import Person
from crmsync.models.mail import (
    BlockedAddress,
    MessageLocation,
    ProcessMessage,
    Thread,
    folder_id,
    message_key,
)
from crmsync.services.message_processor import MessageProcessor, ProcessResult
from crmsync.services.rematch import RematchOnChange
from crmsync.services.threads import ThreadAssembler
from tests.unit.fakes import FakeAccountRepository, FakeClock, FakeEventPublisher
from tests.unit.fakes_mail import (
    FakeBlockedStore,
    FakeContactDirectory,
    FakeProcessQueue,
    FakeRawStore,
    FakeThreadStore,
    SyncRig,
    mime,
)

NOW = datetime(2025, 3, 3, 9, 0, tzinfo=UTC)
DAY = timedelta(days=1)
ME = "me@example.com"
ANN = "ann@example.com"
BOB = "bob@example.org"


class Rig:
    def __init__(self, **settings_: Any) -> None:
        self.clock = FakeClock(NOW)
        self.accounts = FakeAccountRepository()
        self.store = FakeThreadStore()
        self.raw = FakeRawStore()
        self.contacts = FakeContactDirectory()
        self.blocked = FakeBlockedStore()
        self.events = FakeEventPublisher()
        self.account = MailAccount.model_validate(
            {
                "id": "a1",
                "company_id": "c1",
                "user_id": "u1",
                "email": ME,
                "created_at": NOW - 30 * DAY,
                "settings": settings_,
            }
        )
        self.accounts.put(self.account, 8)
        assembler = ThreadAssembler(self.store, self.contacts, self.events, self.clock.now)
        self.processor = MessageProcessor(
            self.accounts,
            self.store,
            self.raw,
            self.contacts,
            self.blocked,
            assembler,
            self.clock.now,
        )

    def job(
        self,
        raw: bytes,
        op: str = "upsert",
        *,
        folder: str = "INBOX",
        uid: int = 1,
        flags: tuple[str, ...] = (),
        historical: bool = False,
        gm_thrid: int | None = None,
    ) -> ProcessMessage:
        key, sha = self.raw.put_raw("c1", "a1", raw)
        mid = header_summary(raw).message_id if raw.strip() else None
        return ProcessMessage.model_validate(
            {
                "op": op,
                "company_id": "c1",
                "account_id": "a1",
                "message_key": message_key("c1", "a1", message_id=mid, raw_sha256=sha),
                "location": MessageLocation(
                    folder=folder, folder_id=folder_id(folder), uidvalidity=7, uid=uid
                ),
                "flags": list(flags),
                "raw_key": key if op == "upsert" else None,
                "raw_sha256": sha if op == "upsert" else None,
                "size": len(raw),
                "internaldate": NOW,
                "gm_thrid": gm_thrid,
                "historical": historical,
            }
        )

    def process(self, raw: bytes, op: str = "upsert", **options: Any) -> ProcessResult:
        return self.processor.process(self.job(raw, op, **options))

    def threads(self) -> list[Thread]:
        return self.store.all_threads("c1")

    def thread_of(self, raw: bytes) -> Thread:
        job = self.job(raw)
        stored = self.store.find_message("c1", job.message_key)
        assert stored is not None
        thread = self.store.thread("c1", stored.thread_id)
        assert thread is not None
        return thread

    def links(self, raw: bytes) -> set[tuple[str, str, str]]:
        return {(link.type, link.id, link.reason) for link in self.thread_of(raw).links}

    def state(self) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        return (
            [m.model_dump(mode="json") for m in self.store.all_messages("c1")],
            [t.model_dump(mode="json", exclude={"version"}) for t in self.threads()],
        )


def msg(mid: str | None, **fields: Any) -> bytes:
    fields.setdefault("sent", NOW - DAY)
    return mime(message_id=mid, **fields)


def deal(deal_id: str, person_id: str, updated_days_ago: float, status: str = "open") -> Deal:
    return Deal.model_validate(
        {
            "id": deal_id,
            "created_at": NOW - 100 * DAY,
            "updated_at": NOW - updated_days_ago * DAY,
            "owner_id": "u1",
            "title": f"Deal {deal_id}",
            "status": status,
            "person_id": person_id,
        }
    )


def person(person_id: str, *emails: str) -> Person:
    return Person.model_validate(
        {
            "id": person_id,
            "created_at": NOW - 10 * DAY,
            "updated_at": NOW - DAY,
            "owner_id": "u1",
            "name": "Pat Person",
            "emails": list(emails),
        }
    )


@pytest.fixture
def rig() -> Rig:
    return Rig()


# -- storing, locations, flags, removal -------------------------------------------------------
def test_an_upsert_stores_one_message_in_one_thread(rig: Rig) -> None:
    raw = msg("q1@example.com", subject="Quote", sender=("Ann", ANN))

    result = rig.process(raw)

    assert result.outcome == "stored"
    (stored,) = rig.store.all_messages()
    (thread,) = rig.threads()
    assert stored.thread_id == thread.id == result.thread_id
    assert (stored.subject, stored.direction, stored.unread) == ("Quote", "inbound", True)
    assert stored.message_id_header == "q1@example.com"
    assert (thread.message_count, thread.unread_count, thread.folders) == (1, 1, ["INBOX"])
    assert {p.email for p in thread.participants} == {ANN, ME}
    assert stored.parsed_key is not None
    assert json.loads(rig.raw.get_parsed(stored.parsed_key))["text"] == "Hello."


def test_the_same_upsert_twice_leaves_identical_state(rig: Rig) -> None:
    raw = msg("q1@example.com")
    rig.process(raw)
    state = rig.state()
    versions = [t.version for t in rig.threads()]

    again = rig.process(raw)

    assert again.outcome == "unchanged"
    assert rig.state() == state
    assert [t.version for t in rig.threads()] == versions


def test_a_second_folder_only_adds_a_location(rig: Rig) -> None:
    raw = msg("q1@example.com")
    rig.process(raw, folder="INBOX", uid=4)

    result = rig.process(raw, folder="Archive", uid=9)

    assert result.outcome == "updated"
    (stored,) = rig.store.all_messages()
    assert sorted((loc.folder, loc.uid) for loc in stored.locations) == [
        ("Archive", 9),
        ("INBOX", 4),
    ]
    (thread,) = rig.threads()
    assert (thread.message_count, thread.folders) == (1, ["Archive", "INBOX"])


def test_flags_update_unread_and_the_thread_unread_count(rig: Rig) -> None:
    first, second = msg("q1@example.com"), msg("q2@example.com", references=["q1@example.com"])
    rig.process(first)
    rig.process(second, uid=2)
    assert rig.threads()[0].unread_count == 2

    result = rig.process(first, "flags", flags=("\\Seen",))

    assert result.outcome == "updated"
    stored = rig.store.find_message("c1", rig.job(first).message_key)
    assert stored is not None
    assert (stored.unread, stored.flags) == (False, ["\\Seen"])
    (thread,) = rig.threads()
    assert (thread.message_count, thread.unread_count) == (2, 1)


def test_removing_one_of_two_locations_keeps_the_message_and_the_last_deletes_it(
    rig: Rig,
) -> None:
    raw = msg("q1@example.com")
    rig.process(raw, folder="INBOX", uid=1)
    rig.process(raw, folder="Archive", uid=2)
    key = rig.job(raw).message_key

    kept = rig.process(raw, "removed", folder="INBOX", uid=1)

    assert kept.outcome == "removed"
    stored = rig.store.find_message("c1", key)
    assert stored is not None
    assert stored.folders == ["Archive"]
    assert rig.threads()[0].folders == ["Archive"]

    gone = rig.process(raw, "removed", folder="Archive", uid=2)

    assert gone.outcome == "removed"
    assert rig.store.find_message("c1", key) is None
    assert rig.store.all_messages() == []
    assert rig.threads() == []
    assert rig.store.message_thread("c1", key) == gone.thread_id  # the tombstone
    assert [e.detail_type for e in rig.events.events][-1] == "thread.deleted"
    assert rig.process(raw, "removed", folder="Archive", uid=2).outcome == "skipped"


def test_a_stale_flags_job_for_a_removed_location_does_not_bring_it_back(rig: Rig) -> None:
    raw = msg("q1@example.com")
    rig.process(raw, folder="INBOX", uid=1)
    rig.process(raw, folder="Archive", uid=2)
    rig.process(raw, "removed", folder="INBOX", uid=1)

    rig.process(raw, "flags", folder="INBOX", uid=1, flags=("\\Seen",))

    stored = rig.store.find_message("c1", rig.job(raw).message_key)
    assert stored is not None
    assert [(loc.folder, loc.uid) for loc in stored.locations] == [("Archive", 2)]
    assert rig.threads()[0].folders == ["Archive"]


def test_the_jobs_of_a_real_sync_follow_a_move_and_a_uidvalidity_reset() -> None:
    sync = SyncRig(now=NOW)
    sync.server.add_folder("Archive", special_use="\\Archive")
    sync.add_account()
    sync.run()
    store, contacts, events = FakeThreadStore(), FakeContactDirectory(), FakeEventPublisher()
    assembler = ThreadAssembler(store, contacts, events, sync.clock.now)
    processor = MessageProcessor(
        sync.accounts, store, sync.raw, contacts, FakeBlockedStore(), assembler, sync.clock.now
    )

    def sync_and_process() -> None:
        sync.run()
        for job in sync.queue.delivered:  # in the order the FIFO queue keeps
            processor.process(job)
        sync.queue.take()

    uid = sync.server.append("INBOX", msg("mv@example.com"), internaldate=NOW)
    sync_and_process()
    sync.server.move("INBOX", uid, "Archive")
    sync_and_process()

    (moved,) = store.all_messages()
    archive = sync.server.folders["Archive"]
    assert [(loc.folder, loc.uid) for loc in moved.locations] == [("Archive", 1)]

    sync.server.reset_uidvalidity("Archive")
    sync_and_process()

    (stored,) = store.all_messages()
    assert stored.id == moved.id
    assert [(loc.folder, loc.uidvalidity, loc.uid) for loc in stored.locations] == [
        ("Archive", archive.uidvalidity, 1)
    ]
    (thread,) = store.all_threads()
    assert (thread.message_count, thread.folders) == (1, ["Archive"])


# -- threading -------------------------------------------------------------------------------
@pytest.mark.parametrize("parent_first", [True, False], ids=["parent-first", "reply-first"])
def test_a_reply_with_references_joins_its_parents_thread(parent_first: bool, rig: Rig) -> None:
    parent = msg("root@example.com", subject="Quote", sent=NOW - 3 * DAY)
    reply = msg(
        "reply@example.com",
        subject="Something else entirely",
        sender=ME,
        to=[ANN],
        in_reply_to="root@example.com",
        references=["root@example.com"],
    )
    order = [parent, reply] if parent_first else [reply, parent]

    results = [rig.process(raw, uid=n) for n, raw in enumerate(order)]

    assert results[0].thread_id == results[1].thread_id
    (thread,) = rig.threads()
    assert thread.message_count == 2
    assert thread.subject == "Quote"  # the first message's


@pytest.mark.parametrize(
    ("days_later", "reply_from", "joins"),
    [
        (3, ME, True),
        (13, BOB, False),  # no participant in common (my own address does not count)
        (20, ME, False),  # outside the 14-day window
    ],
)
def test_the_subject_fallback_needs_a_shared_participant_within_fourteen_days(
    days_later: int, reply_from: str, joins: bool, rig: Rig
) -> None:
    first = msg("quote@example.com", subject="Quote", sender=ANN, to=[ME], sent=NOW - 30 * DAY)
    second = msg(
        "later@example.com",
        subject="Re: Quote",
        sender=reply_from,
        to=[ANN] if reply_from == ME else [ME],
        sent=NOW - (30 - days_later) * DAY,
    )
    a = rig.process(first, uid=1)

    b = rig.process(second, uid=2)

    assert (a.thread_id == b.thread_id) is joins
    assert len(rig.threads()) == (1 if joins else 2)


def test_gmail_thread_ids_group_messages_without_references(rig: Rig) -> None:
    one = rig.process(msg("g1@example.com", subject="Lunch"), uid=1, gm_thrid=77)
    two = rig.process(msg("g2@example.com", subject="Dinner"), uid=2, gm_thrid=77)
    other = rig.process(msg("g3@example.com", subject="Lunch?"), uid=3, gm_thrid=78)

    assert one.thread_id == two.thread_id
    assert other.thread_id != one.thread_id


# -- blocked list and scope --------------------------------------------------------------------
@pytest.mark.parametrize(
    ("entry", "sender", "to"),
    [
        (ANN, ANN, [ME]),
        ("@example.com", "ann@example.com", ["me@elsewhere.example"]),
        (BOB, ME, [BOB]),
    ],
    ids=["sender", "sender-domain", "only-blocked-recipients"],
)
def test_blocked_mail_is_not_stored(entry: str, sender: str, to: list[str], rig: Rig) -> None:
    rig.blocked.add("c1", "u1", BlockedAddress(address=entry, created_at=NOW))

    result = rig.process(msg("b@example.com", sender=sender, to=to))

    assert result.outcome == "blocked"
    assert rig.store.all_messages() == []
    assert rig.threads() == []
    assert not any(key.startswith("parsed/") for key in rig.raw.objects)


def test_mail_to_one_blocked_and_one_other_recipient_is_stored(rig: Rig) -> None:
    rig.blocked.add("c1", "u1", BlockedAddress(address=BOB, created_at=NOW))

    result = rig.process(msg("b@example.com", sender=ME, to=[BOB, ANN]))

    assert result.outcome == "stored"
    assert len(rig.store.all_messages()) == 1


def test_historical_mail_in_crm_contacts_scope_needs_a_crm_contact() -> None:
    rig = Rig(historical_scope="crm_contacts")
    rig.contacts.add_person("p-ann", ANN)
    rig.contacts.add_user("u2", "colleague@example.com")
    rig.contacts.add_person("p-col", "colleague@example.com")  # a user: never a contact

    with_contact = rig.process(msg("h1@example.com", sender=ANN), uid=1, historical=True)
    with_stranger = rig.process(msg("h2@example.com", sender=BOB), uid=2, historical=True)
    with_user = rig.process(
        msg("h3@example.com", sender="colleague@example.com"), uid=3, historical=True
    )
    recent_stranger = rig.process(msg("h4@example.com", sender=BOB), uid=4, historical=False)

    assert [r.outcome for r in (with_contact, with_stranger, with_user, recent_stranger)] == [
        "stored",
        "skipped",
        "skipped",
        "stored",
    ]
    assert len(rig.store.all_messages()) == 2


def test_empty_raw_bytes_are_kept_as_an_unparseable_record(rig: Rig) -> None:
    result = rig.process(b"", flags=("\\Seen",))

    assert result.outcome == "unparseable"
    (stored,) = rig.store.all_messages()
    assert stored.unparseable
    assert stored.unread is False
    assert stored.defects
    assert stored.defects[0].startswith("unparseable")
    (thread,) = rig.threads()
    assert thread.id == stored.thread_id
    assert thread.message_count == 1


# -- linking ---------------------------------------------------------------------------------
def test_the_owners_and_company_users_addresses_never_link(rig: Rig) -> None:
    rig.contacts.add_person("p-me", ME)  # someone put my address on a person
    rig.contacts.add_user("u2", "colleague@example.com")
    rig.contacts.add_person("p-col", "colleague@example.com")
    rig.contacts.add_person("p-ann", ANN)
    raw = msg("l1@example.com", sender="colleague@example.com", to=[ME], cc=[ANN])

    rig.process(raw)

    assert rig.links(raw) == {("person", "p-ann", "auto:person")}
    participants = {p.email: p.person_id for p in rig.thread_of(raw).participants}
    assert participants == {"colleague@example.com": None, ME: None, ANN: "p-ann"}


def test_automatic_deal_linking_picks_the_most_recently_updated_open_deal_and_keeps_it(
    rig: Rig,
) -> None:
    rig.contacts.add_person("p-ann", ANN)
    rig.contacts.add_deal(deal("d-old", "p-ann", updated_days_ago=9))
    rig.contacts.add_deal(deal("d-new", "p-ann", updated_days_ago=2))
    rig.contacts.add_deal(deal("d-won", "p-ann", updated_days_ago=1, status="won"))
    first = msg("d1@example.com", sender=ANN)

    rig.process(first, uid=1)

    assert rig.links(first) == {
        ("person", "p-ann", "auto:person"),
        ("deal", "d-new", "auto:deal"),
    }

    # A fresher deal appears: the thread keeps the open deal it is linked to.
    rig.contacts.add_deal(deal("d-fresh", "p-ann", updated_days_ago=0))
    reply = msg("d2@example.com", sender=ME, to=[ANN], references=["d1@example.com"])
    rig.process(reply, uid=2)
    assert ("deal", "d-new", "auto:deal") in rig.links(first)

    # Once that deal closes, the next change moves the link to the freshest open deal.
    rig.contacts.add_deal(deal("d-new", "p-ann", updated_days_ago=0, status="won"))
    rig.process(first, "flags", uid=1, flags=("\\Seen",))
    deals = {link for link in rig.links(first) if link[0] == "deal"}
    assert deals == {("deal", "d-fresh", "auto:deal")}
    stored = {
        (link.type, link.id) for link in rig.store.thread_links("c1", rig.thread_of(first).id)
    }
    assert ("deal", "d-new") not in stored


def test_manual_deal_mode_links_no_deal() -> None:
    rig = Rig(deal_linking="manual")
    rig.contacts.add_person("p-ann", ANN)
    rig.contacts.add_deal(deal("d-new", "p-ann", updated_days_ago=2))
    raw = msg("m1@example.com", sender=ANN)

    rig.process(raw)

    assert rig.links(raw) == {("person", "p-ann", "auto:person")}


def test_relink_links_old_threads_when_a_person_gains_an_address_and_unlinks_on_delete(
    rig: Rig,
) -> None:
    raw = msg("r1@example.com", sender=BOB)
    rig.process(raw)
    assert rig.links(raw) == set()
    rematch = RematchOnChange(FakeProcessQueue(), rig.clock)

    rig.contacts.add_person("p-bob", BOB)
    gained = rematch.job_for("c1", person("p-bob"), person("p-bob", BOB))
    assert gained is not None
    assert rig.processor.relink(gained) == 1
    assert rig.links(raw) == {("person", "p-bob", "auto:person")}
    assert rig.thread_of(raw).participants[0].person_id == "p-bob"

    rig.contacts.remove_person("p-bob")
    deleted = rematch.job_for("c1", person("p-bob", BOB), None)
    assert deleted is not None
    assert rig.processor.relink(deleted) == 1
    assert rig.links(raw) == set()
    assert rig.store.threads_linked_to("c1", "person", "p-bob") == []


def test_relink_after_a_deal_closes_moves_the_automatic_deal_link(rig: Rig) -> None:
    rig.contacts.add_person("p-ann", ANN)
    rig.contacts.add_deal(deal("d-1", "p-ann", updated_days_ago=2))
    rig.contacts.add_deal(deal("d-2", "p-ann", updated_days_ago=5))
    raw = msg("dl@example.com", sender=ANN)
    rig.process(raw)
    assert ("deal", "d-1", "auto:deal") in rig.links(raw)

    closed = deal("d-1", "p-ann", updated_days_ago=0, status="won")
    job = RematchOnChange(FakeProcessQueue(), rig.clock).job_for(
        "c1", deal("d-1", "p-ann", updated_days_ago=2), closed
    )
    rig.contacts.add_deal(closed)
    assert job is not None
    assert job.addresses == []  # the threads are found through the person's link index

    assert rig.processor.relink(job) == 1
    assert {link for link in rig.links(raw) if link[0] == "deal"} == {("deal", "d-2", "auto:deal")}


def test_thread_events_carry_ids_and_links_but_never_the_subject(rig: Rig) -> None:
    rig.contacts.add_person("p-ann", ANN)
    secret = "Confidential merger plans"
    rig.process(msg("e1@example.com", subject=secret, sender=ANN))

    (event,) = rig.events.events
    assert event.detail_type == "thread.updated"
    assert event.detail["thread_id"] == rig.threads()[0].id
    assert event.detail["account_id"] == "a1"
    assert event.detail["links"] == [{"type": "person", "id": "p-ann", "reason": "auto:person"}]
    text = event.model_dump_json()
    assert secret not in text
    assert "merger" not in text.lower()
    assert ANN not in text


# -- properties ------------------------------------------------------------------------------
SUBJECTS = ["Quote", "Re: Quote", "AW: quote", "Angebot über 5 €", "日本語の件名", "", "Ζήτημα"]
PEOPLE = [
    ("", ANN),
    ("Bob Ünal", BOB),
    ("", ME),
    ("Zoë", "zoe@xn--bcher-kva.example"),
    ("", "carl@example.net"),
]
FOLDERS = ["INBOX", "Archive", "Sent"]
FLAGS = [(), ("\\Seen",), ("\\Seen", "\\Flagged"), ("\\Answered",)]


@st.composite
def mailboxes(draw: st.DrawFn) -> tuple[list[bytes], list[ProcessMessage], Rig]:
    rig = Rig()
    rig.contacts.add_person("p-ann", ANN)
    rig.contacts.add_deal(deal("d-ann", "p-ann", updated_days_ago=1))
    count = draw(st.integers(min_value=1, max_value=6))
    chains: list[list[str]] = []  # ancestors of each message, root first
    raws: list[bytes] = []
    for n in range(count):
        parent = draw(st.none() | st.integers(min_value=0, max_value=n - 1)) if n else None
        chain = [*chains[parent], f"id{parent}@gen.example"] if parent is not None else []
        chains.append(chain)
        sender = draw(st.sampled_from(PEOPLE))
        to = draw(st.lists(st.sampled_from(PEOPLE), min_size=1, max_size=3, unique=True))
        with_in_reply_to = draw(st.booleans())
        raws.append(
            mime(
                message_id=f"id{n}@gen.example",
                subject=draw(st.sampled_from(SUBJECTS)),
                sender=sender,
                to=to,
                sent=NOW - timedelta(days=draw(st.integers(min_value=0, max_value=30))),
                in_reply_to=chain[-1] if chain and with_in_reply_to else None,
                references=chain,
                body=draw(st.text(max_size=40)),
            )
        )
    # One chain of jobs per location, in the order the sync sends them and the FIFO group
    # keeps: upsert, flag changes, and perhaps removed. Chains interleave in any order (folders
    # sync in any order, messages race), and any job may be delivered twice in a row.
    per_location: list[list[ProcessMessage]] = []
    for n, raw in enumerate(raws):
        for folder in draw(st.lists(st.sampled_from(FOLDERS), min_size=1, max_size=2, unique=True)):
            uid = 100 * FOLDERS.index(folder) + n + 1
            steps = [
                rig.job(raw, "upsert", folder=folder, uid=uid, flags=draw(st.sampled_from(FLAGS)))
            ]
            for flags in draw(st.lists(st.sampled_from(FLAGS), max_size=2)):
                steps.append(rig.job(raw, "flags", folder=folder, uid=uid, flags=flags))
            if draw(st.booleans()):
                steps.append(rig.job(raw, "removed", folder=folder, uid=uid))
            per_location.append(steps)
    slots = [c for c, steps in enumerate(per_location) for _ in steps]
    jobs: list[ProcessMessage] = []
    for c in draw(st.permutations(slots)):
        job = per_location[c].pop(0)
        jobs += [job, job] if draw(st.booleans()) else [job]
    return raws, jobs, rig


def expected_messages(jobs: list[ProcessMessage]) -> dict[str, tuple[set[str], list[str]]]:
    """A model of the processor: message key -> (location tokens, flags) of what is stored."""
    model: dict[str, tuple[set[str], list[str]]] = {}
    for job in jobs:
        token = job.location.token
        known = model.get(job.message_key)
        if job.op == "upsert" or (job.op == "flags" and known is not None):
            locations = known[0] if known else set()
            model[job.message_key] = (locations | {token}, sorted(job.flags))
        elif job.op == "removed" and known is not None:
            left = known[0] - {token}
            if left:
                model[job.message_key] = (left, known[1])
            else:
                del model[job.message_key]
    return model


def check_invariants(rig: Rig) -> None:
    messages = rig.store.all_messages("c1")
    ids = [m.id for m in messages]
    assert len(ids) == len(set(ids)), "a message key is stored twice"
    threads = {t.id: t for t in rig.threads()}
    for message in messages:
        assert rig.store.find_message("c1", message.id) == message
        assert message.thread_id in threads, "a stored message has no thread"
        assert message.locations, "a stored message is in no folder"
    for thread in threads.values():
        own = rig.store.thread_messages("c1", thread.id)
        assert own, "an empty thread was kept"
        assert thread.message_count == len(own)
        assert thread.unread_count == sum(1 for m in own if m.unread)
        assert thread.folders == sorted({f for m in own for f in m.folders})
    by_header = {m.message_id_header: m for m in messages}
    for message in messages:
        for ref in message.references:
            parent = by_header.get(ref)
            if parent is not None:
                assert message.thread_id == parent.thread_id, "a reply left its parent's thread"


@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(mailboxes())
def test_processing_any_job_sequence_keeps_the_store_consistent_and_redelivery_harmless(
    mailbox: tuple[list[bytes], list[ProcessMessage], Rig],
) -> None:
    _, jobs, rig = mailbox

    for job in jobs:
        rig.processor.process(job)
    check_invariants(rig)
    stored = {
        m.id: ({loc.token for loc in m.locations}, m.flags) for m in rig.store.all_messages("c1")
    }
    assert stored == expected_messages(jobs)
    once = rig.state()

    for job in jobs:  # the whole sequence delivered again
        rig.processor.process(job)
    check_invariants(rig)
    assert rig.state() == once
