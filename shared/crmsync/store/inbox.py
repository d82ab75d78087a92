"""DynamoDB adapter of the inbox index and counters (docs/dynamodb.md, "Inbox index").

Entries live in the owner's partitions `COMPANY#c#USER#u#INBOX#{entry}` with the sort key
`{iso(last_message_at)}#{thread_id}`; the counters of an account are one item in the owner's
user partition, `MAILCOUNTS#{account_id}`. Both are written by store/threads.py in the
thread's own transaction (the operations are built here), so a retried or conflicting
write never leaves them out of step with the thread.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from boto3.dynamodb.conditions import Attr, ConditionBase, Key
from botocore.exceptions import ClientError

from crmsync.clock import iso
from crmsync.errors import ValidationFailedError
from crmsync.models.inbox import Condition, InboxEntries, InboxQuery
from crmsync.models.mail import Thread
from crmsync.store import keys
from crmsync.store.checkpoints import _query_all
from crmsync.store.cursor import decode_cursor, encode_cursor

if TYPE_CHECKING:
    from mypy_boto3_dynamodb.service_resource import Table

ENTRY_KIND = "inbox_entry"
COUNTS_KIND = "mail_counts"
MAX_READS_PER_PAGE = 8
READ_BATCH = 100
KEY_ATTRIBUTES = frozenset({"PK", "SK"})


# -- writes (composed into the thread's transaction) -----------------------------------------
def entry_key(thread: Thread, entry: str, sort_key: str) -> dict[str, str]:
    return {
        "PK": keys.inbox_entry_pk(thread.company_id, thread.owner_user_id, entry),
        "SK": sort_key,
    }


def entry_writes(
    table_name: str,
    thread: Thread,
    old: InboxEntries,
    new: InboxEntries,
    *,
    rewrite_all: bool,
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(deletes, puts) that turn the entries of `old` into those of `new`.

    An entry whose key and attributes are unchanged is skipped, unless `rewrite_all`: the
    old entries may not all have been written (a thread indexed before the inbox existed,
    or a write cut short between chunks)."""
    old_keys = {(name, old.sort_key) for name in old.entries}
    new_keys = {(name, new.sort_key) for name in new.entries}
    deletes = [
        {"Delete": {"TableName": table_name, "Key": entry_key(thread, name, sort_key)}}
        for name, sort_key in sorted(old_keys - new_keys)
    ]
    puts = [
        {
            "Put": {
                "TableName": table_name,
                "Item": {**entry_key(thread, name, new.sort_key), "kind": ENTRY_KIND, **attrs},
            }
        }
        for name, attrs in sorted(new.entries.items())
        if rewrite_all or old.sort_key != new.sort_key or old.entries.get(name) != attrs
    ]
    return deletes, puts


def counts_key(thread: Thread) -> dict[str, str]:
    return {
        "PK": keys.user_pk(thread.company_id, thread.owner_user_id),
        "SK": keys.mail_counts_sk(thread.account_id),
    }


def counter_write(table_name: str, thread: Thread, delta: dict[str, int]) -> dict[str, Any] | None:
    """ADD the thread's change to its account's counters; None when nothing changes."""
    if not delta:
        return None
    names = {f"#c{i}": name for i, name in enumerate(delta)}
    values: dict[str, Any] = {f":c{i}": value for i, value in enumerate(delta.values())}
    adds = ", ".join(f"#c{i} :c{i}" for i in range(len(delta)))
    return {
        "Update": {
            "TableName": table_name,
            "Key": counts_key(thread),
            "UpdateExpression": f"ADD {adds} SET #kind = :kind, #account = :account",
            "ExpressionAttributeNames": {**names, "#kind": "kind", "#account": "account_id"},
            "ExpressionAttributeValues": {
                **values,
                ":kind": COUNTS_KIND,
                ":account": thread.account_id,
            },
        }
    }


# -- reads -------------------------------------------------------------------------------------
def _filter(conditions: tuple[Condition, ...]) -> ConditionBase | None:
    expression: ConditionBase | None = None
    for condition in conditions:
        attribute = Attr(condition.attribute)
        part = (
            attribute.eq(condition.value)
            if condition.op == "eq"
            else attribute.contains(condition.value)
        )
        expression = part if expression is None else expression & part
    return expression


class DynamoInboxIndex:
    def __init__(self, table: Table) -> None:
        self._table = table

    def entries(
        self,
        company_id: str,
        user_id: str,
        query: InboxQuery,
        limit: int,
        cursor: str | None,
    ) -> tuple[list[tuple[str, str]], str | None]:
        """Newest first. With a FilterExpression DynamoDB may answer short pages, so this
        reads on (at most MAX_READS_PER_PAGE Queries) until `limit` entries matched; the
        cursor is the key of the last entry returned, or where the reads stopped."""
        partition = keys.inbox_entry_pk(company_id, user_id, query.entry)
        condition: ConditionBase = Key("PK").eq(partition)
        if query.since and query.until:
            condition &= Key("SK").between(iso(query.since), iso(query.until))
        elif query.since:
            condition &= Key("SK").gte(iso(query.since))
        elif query.until:
            condition &= Key("SK").lt(iso(query.until))
        request: dict[str, Any] = {
            "KeyConditionExpression": condition,
            "ScanIndexForward": False,
            "ProjectionExpression": "PK, SK, thread_id",
        }
        expression = _filter(query.conditions)
        if expression is not None:
            request["FilterExpression"] = expression
        # Without a filter every item read is returned: read exactly one page's worth.
        request["Limit"] = limit if expression is None else max(limit, READ_BATCH)
        start = _start_key(cursor, partition)
        found: list[tuple[str, str]] = []
        for _ in range(MAX_READS_PER_PAGE):
            if start:
                request["ExclusiveStartKey"] = start
            reply = self._query(request, from_cursor=cursor is not None)
            rows, last = reply.get("Items", []), reply.get("LastEvaluatedKey")
            for position, row in enumerate(rows):
                found.append((str(row["thread_id"]), str(row["SK"])))
                if len(found) == limit:
                    more = position < len(rows) - 1 or last is not None
                    key = {"PK": str(row["PK"]), "SK": str(row["SK"])}
                    return found, encode_cursor(key) if more else None
            if last is None:
                return found, None
            start = {"PK": str(last["PK"]), "SK": str(last["SK"])}
        return found, encode_cursor(start)

    def counters(self, company_id: str, user_id: str) -> dict[str, dict[str, int]]:
        items = _query_all(
            self._table,
            KeyConditionExpression=Key("PK").eq(keys.user_pk(company_id, user_id))
            & Key("SK").begins_with(keys.MAIL_COUNTS_PREFIX),
        )
        return {
            str(item["account_id"]): {
                name: int(str(value))
                for name, value in item.items()
                if name.endswith(("_threads", "_unread"))
            }
            for item in items
        }

    def _query(self, request: dict[str, Any], from_cursor: bool) -> dict[str, Any]:
        try:
            return dict(self._table.query(**request))
        except ClientError as exc:
            # A cursor of this partition but outside the asked range (other since/until).
            if from_cursor and exc.response["Error"]["Code"] == "ValidationException":
                raise ValidationFailedError("The cursor is not valid.") from exc
            raise


def _start_key(cursor: str | None, partition: str) -> dict[str, str] | None:
    start = decode_cursor(cursor, partition)
    if start is None:
        return None
    if set(start) != KEY_ATTRIBUTES or not all(isinstance(v, str) for v in start.values()):
        raise ValidationFailedError("The cursor is not valid.")
    return {name: str(value) for name, value in start.items()}
