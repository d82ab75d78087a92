"""The writes and pages the DynamoDB directory adapter composes, against a recording stub
table: one transaction per record and its addresses, keys under the company, safe cursors."""

from __future__ import annotations

from datetime import UTC, datetime
from types import SimpleNamespace
from typing import Any

import pytest

from crmsync.errors import ValidationFailedError
from crmsync.models.activities import Activity
from crmsync.models.deals import Deal
from crmsync.models.directory import Person
from crmsync.models.identity import Principal
from crmsync.services.directory import can_read
from crmsync.store.cursor import decode_cursor, encode_cursor
from crmsync.store.directory import DynamoDirectoryRepository

NOW = datetime(2025, 3, 3, 9, 0, tzinfo=UTC)
COLLEAGUE = Principal(user_id="u2", company_id="c1", role="user")


def person(owner: str, visibility: str = "company", **fields: Any) -> Person:
    return Person.model_validate(
        {
            "id": f"p-{owner}-{visibility}",
            "name": "Some One",
            "owner_id": owner,
            "visibility": visibility,
            "created_at": NOW,
            "updated_at": NOW,
            **fields,
        }
    )


class StubTable:
    """Records what the adapter sends; answers queries from canned pages."""

    name = "table"

    def __init__(self, pages: list[dict[str, Any]] | None = None) -> None:
        self.calls: list[tuple[str, dict[str, Any]]] = []
        self.pages = pages or []
        record = self.calls.append
        self.meta = SimpleNamespace(
            client=SimpleNamespace(
                transact_write_items=lambda **kw: record(("transact", kw)),
                put_item=lambda **kw: record(("put", kw)),
                delete_item=lambda **kw: record(("delete", kw)),
            )
        )

    def query(self, **request: Any) -> dict[str, Any]:
        self.calls.append(("query", request))
        return self.pages.pop(0)


def _keys(call: dict[str, Any]) -> list[tuple[str, str, str]]:
    out = []
    for op in call["TransactItems"]:
        ((verb, body),) = op.items()
        key = body.get("Item") or body["Key"]
        out.append((verb, key["PK"], key["SK"]))
    return out


def test_a_person_and_its_addresses_are_written_in_one_transaction() -> None:
    table = StubTable()
    repository = DynamoDirectoryRepository(table)  # type: ignore[arg-type]
    seen = person("u1", emails=["Old@x.com", "keep@x.com"])
    repository.create("c1", seen)
    new = seen.changed({"emails": ["keep@x.com", "NEW@x.com"], "version": 2})
    repository.replace("c1", seen, new)
    repository.delete("c1", new)

    (_, create), (_, replace), (_, delete) = table.calls
    pk = "COMPANY#c1#PERSON#p-u1-company"
    assert sorted(_keys(create)) == [
        ("Put", "COMPANY#c1#EMAIL#keep@x.com", "PERSON#p-u1-company"),
        ("Put", "COMPANY#c1#EMAIL#old@x.com", "PERSON#p-u1-company"),
        ("Put", pk, "PERSON"),
    ]
    assert create["TransactItems"][0]["Put"]["ConditionExpression"] == "attribute_not_exists(PK)"
    assert sorted(_keys(replace)) == [
        ("Delete", "COMPANY#c1#EMAIL#old@x.com", "PERSON#p-u1-company"),
        ("Put", "COMPANY#c1#EMAIL#keep@x.com", "PERSON#p-u1-company"),
        ("Put", "COMPANY#c1#EMAIL#new@x.com", "PERSON#p-u1-company"),
        ("Put", pk, "PERSON"),
    ]
    main = replace["TransactItems"][0]["Put"]
    assert main["ConditionExpression"] == "version = :seen"
    assert main["ExpressionAttributeValues"] == {":seen": 1}
    assert main["Item"]["GSI1PK"] == "COMPANY#c1#PERSONS"
    assert sorted(_keys(delete))[-1] == ("Delete", pk, "PERSON")
    for call in (create, replace, delete):
        assert all(pk.startswith("COMPANY#c1#") for _, pk, _ in _keys(call))


def test_deals_and_activities_carry_their_second_index() -> None:
    table = StubTable()
    repository = DynamoDirectoryRepository(table)  # type: ignore[arg-type]
    repository.create(
        "c1",
        Deal(
            id="d1",
            title="T",
            person_id="p1",
            owner_id="u1",
            status="won",
            created_at=NOW,
            updated_at=NOW,
        ),
    )
    start = datetime(2030, 1, 1, 10, tzinfo=UTC)
    repository.create(
        "c1",
        Activity(id="a1", subject="S", start=start, owner_id="u1", created_at=NOW, updated_at=NOW),
    )

    deal, activity = (kw["Item"] for _, kw in table.calls)
    assert deal["GSI2PK"] == "COMPANY#c1#PERSON#p1#DEALS"
    assert deal["GSI2SK"] == "won#2025-03-03T09:00:00.000000Z#d1"
    assert activity["GSI2PK"] == "COMPANY#c1#USER#u1#ACTIVITIES"
    assert activity["GSI1SK"] == activity["GSI2SK"] == "2030-01-01T10:00:00.000000Z#a1"


def _row(record: Person) -> dict[str, Any]:
    return {
        "PK": f"COMPANY#c1#PERSON#{record.id}",
        "SK": "PERSON",
        "GSI1PK": "COMPANY#c1#PERSONS",
        "GSI1SK": f"t#{record.id}",
        "data": record.model_dump(mode="json"),
    }


def test_a_page_skips_what_the_caller_cannot_read_and_resumes_after_the_last_shown() -> None:
    rows = [_row(person(f"u{n}", "owner" if n % 2 else "company", id=f"p{n}")) for n in range(6)]
    table = StubTable(
        pages=[
            {"Items": rows[:2], "LastEvaluatedKey": {"k": 1}},
            {"Items": rows[2:4], "LastEvaluatedKey": {"k": 2}},
        ]
    )
    repository = DynamoDirectoryRepository(table)  # type: ignore[arg-type]

    page = repository.all_of("c1", Person, 2, None, lambda p: can_read(COLLEAGUE, p))

    assert [p.id for p in page.items] == ["p0", "p2"]
    start = decode_cursor(page.next_cursor, "COMPANY#c1#PERSONS", partition_key="GSI1PK")
    assert start == {k: v for k, v in rows[2].items() if k != "data"}
    queries = [kw for verb, kw in table.calls if verb == "query"]
    assert [q.get("ExclusiveStartKey") for q in queries] == [None, {"k": 1}]
    assert all(q["IndexName"] == "GSI1" and q["ScanIndexForward"] is False for q in queries)


@pytest.mark.parametrize(
    "cursor",
    [
        encode_cursor({"PK": "x", "SK": "y", "GSI1PK": "COMPANY#c2#PERSONS", "GSI1SK": "t"}),
        encode_cursor({"GSI1PK": "COMPANY#c1#PERSONS", "GSI1SK": "t"}),
        encode_cursor({"PK": 1, "SK": "y", "GSI1PK": "COMPANY#c1#PERSONS", "GSI1SK": "t"}),
        encode_cursor(
            {"PK": "x", "SK": "y", "GSI1PK": "COMPANY#c1#PERSONS", "GSI1SK": "t", "z": ""}
        ),
    ],
)
def test_index_cursors_of_another_partition_or_shape_are_refused(cursor: str) -> None:
    repository = DynamoDirectoryRepository(StubTable())  # type: ignore[arg-type]
    with pytest.raises(ValidationFailedError):
        repository.all_of("c1", Person, 2, cursor, lambda p: True)


def test_decode_cursor_checks_the_named_partition_attribute() -> None:
    key = {"PK": "COMPANY#c1#PERSON#p", "SK": "PERSON", "GSI1PK": "COMPANY#c1#PERSONS"}
    assert decode_cursor(encode_cursor(key), "COMPANY#c1#PERSONS", partition_key="GSI1PK") == key
    with pytest.raises(ValidationFailedError):
        decode_cursor(encode_cursor(key), "COMPANY#c1#PERSONS")
