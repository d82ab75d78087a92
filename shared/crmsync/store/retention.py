"""DynamoDB adapter of the retention sweep (SPEC E7): who is due, the purge, the record.

Accounts that wait for the sweep sit in the PollDue index under `purge-NN` shards (written by
DynamoAccountRepository: an inactive account's item, or the marker a removal leaves), so
finding them is one Query per shard, never a Scan.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any, Protocol

from boto3.dynamodb.conditions import Key
from botocore.exceptions import ClientError

from crmsync.clock import iso
from crmsync.models.inbox import inbox_entries
from crmsync.models.mail import Thread
from crmsync.models.retention import PurgeRecord
from crmsync.ports import PurgeDue
from crmsync.store import keys
from crmsync.store.account_items import POLL_DUE_INDEX
from crmsync.store.dynamodb import RETENTION_MARKER_KIND
from crmsync.store.inbox import counts_key, entry_key

if TYPE_CHECKING:
    from mypy_boto3_dynamodb.service_resource import Table

PURGE_RECORD_KIND = "purge_record"
KeyFinder = Callable[["Table", str, str], Iterator[dict[str, Any]]]


@dataclass(frozen=True)
class SyncedData:
    """One kind of an account's synced data, and how to find the keys of its items.

    The hook for the sync feature: it adds its kinds to SYNCED_DATA (threads and their
    messages through GSI1 `COMPANY#c#ACCOUNT#a#THREADS`, UID maps through the folder
    checkpoints, Message-ID refs, raw mail in S3 through the purge port). Kinds are purged
    in order, so a kind that is found through another kind's items (UID maps need the
    folder ids of the checkpoints) comes before that kind.
    """

    name: str
    keys_of: KeyFinder


def in_account_partition(sort_key_prefix: str) -> KeyFinder:
    """Items of the account's own partition whose sort key starts with the prefix."""

    def find(table: Table, company_id: str, account_id: str) -> Iterator[dict[str, Any]]:
        query: dict[str, Any] = {
            "KeyConditionExpression": Key("PK").eq(keys.account_pk(company_id, account_id))
            & Key("SK").begins_with(sort_key_prefix),
            "ProjectionExpression": "PK, SK",
        }
        while True:
            page = table.query(**query)
            for item in page["Items"]:
                yield {"PK": item["PK"], "SK": item["SK"]}
            if "LastEvaluatedKey" not in page:
                return
            query["ExclusiveStartKey"] = page["LastEvaluatedKey"]

    return find


def _query_keys(table: Table, **query: Any) -> Iterator[dict[str, Any]]:
    while True:
        page = table.query(**query)
        yield from page["Items"]
        if "LastEvaluatedKey" not in page:
            return
        query["ExclusiveStartKey"] = page["LastEvaluatedKey"]


def uid_maps(table: Table, company_id: str, account_id: str) -> Iterator[dict[str, Any]]:
    """The UID map of every folder, found through the folder checkpoints."""
    for checkpoint in in_account_partition(keys.FOLDER_PREFIX)(table, company_id, account_id):
        folder_id = str(checkpoint["SK"]).removeprefix(keys.FOLDER_PREFIX)
        pk = keys.uid_map_pk(company_id, account_id, folder_id)
        for item in _query_keys(
            table, KeyConditionExpression=Key("PK").eq(pk), ProjectionExpression="PK, SK"
        ):
            yield {"PK": item["PK"], "SK": item["SK"]}


def threads(table: Table, company_id: str, account_id: str) -> Iterator[dict[str, Any]]:
    """Every thread of the account with its messages, links, message pointers, Message-ID
    refs, subject and participant entries (found through the thread and message data), its
    inbox entries in its owner's partitions, and the account's counters there."""
    owners: dict[str, Thread] = {}
    for thread in _query_keys(
        table,
        IndexName="GSI1",
        KeyConditionExpression=Key("GSI1PK").eq(
            keys.account_threads_gsi1pk(company_id, account_id)
        ),
    ):
        data = thread["data"]
        thread_id = str(data["id"])
        stored = Thread.model_validate(data)
        owners.setdefault(stored.owner_user_id, stored)
        listed = inbox_entries(stored)
        for entry in listed.entries:
            yield entry_key(stored, entry, listed.sort_key)
        for participant in data.get("participants", []):
            yield {
                "PK": keys.participant_pk(company_id, str(participant["email"])),
                "SK": keys.participant_sk(thread_id),
            }
        if data.get("thread_subject"):
            digest = _digest(str(data["thread_subject"]))
            yield {"PK": keys.subject_pk(company_id, account_id, digest), "SK": thread_id}
        for item in _query_keys(
            table, KeyConditionExpression=Key("PK").eq(keys.thread_pk(company_id, thread_id))
        ):
            if str(item["SK"]).startswith(keys.MESSAGE_PREFIX):
                message = item["data"]
                yield {
                    "PK": keys.message_pointer_pk(company_id, str(message["id"])),
                    "SK": keys.MESSAGE_SK,
                }
                if message.get("direction") == "outbound":
                    # Opens and clicks of a sent message: its own partition (tracking).
                    yield from _query_keys(
                        table,
                        KeyConditionExpression=Key("PK").eq(
                            keys.tracking_pk(company_id, str(message["id"]))
                        ),
                        ProjectionExpression="PK, SK",
                    )
                ids = [message.get("message_id_header"), *message.get("references", [])]
                ids += message.get("in_reply_to", [])
                for message_id in {str(i) for i in ids if i}:
                    yield {
                        "PK": keys.msgid_ref_pk(company_id, account_id, _digest(message_id)),
                        "SK": keys.MSGID_SK,
                    }
            yield {"PK": item["PK"], "SK": item["SK"]}
    for stored in owners.values():
        yield counts_key(stored)


def _digest(value: str) -> str:
    return hashlib.sha256(value.encode("utf-8")).hexdigest()[:32]


# What there is to purge; sync runs also expire by TTL 30 days after they finished. Kinds
# found through another kind's items come first (UID maps through the checkpoints).
SYNCED_DATA: tuple[SyncedData, ...] = (
    SyncedData("sync_runs", in_account_partition(keys.SYNC_RUN_PREFIX)),
    SyncedData("threads_and_messages", threads),
    SyncedData("uid_maps", uid_maps),
    SyncedData("folder_checkpoints", in_account_partition(keys.FOLDER_PREFIX)),
    SyncedData("mailbox_actions", in_account_partition(keys.MAILBOX_ACTION_PREFIX)),
)


def _conditional_failed(exc: ClientError) -> bool:
    return bool(exc.response["Error"]["Code"] == "ConditionalCheckFailedException")


class ObjectPurge(Protocol):
    def delete_account_objects(self, company_id: str, account_id: str) -> int: ...


class DynamoRetentionRepository:
    def __init__(
        self,
        table: Table,
        synced_data: Sequence[SyncedData] = SYNCED_DATA,
        objects: ObjectPurge | None = None,
    ) -> None:
        self._table = table
        self._synced_data = tuple(synced_data)
        self._objects = objects

    def due(self, shard: int, inactive_before: datetime) -> Iterator[PurgeDue]:
        query: dict[str, Any] = {
            "IndexName": POLL_DUE_INDEX,
            "KeyConditionExpression": Key("poll_shard").eq(f"{keys.PURGE_SHARD_PREFIX}{shard:02d}")
            & Key("next_poll_at").lte(iso(inactive_before)),
        }
        while True:
            page = self._table.query(**query)
            for item in page["Items"]:
                yield PurgeDue(
                    company_id=str(item["company_id"]),
                    account_id=str(item["account_id"]),
                    reason="removed" if item.get("kind") == RETENTION_MARKER_KIND else "inactive",
                    since=str(item["next_poll_at"]),
                )
            if "LastEvaluatedKey" not in page:
                return
            query["ExclusiveStartKey"] = page["LastEvaluatedKey"]

    def still_due(self, due: PurgeDue) -> bool:
        item = self._table.get_item(
            Key=self._key(due),
            ConsistentRead=True,
            ProjectionExpression="poll_shard, next_poll_at",
        ).get("Item")
        return (
            item is not None
            and str(item.get("poll_shard", "")).startswith(keys.PURGE_SHARD_PREFIX)
            and item.get("next_poll_at") == due.since
        )

    def purge(self, company_id: str, account_id: str) -> dict[str, int]:
        counts: dict[str, int] = {}
        with self._table.batch_writer(overwrite_by_pkeys=["PK", "SK"]) as batch:
            for kind in self._synced_data:
                counts[kind.name] = 0
                for key in kind.keys_of(self._table, company_id, account_id):
                    batch.delete_item(Key=key)
                    counts[kind.name] += 1
        if self._objects is not None:
            counts["stored_objects"] = self._objects.delete_account_objects(company_id, account_id)
        return counts

    def record(self, record: PurgeRecord) -> None:
        """Kept without TTL: the record that the data was purged outlives the data."""
        self._table.put_item(
            Item={
                "PK": keys.purges_pk(record.company_id),
                "SK": keys.purge_record_sk(iso(record.purged_at), record.account_id),
                "kind": PURGE_RECORD_KIND,
                "account_id": record.account_id,
                "data": record.model_dump(mode="json"),
            }
        )

    def list_records(self, company_id: str) -> list[PurgeRecord]:
        """A company's purge records, oldest first (operators and tests)."""
        query: dict[str, Any] = {"KeyConditionExpression": Key("PK").eq(keys.purges_pk(company_id))}
        found: list[PurgeRecord] = []
        while True:
            page = self._table.query(**query)
            found += [PurgeRecord.model_validate(item["data"]) for item in page["Items"]]
            if "LastEvaluatedKey" not in page:
                return found
            query["ExclusiveStartKey"] = page["LastEvaluatedKey"]

    def release(self, due: PurgeDue, purged_at: datetime) -> bool:
        seen = {":purge": keys.PURGE_SHARD_PREFIX, ":seen": due.since}
        condition = "begins_with(poll_shard, :purge) AND next_poll_at = :seen"
        try:
            if due.reason == "removed":
                self._table.delete_item(
                    Key=self._key(due),
                    ConditionExpression=condition,
                    ExpressionAttributeValues=seen,
                )
            else:
                # The account stays; the version bump makes a concurrent read-modify-write
                # re-read it, so it cannot put back the keys of a purged spell.
                self._table.update_item(
                    Key=self._key(due),
                    UpdateExpression="REMOVE poll_shard, next_poll_at "
                    "SET #d.data_purged_at = :at, #d.version = #d.version + :one",
                    ConditionExpression=condition,
                    ExpressionAttributeNames={"#d": "data"},
                    ExpressionAttributeValues={
                        **seen,
                        ":at": purged_at.isoformat(),
                        ":one": 1,
                    },
                )
        except ClientError as exc:
            if _conditional_failed(exc):
                return False
            raise
        return True

    @staticmethod
    def _key(due: PurgeDue) -> dict[str, str]:
        if due.reason == "removed":
            return {
                "PK": keys.retention_pk(due.company_id),
                "SK": keys.retention_marker_sk(due.account_id),
            }
        return {"PK": keys.account_pk(due.company_id, due.account_id), "SK": keys.ACCOUNT_SK}
