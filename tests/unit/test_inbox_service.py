"""Query planning and the inbox service over an in-memory index that evaluates a plan the
way DynamoDB does (one entry partition, a sort-key range, a filter on the entry's
attributes), checked against a brute-force reading of the threads themselves."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from pydantic import ValidationError

from crmsync.errors import NotFoundError
from crmsync.models.accounts import MailAccount
from crmsync.models.identity import Principal
from crmsync.models.inbox import (
    Condition,
    InboxFilter,
    InboxQuery,
    inbox_entries,
    words,
)
from crmsync.models.mail import Box, Participant, Thread, ThreadLink
from crmsync.services.inbox import InboxService, plan_query
from tests.unit.fakes import FakeAccountRepository
from tests.unit.fakes_mail import FakeThreadStore

T0 = datetime(2025, 1, 1, tzinfo=UTC)
ME = Principal(user_id="u1", company_id="c1", role="user")
ADMIN = Principal(user_id="boss", company_id="c1", role="admin")


class MemoryInboxIndex:
    """The entry partitions of store/inbox.py, in memory: items are the entries that
    `inbox_entries` gives each stored thread; a query reads one partition newest first."""

    def __init__(self, store: FakeThreadStore) -> None:
        self._store = store
        self.queries: list[InboxQuery] = []

    def entries(
        self, company_id: str, user_id: str, query: InboxQuery, limit: int, cursor: str | None
    ) -> tuple[list[tuple[str, str]], str | None]:
        self.queries.append(query)
        rows: list[tuple[str, dict[str, Any]]] = []
        for thread in self._store.all_threads(company_id):
            if thread.owner_user_id != user_id:
                continue
            listed = inbox_entries(thread)
            if query.entry in listed.entries:
                rows.append((listed.sort_key, listed.entries[query.entry]))
        rows.sort(key=lambda row: row[0], reverse=True)
        low = query.since.strftime("%Y-%m-%dT%H:%M:%S.%fZ") if query.since else ""
        high = query.until.strftime("%Y-%m-%dT%H:%M:%S.%fZ") if query.until else "~"
        rows = [
            r for r in rows if low <= r[0] < high and all(_holds(c, r[1]) for c in query.conditions)
        ]
        start = int(cursor) if cursor else 0
        page = rows[start : start + limit]
        more = start + limit < len(rows)
        return [(r[1]["thread_id"], r[0]) for r in page], str(start + limit) if more else None

    def counters(self, company_id: str, user_id: str) -> dict[str, dict[str, int]]:
        return {}


def _holds(condition: Condition, attributes: dict[str, Any]) -> bool:
    value = attributes[condition.attribute]
    return value == condition.value if condition.op == "eq" else condition.value in value


SUBJECTS = ["Pricing for Q3", "Réunion café", "Invoice 42", "Hello again", "Pricing update"]
PEOPLE = [
    ("ann@customer.test", "Ann Buyer"),
    ("bob@vendor.test", "Bob Seller"),
    ("cléo@xn--caf-dma.test", None),  # as parsing stores it: an IDNA domain
    ("dan@customer.test", "Dan"),
]


def random_thread(rng: random.Random, n: int) -> Thread:
    boxes: list[Box] = rng.choice([["inbox"], ["inbox", "sent"], ["sent"], ["archive"], []])
    links = []
    if rng.random() < 0.4:
        links.append(ThreadLink(type="person", id=f"p{rng.randrange(3)}", reason="auto:person"))
    if rng.random() < 0.2:
        links.append(ThreadLink(type="deal", id=f"d{rng.randrange(2)}", reason="auto:deal"))
    people = rng.sample(PEOPLE, rng.randrange(1, 3))
    return Thread(
        id=f"t{n:03d}",
        account_id=rng.choice(["a1", "a2"]),
        company_id="c1",
        owner_user_id=rng.choice(["u1", "u1", "u1", "u2"]),
        subject=rng.choice(SUBJECTS),
        participants=[Participant(email=e, name=name) for e, name in people],
        links=links,
        first_message_at=T0,
        last_message_at=T0 + timedelta(hours=rng.randrange(500)),
        unread_count=rng.choice([0, 0, 1, 3]),
        has_attachments=rng.random() < 0.3,
        tracked=rng.random() < 0.15,
        boxes=boxes,
        deleted=not boxes,
        version=1,
    )


@pytest.fixture
def seeded() -> tuple[InboxService, MemoryInboxIndex, list[Thread]]:
    rng = random.Random(7)
    store = FakeThreadStore()
    threads = [random_thread(rng, n) for n in range(240)]
    for thread in threads:
        assert store.save_thread(thread, None, [], [])
    accounts = FakeAccountRepository()
    accounts.put(account("a1", "u1"), 8)
    accounts.put(account("a2", "u1"), 8)
    accounts.put(account("a9", "u2"), 8)
    index = MemoryInboxIndex(store)
    return InboxService(accounts, store, index), index, threads


def account(account_id: str, user_id: str) -> MailAccount:
    return MailAccount.model_validate(
        {
            "id": account_id,
            "company_id": "c1",
            "user_id": user_id,
            "email": f"{account_id}@example.com",
            "created_at": T0,
            "next_poll_at": T0,
        }
    )


def expected(threads: list[Thread], wanted: InboxFilter) -> list[str]:
    """The filter read straight off the threads (no entries involved)."""

    def ok(t: Thread) -> bool:
        text = " ".join(
            [
                t.subject,
                *(
                    f"{p.name or ''} {p.email.replace('xn--caf-dma', 'café')}"
                    for p in t.participants
                ),
            ]
        )
        link_ids = {(link.type, link.id) for link in t.links}
        return (
            t.owner_user_id == "u1"
            and not t.deleted
            and (wanted.folder == "all" or wanted.folder in t.boxes)
            and wanted.account_id in (None, t.account_id)
            and wanted.unread in (None, t.unread_count > 0)
            and wanted.linked in (None, bool(t.links))
            and (wanted.person_id is None or ("person", wanted.person_id) in link_ids)
            and (wanted.deal_id is None or ("deal", wanted.deal_id) in link_ids)
            and wanted.has_attachments in (None, t.has_attachments)
            and wanted.tracked in (None, t.tracked)
            and (
                wanted.participant is None
                or wanted.participant in {p.email for p in t.participants}
            )
            and (wanted.since_at is None or t.last_message_at >= wanted.since_at)
            and (wanted.until_at is None or t.last_message_at < wanted.until_at)
            and set(wanted.query_words) <= set(words(text))
        )

    ordered = sorted(threads, key=lambda t: (t.last_message_at, t.id), reverse=True)
    return [t.id for t in ordered if ok(t)]


def walk(service: InboxService, wanted: InboxFilter, limit: int = 7) -> list[str]:
    seen: list[str] = []
    cursor = None
    while True:
        page = service.threads(ME, wanted, limit, cursor)
        assert len(page.items) <= limit
        seen += [t.id for t in page.items]
        cursor = page.next_cursor
        if cursor is None:
            return seen


FILTERS: list[dict[str, Any]] = [
    {},
    {"folder": "inbox"},
    {"folder": "sent"},
    {"folder": "archive"},
    {"unread": True},
    {"unread": False, "folder": "inbox"},
    {"linked": True},
    {"linked": False, "folder": "sent"},
    {"person_id": "p1"},
    {"person_id": "p0", "deal_id": "d1"},
    {"deal_id": "d0", "unread": True},
    {"person_id": "p1", "participant": "bob@vendor.test"},
    {"deal_id": "d1", "q": "pricing", "linked": True, "folder": "inbox"},
    {"has_attachments": True},
    {"has_attachments": False, "tracked": False},
    {"tracked": True, "folder": "inbox"},
    {"participant": "ANN@Customer.test"},
    {"participant": "cléo@CAFÉ.test", "q": "pricing"},
    {"q": "pricing"},
    {"q": "cafe REUNION"},
    {"q": "customer buyer", "folder": "archive", "unread": False},
    {"account_id": "a2", "folder": "inbox"},
    {"since": "2025-01-05", "until": "2025-01-12"},
    {"since": "2025-01-10T06:00:00+02:00", "q": "pricing", "person_id": "p2"},
    {"until": "2025-01-03T00:00:00Z", "linked": False},
]


@pytest.mark.parametrize("given", FILTERS, ids=[str(f) for f in FILTERS])
def test_every_filter_lists_exactly_its_threads_newest_first(
    seeded: tuple[InboxService, MemoryInboxIndex, list[Thread]], given: dict[str, Any]
) -> None:
    service, _, threads = seeded
    wanted = InboxFilter.model_validate(given)
    want = expected(threads, wanted)
    assert want or given.get("tracked"), "the seed should give every filter some threads"
    got = walk(service, wanted)
    assert got == want
    assert len(set(got)) == len(got)


def test_the_plan_reads_the_most_selective_partition() -> None:
    def plan(**given: Any) -> tuple[str, set[tuple[str, str, object]]]:
        query = plan_query(InboxFilter.model_validate(given))
        return query.entry, {(c.attribute, c.op, c.value) for c in query.conditions}

    assert plan() == ("BOX#all", set())
    assert plan(folder="inbox") == ("BOX#inbox", set())
    assert plan(folder="inbox", unread=True) == ("UNREAD", {("boxes", "contains", "inbox")})
    assert plan(unread=False) == ("BOX#all", {("unread", "eq", False)})
    assert plan(linked=False, has_attachments=True) == ("ATTACH", {("linked", "eq", False)})
    assert plan(tracked=True, unread=True) == ("TRACKED", {("unread", "eq", True)})
    assert plan(q="big pricing", participant="a@b.test", folder="sent") == (
        "ADDR#a@b.test",
        {
            ("boxes", "contains", "sent"),
            ("terms", "contains", "pricing"),
            ("terms", "contains", "big"),
        },
    )
    assert plan(q="big pricing") == ("TERM#pricing", {("terms", "contains", "big")})
    assert plan(deal_id="d1", person_id="p1", account_id="a1") == (
        "LINK#person#p1",
        {("links", "contains", "deal#d1"), ("account_id", "eq", "a1")},
    )
    query = plan_query(InboxFilter.model_validate({"since": "2025-03-01", "until": "2025-03-01"}))
    assert (query.since, query.until) == (
        datetime(2025, 3, 1, tzinfo=UTC),
        datetime(2025, 3, 2, tzinfo=UTC),
    )


@pytest.mark.parametrize(
    "given",
    [
        {"participant": "not an address"},
        {"q": "a ."},
        {"since": "2025-03-02", "until": "2025-03-01"},
        {"since": "2025-03-01T10:00:00"},  # no offset
        {"folder": "trash"},
    ],
)
def test_invalid_filters_are_refused(given: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        InboxFilter.model_validate(given)


def test_account_filter_must_be_the_callers_own_account(
    seeded: tuple[InboxService, MemoryInboxIndex, list[Thread]],
) -> None:
    service, index, _ = seeded
    with pytest.raises(NotFoundError):
        service.threads(ADMIN, InboxFilter(account_id="a1"), 10, None)  # visible, not own
    with pytest.raises(NotFoundError):
        service.threads(ME, InboxFilter(account_id="a9"), 10, None)  # a colleague's
    with pytest.raises(NotFoundError):
        service.threads(ME, InboxFilter(account_id="nope"), 10, None)
    assert index.queries == []
    assert service.threads(ME, InboxFilter(account_id="a1"), 10, None).items


def test_an_entry_left_behind_by_a_broken_write_is_not_shown(
    seeded: tuple[InboxService, MemoryInboxIndex, list[Thread]],
) -> None:
    """The page shows a thread only when the entry is the thread as stored now."""
    service, _, threads = seeded
    store = service._threads
    assert isinstance(store, FakeThreadStore)
    first = walk(service, InboxFilter())[0]
    stale = next(t for t in threads if t.id == first)

    class Drifted(MemoryInboxIndex):
        def entries(self, *args: Any, **kwargs: Any) -> tuple[list[tuple[str, str]], str | None]:
            found, cursor = super().entries(*args, **kwargs)
            return [(stale.id, "2020-01-01T00:00:00.000000Z#" + stale.id), *found], cursor

    drifted = InboxService(service._accounts, store, Drifted(store))
    shown = [t.id for t in drifted.threads(ME, InboxFilter(), 5, None).items]
    assert shown.count(stale.id) == 1


def test_counts_list_every_own_account_and_kept_mail_of_removed_ones() -> None:
    accounts = FakeAccountRepository()
    accounts.put(account("a1", "u1"), 8)
    accounts.put(account("a2", "u1"), 8)  # no mail yet
    accounts.put(account("a9", "u2"), 8)  # a colleague's

    class Counters(MemoryInboxIndex):
        def counters(self, company_id: str, user_id: str) -> dict[str, dict[str, int]]:
            assert (company_id, user_id) == ("c1", "u1")
            return {
                "a1": {"inbox_threads": 3, "inbox_unread": 1, "all_threads": 5, "all_unread": 1},
                "gone": {"archive_threads": 2, "all_threads": 2},  # removed, mail kept
                "gone-empty": {"all_threads": 0, "all_unread": 0},
            }

    service = InboxService(accounts, FakeThreadStore(), Counters(FakeThreadStore()))
    counts = service.counts(ME).model_dump()
    assert [(a["account_id"], a["email"]) for a in counts["accounts"]] == [
        ("a1", "a1@example.com"),
        ("a2", "a2@example.com"),
        ("gone", None),
    ]
    assert counts["accounts"][1]["folders"]["all"] == {"threads": 0, "unread": 0}
    assert counts["total"] == {
        "inbox": {"threads": 3, "unread": 1},
        "sent": {"threads": 0, "unread": 0},
        "archive": {"threads": 2, "unread": 0},
        "all": {"threads": 7, "unread": 1},
    }
