"""Which inbox lists a thread is in (its index entries), how a change is diffed into writes,
and what it adds to its account's counters."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from crmsync.models.inbox import (
    MAX_ADDRESSES,
    MAX_TERMS,
    count_delta,
    folder_counts,
    inbox_entries,
    thread_terms,
    words,
)
from crmsync.models.mail import Participant, Thread, ThreadLink
from crmsync.store.inbox import counter_write, entry_writes

T0 = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)


def thread(**changes: Any) -> Thread:
    fields: dict[str, Any] = {
        "id": "t1",
        "account_id": "a1",
        "company_id": "c1",
        "owner_user_id": "u1",
        "subject": "Pricing for Q3",
        "participants": [
            Participant(email="ann@customer.test", name="Ann Buyer", person_id="p1"),
            Participant(email="me@example.com", name=None),
        ],
        "first_message_at": T0,
        "last_message_at": T0,
        "boxes": ["inbox"],
        "unread_count": 0,
        "version": 1,
    }
    return Thread.model_validate({**fields, **changes})


def test_words_are_folded_whole_and_without_noise() -> None:
    assert words("Re: Größe des Angebots, café-Preis!") == [
        "grosse",
        "des",
        "angebots",
        "cafe",
        "preis",
    ]
    assert words("Fwd: a b RE 42") == ["42"]  # prefixes, 1-letter words dropped; digits kept
    assert words("x" * 100) == ["x" * 64]


def test_thread_terms_subject_first_then_participants_capped() -> None:
    assert thread_terms(thread()) == [
        "pricing",
        "for",
        "q3",
        "ann",
        "buyer",
        "customer",
        "test",
        "me",
        "example",
    ]
    crowd = [Participant(email=f"user{i}@host{i}.test", name=f"Name{i}") for i in range(30)]
    terms = thread_terms(thread(participants=crowd))
    assert len(terms) == MAX_TERMS
    assert terms[:3] == ["pricing", "for", "q3"]


def test_entries_of_an_unread_linked_inbox_thread_with_attachments() -> None:
    listed = inbox_entries(
        thread(
            boxes=["inbox", "sent"],
            unread_count=2,
            has_attachments=True,
            links=[ThreadLink(type="person", id="p1", reason="auto:person")],
        )
    )
    assert listed.sort_key == "2025-03-01T12:00:00.000000Z#t1"
    assert set(listed.entries) == {
        "BOX#inbox",
        "BOX#sent",
        "BOX#all",
        "UNREAD",
        "ATTACH",
        "LINKED",
        "LINK#person#p1",
        "ADDR#ann@customer.test",
        "ADDR#me@example.com",
        *(f"TERM#{w}" for w in thread_terms(thread())),
    }
    box = listed.entries["BOX#inbox"]
    assert box["unread"] is True
    assert box["attach"] is True
    assert box["tracked"] is False
    assert box["boxes"] == ["inbox", "sent"]
    assert "terms" not in box  # only entries a text/participant/link filter reads carry them
    rich = listed.entries["TERM#pricing"]
    assert rich["links"] == ["person#p1"]
    assert rich["addrs"] == ["ann@customer.test", "me@example.com"]


def test_unlinked_tracked_archive_thread_and_address_cap() -> None:
    crowd = [Participant(email=f"User{i}@x.test") for i in range(MAX_ADDRESSES + 5)]
    listed = inbox_entries(thread(boxes=["archive"], tracked=True, participants=crowd))
    names = set(listed.entries)
    assert {"BOX#archive", "BOX#all", "TRACKED", "UNLINKED"} <= names
    assert not names & {"BOX#inbox", "BOX#sent", "UNREAD", "ATTACH", "LINKED"}
    addresses = sorted(n for n in names if n.startswith("ADDR#"))
    assert len(addresses) == MAX_ADDRESSES
    assert "ADDR#user0@x.test" in addresses  # lower-cased


def test_a_deleted_thread_is_in_no_list_and_no_count() -> None:
    gone = thread(deleted=True, boxes=[], deleted_at=T0)
    assert inbox_entries(gone).entries == {}
    assert folder_counts(gone) == {}
    assert inbox_entries(None).entries == {}


def test_counts_per_folder() -> None:
    assert folder_counts(thread(boxes=["inbox", "sent"], unread_count=1)) == {
        "inbox_threads": 1,
        "inbox_unread": 1,
        "sent_threads": 1,
        "sent_unread": 1,
        "all_threads": 1,
        "all_unread": 1,
    }
    read = folder_counts(thread(boxes=["archive"]))
    assert read == {"archive_threads": 1, "all_threads": 1}


def test_count_delta_of_reading_and_archiving() -> None:
    before = folder_counts(thread(boxes=["inbox"], unread_count=1))
    after = folder_counts(thread(boxes=["archive"], archived=True))
    assert count_delta(before, after) == {
        "all_unread": -1,
        "archive_threads": 1,
        "inbox_threads": -1,
        "inbox_unread": -1,
    }
    assert count_delta(after, after) == {}
    op = counter_write("table", thread(), count_delta(before, after))
    assert op is not None
    update = op["Update"]
    assert update["Key"] == {"PK": "COMPANY#c1#USER#u1", "SK": "MAILCOUNTS#a1"}
    assert update["UpdateExpression"].startswith("ADD #c0 :c0, #c1 :c1, #c2 :c2, #c3 :c3")
    assert sorted(update["ExpressionAttributeValues"][f":c{i}"] for i in range(4)) == [
        -1,
        -1,
        -1,
        1,
    ]
    assert counter_write("table", thread(), {}) is None


def keys_of(ops: list[dict[str, Any]]) -> set[tuple[str, str]]:
    found = set()
    for op in ops:
        body = op.get("Put", {}).get("Item") or op["Delete"]["Key"]
        found.add((body["PK"].rsplit("#INBOX#", 1)[1], body["SK"]))
    return found


def test_a_new_message_moves_every_entry_to_the_new_time() -> None:
    old = thread(unread_count=0)
    new = thread(unread_count=1, last_message_at=T0 + timedelta(hours=1), version=2)
    deletes, puts = entry_writes(
        "table", new, inbox_entries(old), inbox_entries(new), rewrite_all=False
    )
    old_sk = "2025-03-01T12:00:00.000000Z#t1"
    new_sk = "2025-03-01T13:00:00.000000Z#t1"
    assert keys_of(deletes) == {(name, old_sk) for name in inbox_entries(old).entries}
    assert keys_of(puts) == {(name, new_sk) for name in inbox_entries(new).entries}
    assert ("UNREAD", new_sk) in keys_of(puts)
    assert all(op["Put"]["Item"]["PK"].startswith("COMPANY#c1#USER#u1#INBOX#") for op in puts)


def test_a_flag_change_rewrites_in_place_and_an_unchanged_entry_is_skipped() -> None:
    unread = thread(unread_count=1)
    read = thread(unread_count=0, version=2)
    deletes, puts = entry_writes(
        "table", read, inbox_entries(unread), inbox_entries(read), rewrite_all=False
    )
    assert keys_of(deletes) == {("UNREAD", inbox_entries(read).sort_key)}
    # every remaining entry carries `unread`, so each is rewritten in place (no delete)
    assert len(puts) == len(inbox_entries(read).entries)

    renamed = thread(visibility="shared", version=3)  # nothing an entry carries changed
    deletes, puts = entry_writes(
        "table", renamed, inbox_entries(read), inbox_entries(renamed), rewrite_all=False
    )
    assert (deletes, puts) == ([], [])
    _, puts = entry_writes(
        "table", renamed, inbox_entries(read), inbox_entries(renamed), rewrite_all=True
    )
    assert len(puts) == len(inbox_entries(renamed).entries)


def test_deleting_in_the_crm_removes_every_entry() -> None:
    live = thread()
    gone = thread(deleted=True, boxes=[], deleted_at=T0, version=2)
    deletes, puts = entry_writes(
        "table", gone, inbox_entries(live), inbox_entries(gone), rewrite_all=False
    )
    assert puts == []
    assert len(deletes) == len(inbox_entries(live).entries)
