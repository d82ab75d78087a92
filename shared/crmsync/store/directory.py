"""DynamoDB adapter of the CRM directory. Key design: docs/dynamodb.md, "CRM directory".

One item per record, `PK=COMPANY#{c}#{KIND}#{id}`, `SK={KIND}`, holding the record as `data`
and its `version` (optimistic concurrency). GSI1 lists a company's records of a kind, GSI2
serves "deals of a person" and "activities of a user". Every address of a person (and the
address of a user) has an owner item `PK=COMPANY#{c}#EMAIL#{address}`, `SK={KIND}#{id}` with
a copy of the record, written in the record's transaction, so a lookup by address is one Query.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any, TypeVar

from boto3.dynamodb.conditions import ConditionBase, Key
from botocore.exceptions import ClientError

from crmsync.clock import iso
from crmsync.errors import ConflictError, ValidationFailedError
from crmsync.models.activities import Activity
from crmsync.models.deals import Deal, Lead, Project
from crmsync.models.directory import Organization, Person, Record, User, address_key
from crmsync.models.pages import Page
from crmsync.store.cursor import decode_cursor, encode_cursor

if TYPE_CHECKING:
    from mypy_boto3_dynamodb.service_resource import Table

R = TypeVar("R", bound=Record)

MAX_READS_PER_PAGE = 8
"""Query calls one page may spend skipping records the caller may not read."""


@dataclass(frozen=True)
class Kind:
    key: str
    collection: str
    label: str


KINDS: dict[type[Record], Kind] = {
    User: Kind("USER", "USERS", "user"),
    Person: Kind("PERSON", "PERSONS", "person"),
    Organization: Kind("ORGANIZATION", "ORGANIZATIONS", "organization"),
    Deal: Kind("DEAL", "DEALS", "deal"),
    Lead: Kind("LEAD", "LEADS", "lead"),
    Project: Kind("PROJECT", "PROJECTS", "project"),
    Activity: Kind("ACTIVITY", "ACTIVITIES", "activity"),
}


def record_pk(company_id: str, kind: Kind, record_id: str) -> str:
    return f"COMPANY#{company_id}#{kind.key}#{record_id}"


def collection_gsi1pk(company_id: str, kind: Kind) -> str:
    return f"COMPANY#{company_id}#{kind.collection}"


def address_pk(company_id: str, key: str) -> str:
    return f"COMPANY#{company_id}#EMAIL#{key}"


def person_deals_gsi2pk(company_id: str, person_id: str) -> str:
    return f"COMPANY#{company_id}#PERSON#{person_id}#DEALS"


def user_activities_gsi2pk(company_id: str, owner_id: str) -> str:
    return f"COMPANY#{company_id}#USER#{owner_id}#ACTIVITIES"


def _index_keys(company_id: str, record: Record) -> dict[str, str]:
    kind = KINDS[type(record)]
    if isinstance(record, Activity):
        when = f"{iso(record.start)}#{record.id}"
        return {
            "GSI1PK": collection_gsi1pk(company_id, kind),
            "GSI1SK": when,
            "GSI2PK": user_activities_gsi2pk(company_id, record.owner_id),
            "GSI2SK": when,
        }
    keys = {
        "GSI1PK": collection_gsi1pk(company_id, kind),
        "GSI1SK": f"{iso(record.updated_at)}#{record.id}",
    }
    if isinstance(record, Deal) and record.person_id:
        keys["GSI2PK"] = person_deals_gsi2pk(company_id, record.person_id)
        keys["GSI2SK"] = f"{record.status}#{iso(record.updated_at)}#{record.id}"
    return keys


def _addresses(record: Record) -> set[str]:
    if isinstance(record, Person):
        return {address_key(address) for address in record.emails}
    if isinstance(record, User):
        return {address_key(record.email)}
    return set()


@dataclass(frozen=True)
class _Partition:
    """One partition of the table or an index, and how to walk it."""

    index: str | None
    attribute: str
    value: str
    sort: ConditionBase | None = None
    newest_first: bool = True

    @property
    def key_attributes(self) -> frozenset[str]:
        if self.index is None:
            return frozenset({"PK", "SK"})
        return frozenset({"PK", "SK", f"{self.index}PK", f"{self.index}SK"})


class DynamoDirectoryRepository:
    def __init__(self, table: Table) -> None:
        self._table = table
        self._client = table.meta.client

    # ------------------------------------------------------------ single records

    def get(self, company_id: str, record_type: type[R], record_id: str) -> R | None:
        kind = KINDS[record_type]
        item = self._table.get_item(
            Key={"PK": record_pk(company_id, kind, record_id), "SK": kind.key},
            ConsistentRead=True,
        ).get("Item")
        return record_type.model_validate(item["data"]) if item else None

    def create(self, company_id: str, record: Record) -> None:
        """Put a new record and its address items; ConflictError if the id is taken."""
        put = self._put(company_id, record)
        put["ConditionExpression"] = "attribute_not_exists(PK)"
        puts = [{"Put": self._address_item(company_id, record, a)} for a in _addresses(record)]
        self._write([{"Put": put}, *puts], f"{KINDS[type(record)].label} {record.id} exists.")

    def replace(self, company_id: str, seen: Record, record: Record) -> None:
        """Write `record` over `seen` iff the stored version is still seen's; address items
        follow the record's addresses in the same transaction."""
        put = self._put(company_id, record)
        put["ConditionExpression"] = "version = :seen"
        put["ExpressionAttributeValues"] = {":seen": seen.version}
        now, before = _addresses(record), _addresses(seen)
        ops: list[Any] = [{"Put": put}]
        ops += [{"Put": self._address_item(company_id, record, a)} for a in sorted(now)]
        ops += [{"Delete": self._address_key(company_id, seen, a)} for a in sorted(before - now)]
        self._write(ops, f"{KINDS[type(record)].label} {record.id} changed meanwhile.")

    def delete(self, company_id: str, seen: Record) -> None:
        kind = KINDS[type(seen)]
        delete: dict[str, Any] = {
            "TableName": self._table.name,
            "Key": {"PK": record_pk(company_id, kind, seen.id), "SK": kind.key},
            "ConditionExpression": "version = :seen",
            "ExpressionAttributeValues": {":seen": seen.version},
        }
        ops: list[Any] = [{"Delete": delete}]
        ops += [{"Delete": self._address_key(company_id, seen, a)} for a in _addresses(seen)]
        self._write(ops, f"{kind.label} {seen.id} changed meanwhile.")

    # ------------------------------------------------------------ lists

    def all_of(
        self,
        company_id: str,
        record_type: type[R],
        limit: int,
        cursor: str | None,
        accept: Callable[[R], bool],
    ) -> Page[R]:
        """A company's records of a kind: newest update first (activities: by start)."""
        partition = _Partition(
            "GSI1",
            "GSI1PK",
            collection_gsi1pk(company_id, KINDS[record_type]),
            newest_first=record_type is not Activity,
        )
        return self._page(record_type, partition, limit, cursor, accept)

    def persons_with_address(
        self,
        company_id: str,
        key: str,
        limit: int,
        cursor: str | None,
        accept: Callable[[Person], bool],
    ) -> Page[Person]:
        """Persons with an address whose `address_key` is `key`, one Query, no scan."""
        partition = _Partition(
            None,
            "PK",
            address_pk(company_id, key),
            Key("SK").begins_with(f"{KINDS[Person].key}#"),
            newest_first=False,
        )
        return self._page(Person, partition, limit, cursor, accept)

    def deals_of_person(
        self,
        company_id: str,
        person_id: str,
        status: str | None,
        limit: int,
        cursor: str | None,
        accept: Callable[[Deal], bool],
    ) -> Page[Deal]:
        """By status, then newest update first; `status` narrows to one status."""
        sort = Key("GSI2SK").begins_with(f"{status}#") if status else None
        partition = _Partition("GSI2", "GSI2PK", person_deals_gsi2pk(company_id, person_id), sort)
        return self._page(Deal, partition, limit, cursor, accept)

    def activities(
        self,
        company_id: str,
        owner_id: str | None,
        since: datetime | None,
        until: datetime | None,
        limit: int,
        cursor: str | None,
        accept: Callable[[Activity], bool],
    ) -> Page[Activity]:
        """Activities starting in [since, until), earliest first; one owner's or everyone's."""
        index = "GSI2" if owner_id else "GSI1"
        value = (
            user_activities_gsi2pk(company_id, owner_id)
            if owner_id
            else collection_gsi1pk(company_id, KINDS[Activity])
        )
        sort_key = Key(f"{index}SK")
        sort: ConditionBase | None = None
        if since and until:
            sort = sort_key.between(iso(since), iso(until))
        elif since:
            sort = sort_key.gte(iso(since))
        elif until:
            sort = sort_key.lt(iso(until))
        partition = _Partition(index, f"{index}PK", value, sort, newest_first=False)
        return self._page(Activity, partition, limit, cursor, accept)

    # ------------------------------------------------------------ plumbing

    def _put(self, company_id: str, record: Record) -> dict[str, Any]:
        kind = KINDS[type(record)]
        item: dict[str, Any] = {
            "PK": record_pk(company_id, kind, record.id),
            "SK": kind.key,
            **_index_keys(company_id, record),
            "kind": kind.label,
            "company_id": company_id,
            "version": record.version,
            "data": record.model_dump(mode="json"),
        }
        return {"TableName": self._table.name, "Item": item}

    def _address_key(self, company_id: str, record: Record, address: str) -> dict[str, Any]:
        sk = f"{KINDS[type(record)].key}#{record.id}"
        return {
            "TableName": self._table.name,
            "Key": {"PK": address_pk(company_id, address), "SK": sk},
        }

    def _address_item(self, company_id: str, record: Record, address: str) -> dict[str, Any]:
        key = self._address_key(company_id, record, address)
        item = {
            **key["Key"],
            "kind": "address_owner",
            "company_id": company_id,
            "address": address,
            "version": record.version,
            "data": record.model_dump(mode="json"),
        }
        return {"TableName": self._table.name, "Item": item}

    def _write(self, ops: list[Any], conflict: str) -> None:
        try:
            if len(ops) > 1:
                self._client.transact_write_items(TransactItems=ops)
            elif "Put" in ops[0]:
                self._client.put_item(**ops[0]["Put"])
            else:
                self._client.delete_item(**ops[0]["Delete"])
        except ClientError as exc:
            code = exc.response["Error"]["Code"]
            reasons = {r.get("Code") for r in exc.response.get("CancellationReasons", [])}
            lost = {"ConditionalCheckFailed", "TransactionConflict"} & reasons
            if code == "ConditionalCheckFailedException" or lost:
                raise ConflictError(conflict) from exc
            raise

    def _page(
        self,
        record_type: type[R],
        partition: _Partition,
        limit: int,
        cursor: str | None,
        accept: Callable[[R], bool],
    ) -> Page[R]:
        """Up to `limit` accepted records. Records the caller may not read are skipped, so a
        page can come back short (even empty) with a cursor, as with a FilterExpression."""
        condition: ConditionBase = Key(partition.attribute).eq(partition.value)
        if partition.sort is not None:
            condition = condition & partition.sort
        request: dict[str, Any] = {
            "KeyConditionExpression": condition,
            "ScanIndexForward": not partition.newest_first,
            "Limit": limit,
        }
        if partition.index:
            request["IndexName"] = partition.index
        start = self._start_key(cursor, partition)
        items: list[R] = []
        for _ in range(MAX_READS_PER_PAGE):
            if start:
                request["ExclusiveStartKey"] = start
            reply = self._query(request, from_cursor=bool(cursor))
            rows, last = reply["Items"], reply.get("LastEvaluatedKey")
            for position, row in enumerate(rows):
                record = record_type.model_validate(row["data"])
                if accept(record):
                    items.append(record)
                if len(items) == limit:
                    more = position < len(rows) - 1 or last is not None
                    key = {name: row[name] for name in partition.key_attributes}
                    return Page(items=items, next_cursor=encode_cursor(key) if more else None)
            if last is None:
                return Page(items=items, next_cursor=None)
            start = dict(last)
        return Page(items=items, next_cursor=encode_cursor(start))

    def _query(self, request: dict[str, Any], from_cursor: bool) -> dict[str, Any]:
        try:
            return dict(self._table.query(**request))
        except ClientError as exc:
            # A cursor of this partition but of another range (e.g. other since/until).
            if from_cursor and exc.response["Error"]["Code"] == "ValidationException":
                raise ValidationFailedError("The cursor is not valid.") from exc
            raise

    @staticmethod
    def _start_key(cursor: str | None, partition: _Partition) -> dict[str, Any] | None:
        start = decode_cursor(cursor, partition.value, partition_key=partition.attribute)
        if start is None:
            return None
        if set(start) != partition.key_attributes or not all(
            isinstance(v, str) for v in start.values()
        ):
            raise ValidationFailedError("The cursor is not valid.")
        return start
