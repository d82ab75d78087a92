"""The inbox index and counters in DynamoDB Local, written by DynamoThreadStore in the
thread's transaction: diffs, lost races, threads stored before the index existed, writes
larger than one transaction, deletes, and the retention purge."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from boto3.dynamodb.conditions import Key

from crmsync.models.inbox import InboxQuery, inbox_entries
from crmsync.models.mail import Participant, Thread
from crmsync.models.threads import LinkRecord
from crmsync.runtime import current_runtime
from crmsync.store import keys
from crmsync.store.inbox import DynamoInboxIndex
from crmsync.store.retention import DynamoRetentionRepository
from crmsync.store.threads import DynamoThreadStore
from crmsync_local.stack import LocalStack

pytestmark = pytest.mark.e2e
T0 = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)


@pytest.fixture
def table(local_stack: LocalStack) -> Any:
    return current_runtime().table


def thread(company: str, **changes: Any) -> Thread:
    fields: dict[str, Any] = {
        "id": "t1",
        "account_id": "a1",
        "company_id": company,
        "owner_user_id": "u1",
        "subject": "Pricing for Q3",
        "participants": [Participant(email="ann@customer.test", name="Ann Buyer")],
        "first_message_at": T0,
        "last_message_at": T0,
        "boxes": ["inbox"],
        "unread_count": 1,
        "version": 1,
    }
    return Thread.model_validate({**fields, **changes})


def stored_entries(table: Any, company: str, user: str = "u1") -> set[tuple[str, str]]:
    """Every inbox entry of the user, read back through the partitions a thread can use."""
    prefix = keys.inbox_entry_pk(company, user, "")
    found = set()
    for entry in _candidates():
        pk = prefix + entry
        for item in table.query(KeyConditionExpression=Key("PK").eq(pk))["Items"]:
            found.add((entry, str(item["SK"])))
    return found


def _candidates() -> list[str]:
    names = [f"BOX#{b}" for b in ("inbox", "sent", "archive", "all")]
    names += ["UNREAD", "ATTACH", "TRACKED", "LINKED", "UNLINKED", "ADDR#ann@customer.test"]
    names += [f"LINK#person#p{i}" for i in range(60)]
    names += [f"ADDR#x{i}@many.test" for i in range(30)]
    names += ["TERM#pricing", "TERM#for", "TERM#q3", "TERM#ann", "TERM#buyer", "TERM#customer"]
    names += ["TERM#test", "TERM#many", "TERM#invoice"] + [f"TERM#x{i}" for i in range(30)]
    return names


def expected_entries(*threads: Thread) -> set[tuple[str, str]]:
    found = set()
    for t in threads:
        listed = inbox_entries(t)
        found |= {(name, listed.sort_key) for name in listed.entries}
    return found


def counters(table: Any, company: str) -> dict[str, int]:
    return DynamoInboxIndex(table).counters(company, "u1").get("a1", {})


def test_writes_keep_entries_and_counts_in_step(table: Any) -> None:
    company = f"co-{uuid.uuid4().hex[:8]}"
    store = DynamoThreadStore(table)
    first = thread(company)
    assert store.save_thread(first, None, [], [])
    assert stored_entries(table, company) == expected_entries(first)
    assert counters(table, company) == {
        "inbox_threads": 1,
        "inbox_unread": 1,
        "all_threads": 1,
        "all_unread": 1,
    }

    link = LinkRecord(type="person", id="p1", reason="auto:person")
    second = thread(
        company,
        last_message_at=T0 + timedelta(hours=1),
        unread_count=0,
        boxes=["archive"],
        links=[link.public()],
        version=2,
    )
    assert store.save_thread(second, first, [link], [])
    assert stored_entries(table, company) == expected_entries(second)
    assert counters(table, company) == {
        "inbox_threads": 0,
        "inbox_unread": 0,
        "archive_threads": 1,
        "all_threads": 1,
        "all_unread": 0,
    }

    # A writer that read the first version loses and changes nothing.
    stale = thread(company, boxes=["sent"], version=2)
    assert not store.save_thread(stale, first, [], [])
    assert stored_entries(table, company) == expected_entries(second)
    assert counters(table, company)["archive_threads"] == 1

    assert store.delete_thread(second, [link])
    assert stored_entries(table, company) == set()
    assert set(counters(table, company).values()) == {0}
    assert store.thread(company, "t1") is None


def test_a_thread_stored_before_the_index_is_indexed_at_its_next_write(table: Any) -> None:
    company = f"co-{uuid.uuid4().hex[:8]}"
    store = DynamoThreadStore(table)
    legacy = thread(company)
    item = store._thread_item(legacy, "done")
    del item["inbox_index"]
    table.put_item(Item=item)  # as written before the inbox existed: no entries, no counts

    unchanged_entries = thread(company, visibility="shared", version=2)
    assert store.save_thread(unchanged_entries, legacy, [], [])
    assert stored_entries(table, company) == expected_entries(unchanged_entries)
    assert counters(table, company) == {
        "inbox_threads": 1,
        "inbox_unread": 1,
        "all_threads": 1,
        "all_unread": 1,
    }


def test_a_write_larger_than_one_transaction(table: Any) -> None:
    """60 links and 30 participants: 170 operations in two transactions; the thread is marked
    complete by the last, and a write cut short is repaired by the next one."""
    company = f"co-{uuid.uuid4().hex[:8]}"
    store = DynamoThreadStore(table)
    links = [LinkRecord(type="person", id=f"p{i}", reason="manual") for i in range(60)]
    crowd = [Participant(email=f"x{i}@many.test") for i in range(30)]
    big = thread(company, participants=crowd, links=[link.public() for link in links])
    calls: list[int] = []

    def count(params: dict[str, Any], **_: Any) -> None:
        calls.append(len(params["TransactItems"]))

    client = table.meta.client
    client.meta.events.register("provide-client-params.dynamodb.TransactWriteItems", count)
    try:
        assert store.save_thread(big, None, links, [])
    finally:
        client.meta.events.unregister("provide-client-params.dynamodb.TransactWriteItems", count)
    assert calls == [100, 71]  # 170 operations, and the update that marks the thread complete
    assert stored_entries(table, company) == expected_entries(big)
    state = table.get_item(Key={"PK": keys.thread_pk(company, "t1"), "SK": "THREAD"})["Item"]
    assert state["inbox_index"] == "done"

    moved = big.model_copy(update={"last_message_at": T0 + timedelta(days=1), "version": 2})
    assert store.save_thread(moved, big, links, [])
    assert stored_entries(table, company) == expected_entries(moved)

    # Cut short after the first transaction: the item says "pending", entries are missing.
    table.update_item(
        Key={"PK": keys.thread_pk(company, "t1"), "SK": "THREAD"},
        UpdateExpression="SET inbox_index = :p",
        ExpressionAttributeValues={":p": "pending"},
    )
    lost = sorted(expected_entries(moved))[:25]
    for name, sort_key in lost:
        table.delete_item(Key={"PK": keys.inbox_entry_pk(company, "u1", name), "SK": sort_key})
    read = moved.model_copy(update={"unread_count": 0, "version": 3})
    assert store.save_thread(read, moved, links, [])
    assert stored_entries(table, company) == expected_entries(read)
    assert counters(table, company)["all_unread"] == 0
    assert counters(table, company)["all_threads"] == 1


def test_pages_with_a_filter_visit_every_match_once(table: Any) -> None:
    company = f"co-{uuid.uuid4().hex[:8]}"
    store = DynamoThreadStore(table)
    threads = [
        thread(
            company,
            id=f"t{i:03d}",
            last_message_at=T0 + timedelta(minutes=i),
            unread_count=1 if i % 9 == 0 else 0,
        )
        for i in range(250)
    ]
    for t in threads:
        assert store.save_thread(t, None, [], [])
    index = DynamoInboxIndex(table)
    query = InboxQuery.model_validate(
        {
            "entry": "BOX#all",
            "until": T0 + timedelta(minutes=240),
            "conditions": [{"attribute": "unread", "op": "eq", "value": True}],
        }
    )
    seen: list[str] = []
    cursor = None
    while True:
        found, cursor = index.entries(company, "u1", query, 4, cursor)
        seen += [thread_id for thread_id, _ in found]
        if cursor is None:
            break
    want = [f"t{i:03d}" for i in reversed(range(240)) if i % 9 == 0]
    assert seen == want


def test_the_retention_purge_takes_entries_and_counters(table: Any) -> None:
    company = f"co-{uuid.uuid4().hex[:8]}"
    store = DynamoThreadStore(table)
    for i in range(3):
        assert store.save_thread(thread(company, id=f"t{i}"), None, [], [])
    assert stored_entries(table, company)
    counts = DynamoRetentionRepository(table).purge(company, "a1")
    assert counts["threads_and_messages"] > 3
    assert stored_entries(table, company) == set()
    assert DynamoInboxIndex(table).counters(company, "u1") == {}
