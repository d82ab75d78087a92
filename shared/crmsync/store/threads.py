"""DynamoDB adapter of messages, threads, links and the threading indexes.

Key design: docs/dynamodb.md, "Mail" and "Linking". A thread is one partition: the thread
item, its messages (`MSG#{date}#{id}`) and its links (`LINK#{TYPE}#{id}`). A pointer item per
message key finds its thread; Message-ID refs and subject items find the thread of a new
message; participant items find the threads of an address when the directory changes.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from boto3.dynamodb.conditions import Key
from botocore.exceptions import ClientError

from crmsync.clock import iso
from crmsync.models.inbox import count_delta, folder_counts, inbox_entries
from crmsync.models.mail import StoredMessage, Thread
from crmsync.models.threads import LinkRecord, SubjectThread
from crmsync.store import keys
from crmsync.store.checkpoints import _batch_get, _query_all
from crmsync.store.cursor import decode_cursor, encode_cursor
from crmsync.store.inbox import counter_write, entry_writes

if TYPE_CHECKING:
    from mypy_boto3_dynamodb.service_resource import Table

TRANSACTION_MAX = 100
# `inbox_index` of a thread item: every inbox entry of this version is written ("done"), or
# the write spans several transactions and the last has not landed yet ("pending"). A thread
# item without it was stored before the inbox index existed.
INDEX_DONE = "done"
INDEX_PENDING = "pending"
INDEX_LEGACY = ""


def _digest(value: str) -> str:
    return hashlib.sha256(value.encode("utf-8")).hexdigest()[:32]


def _conflict(exc: ClientError) -> bool:
    code = exc.response["Error"]["Code"]
    reasons = {r.get("Code") for r in exc.response.get("CancellationReasons", [])}
    return code == "ConditionalCheckFailedException" or bool(
        {"ConditionalCheckFailed", "TransactionConflict"} & reasons
    )


class DynamoThreadStore:
    def __init__(self, table: Table) -> None:
        self._table = table
        self._client = table.meta.client

    # -- messages ---------------------------------------------------------------------------
    def find_message(self, company_id: str, message_key: str) -> StoredMessage | None:
        pointer = self._table.get_item(
            Key={"PK": keys.message_pointer_pk(company_id, message_key), "SK": keys.MESSAGE_SK},
            ConsistentRead=True,
        ).get("Item")
        if pointer is None or pointer.get("deleted"):
            return None
        item = self._table.get_item(
            Key={"PK": keys.thread_pk(company_id, str(pointer["thread_id"])), "SK": pointer["sk"]},
            ConsistentRead=True,
        ).get("Item")
        return StoredMessage.model_validate(item["data"]) if item else None

    def message_thread(self, company_id: str, message_key: str) -> str | None:
        """The thread a message is or was in (the pointer outlives a deleted message)."""
        pointer = self._table.get_item(
            Key={"PK": keys.message_pointer_pk(company_id, message_key), "SK": keys.MESSAGE_SK},
            ConsistentRead=True,
        ).get("Item")
        return str(pointer["thread_id"]) if pointer else None

    def insert_message(self, message: StoredMessage) -> bool:
        """Pointer and message in one transaction; False when the message exists already."""
        pointer = {
            "PK": keys.message_pointer_pk(message.company_id, message.id),
            "SK": keys.MESSAGE_SK,
            "kind": "message_pointer",
            "thread_id": message.thread_id,
            "account_id": message.account_id,
            "sk": message.sort_key,
        }
        try:
            self._client.transact_write_items(
                TransactItems=[
                    {
                        "Put": {
                            "TableName": self._table.name,
                            "Item": pointer,
                            "ConditionExpression": "attribute_not_exists(PK) OR deleted = :yes",
                            "ExpressionAttributeValues": {":yes": True},
                        }
                    },
                    {"Put": {"TableName": self._table.name, "Item": self._message_item(message)}},
                ]
            )
        except ClientError as exc:
            if _conflict(exc):
                return False
            raise
        return True

    def update_message(self, message: StoredMessage) -> None:
        """Flags and locations; one FIFO group per message, so no one else writes it."""
        self._table.put_item(Item=self._message_item(message))

    def delete_message(self, message: StoredMessage) -> None:
        """The message goes; its pointer stays as a tombstone naming the thread, so a job
        redelivered after a crash can still bring the thread up to date."""
        self._client.transact_write_items(
            TransactItems=[
                {
                    "Put": {
                        "TableName": self._table.name,
                        "Item": {
                            "PK": keys.message_pointer_pk(message.company_id, message.id),
                            "SK": keys.MESSAGE_SK,
                            "kind": "message_pointer",
                            "thread_id": message.thread_id,
                            "account_id": message.account_id,
                            "deleted": True,
                        },
                    }
                },
                {
                    "Delete": {
                        "TableName": self._table.name,
                        "Key": {
                            "PK": keys.thread_pk(message.company_id, message.thread_id),
                            "SK": message.sort_key,
                        },
                    }
                },
            ]
        )

    def _message_item(self, message: StoredMessage) -> dict[str, Any]:
        return {
            "PK": keys.thread_pk(message.company_id, message.thread_id),
            "SK": message.sort_key,
            "kind": "message",
            "data": message.model_dump(mode="json", by_alias=True),
        }

    # -- threading indexes ------------------------------------------------------------------
    def threads_of_message_ids(
        self, company_id: str, account_id: str, message_ids: Sequence[str]
    ) -> dict[str, str]:
        """Message-ID -> thread id, for the ids some stored message has or referenced."""
        by_key = {keys.msgid_ref_pk(company_id, account_id, _digest(m)): m for m in message_ids}
        items = _batch_get(self._table, [{"PK": pk, "SK": keys.MSGID_SK} for pk in by_key])
        return {by_key[str(item["PK"])]: str(item["thread_id"]) for item in items}

    def claim_message_ids(
        self, company_id: str, account_id: str, message_ids: Sequence[str], thread_id: str
    ) -> None:
        """Each Message-ID keeps the first thread it was seen in (put if absent)."""
        for message_id in dict.fromkeys(message_ids):
            try:
                self._table.put_item(
                    Item={
                        "PK": keys.msgid_ref_pk(company_id, account_id, _digest(message_id)),
                        "SK": keys.MSGID_SK,
                        "kind": "message_id_ref",
                        "thread_id": thread_id,
                    },
                    ConditionExpression="attribute_not_exists(PK)",
                )
            except ClientError as exc:
                if not _conflict(exc):
                    raise

    def subject_threads(
        self, company_id: str, account_id: str, thread_subject: str
    ) -> list[SubjectThread]:
        items = _query_all(
            self._table,
            KeyConditionExpression=Key("PK").eq(
                keys.subject_pk(company_id, account_id, _digest(thread_subject))
            ),
        )
        return [SubjectThread.model_validate(item["data"]) for item in items]

    def remember_subject(self, company_id: str, account_id: str, entry: SubjectThread) -> None:
        self._table.put_item(
            Item={
                "PK": keys.subject_pk(company_id, account_id, _digest(entry.thread_subject)),
                "SK": entry.thread_id,
                "kind": "subject_thread",
                "data": entry.model_dump(mode="json"),
            }
        )

    def index_participants(self, company_id: str, thread: Thread, addresses: Sequence[str]) -> None:
        with self._table.batch_writer(overwrite_by_pkeys=["PK", "SK"]) as batch:
            for address in addresses:
                batch.put_item(
                    Item={
                        "PK": keys.participant_pk(company_id, address),
                        "SK": keys.participant_sk(thread.id),
                        "kind": "participant",
                        "account_id": thread.account_id,
                        "thread_id": thread.id,
                    }
                )

    def threads_with_participant(self, company_id: str, address: str) -> list[tuple[str, str]]:
        """(account id, thread id) of every thread the address took part in."""
        items = _query_all(
            self._table,
            KeyConditionExpression=Key("PK").eq(keys.participant_pk(company_id, address)),
        )
        return [(str(item["account_id"]), str(item["thread_id"])) for item in items]

    def threads_linked_to(
        self, company_id: str, link_type: str, target_id: str
    ) -> list[tuple[str, str]]:
        items = _query_all(
            self._table,
            IndexName="GSI2",
            KeyConditionExpression=Key("GSI2PK").eq(
                keys.entity_threads_gsi2pk(company_id, link_type, target_id)
            ),
        )
        return [(str(item["account_id"]), str(item["thread_id"])) for item in items]

    # -- threads ----------------------------------------------------------------------------
    def thread(self, company_id: str, thread_id: str) -> Thread | None:
        item = self._table.get_item(
            Key={"PK": keys.thread_pk(company_id, thread_id), "SK": keys.THREAD_SK},
            ConsistentRead=True,
        ).get("Item")
        return Thread.model_validate(item["data"]) if item else None

    def threads(self, company_id: str, thread_ids: Sequence[str]) -> dict[str, Thread]:
        items = _batch_get(
            self._table,
            [{"PK": keys.thread_pk(company_id, t), "SK": keys.THREAD_SK} for t in thread_ids],
        )
        found = (Thread.model_validate(item["data"]) for item in items)
        return {thread.id: thread for thread in found}

    def thread_messages(self, company_id: str, thread_id: str) -> list[StoredMessage]:
        items = _query_all(
            self._table,
            KeyConditionExpression=Key("PK").eq(keys.thread_pk(company_id, thread_id))
            & Key("SK").begins_with(keys.MESSAGE_PREFIX),
            ConsistentRead=True,
        )
        return [StoredMessage.model_validate(item["data"]) for item in items]

    def thread_links(self, company_id: str, thread_id: str) -> list[LinkRecord]:
        items = _query_all(
            self._table,
            KeyConditionExpression=Key("PK").eq(keys.thread_pk(company_id, thread_id))
            & Key("SK").begins_with(keys.LINK_PREFIX),
            ConsistentRead=True,
        )
        return [LinkRecord.model_validate(item["data"]) for item in items]

    def save_thread(
        self,
        thread: Thread,
        previous: Thread | None,
        links: Sequence[LinkRecord],
        dropped: Sequence[LinkRecord],
    ) -> bool:
        """The thread (iff still the `previous` one read), its links, its inbox entries and
        its account's counters, in one transaction; False when another writer got there
        first.

        Entries and counters are diffed against `previous`, which is only right when its
        entries were all written: the thread item says so (`inbox_index`). A thread stored
        before the inbox existed, or whose last write was cut between two chunks, fails
        the condition and is written again with every entry (and, before the inbox, with
        its whole count)."""
        if previous is None:
            return self._write_thread(thread, None, links, dropped, mode=None)
        if self._write_thread(thread, previous, links, dropped, mode=INDEX_DONE):
            return True
        mode = self._index_state(previous)
        if mode is None or mode == INDEX_DONE:
            return False  # another writer's version, or a transient conflict: re-read
        return self._write_thread(thread, previous, links, dropped, mode=mode)

    def delete_thread(self, thread: Thread, links: Sequence[LinkRecord]) -> bool:
        """The thread with its links, entries and counts (iff still at its version)."""
        if self._delete_thread(thread, links, mode=INDEX_DONE):
            return True
        mode = self._index_state(thread)
        if mode is None or mode == INDEX_DONE:
            return False
        return self._delete_thread(thread, links, mode=mode)

    def _index_state(self, thread: Thread) -> str | None:
        """`inbox_index` of the stored thread when it is still at `thread.version` (""
        when it has none: stored before the inbox); None when the version moved on."""
        item = self._table.get_item(
            Key={"PK": keys.thread_pk(thread.company_id, thread.id), "SK": keys.THREAD_SK},
            ConsistentRead=True,
            ProjectionExpression="version, inbox_index",
        ).get("Item")
        if item is None or item.get("version") != thread.version:
            return None
        return str(item.get("inbox_index", INDEX_LEGACY))

    def _write_thread(
        self,
        thread: Thread,
        previous: Thread | None,
        links: Sequence[LinkRecord],
        dropped: Sequence[LinkRecord],
        *,
        mode: str | None,
    ) -> bool:
        """`mode`: the `inbox_index` state `previous` must be stored with (None: new)."""
        table = self._table.name
        counted = previous if mode != INDEX_LEGACY else None
        deletes, puts = entry_writes(
            table,
            thread,
            inbox_entries(previous),
            inbox_entries(thread),
            rewrite_all=mode != INDEX_DONE and previous is not None,
        )
        counter = counter_write(
            table, thread, count_delta(folder_counts(counted), folder_counts(thread))
        )
        first: list[Any] = [counter] if counter else []
        first += [
            {"Delete": {"TableName": table, "Key": self._link_key(thread, link)}}
            for link in dropped
        ]
        rest: list[Any] = [
            {"Put": {"TableName": table, "Item": self._link_item(thread, link)}} for link in links
        ]
        chunked = 1 + len(first) + len(deletes) + len(rest) + len(puts) > TRANSACTION_MAX
        item = self._thread_item(thread, INDEX_PENDING if chunked else INDEX_DONE)
        guard = self._guard(previous, mode)
        put = {"Put": {"TableName": table, "Item": item, **guard}}
        # Deletes go first: if the write is cut short, only puts are missing, and the next
        # write (which then rewrites every entry) restores them.
        return self._transact_chunks(thread, [put, *first, *deletes], [*rest, *puts])

    def _delete_thread(self, thread: Thread, links: Sequence[LinkRecord], *, mode: str) -> bool:
        table = self._table.name
        delete: dict[str, Any] = {
            "Delete": {
                "TableName": table,
                "Key": {"PK": keys.thread_pk(thread.company_id, thread.id), "SK": keys.THREAD_SK},
                **self._guard(thread, mode),
            }
        }
        counted = thread if mode != INDEX_LEGACY else None
        counter = counter_write(table, thread, count_delta(folder_counts(counted), {}))
        deletes, _ = entry_writes(
            table, thread, inbox_entries(thread), inbox_entries(None), rewrite_all=False
        )
        ops: list[Any] = [delete, *([counter] if counter else [])]
        ops += [
            {"Delete": {"TableName": table, "Key": self._link_key(thread, link)}} for link in links
        ]
        ops += deletes
        if not self._transact_quietly(ops[:TRANSACTION_MAX]):
            return False
        # The rest only while the thread is not back (a new message re-creates it).
        absent = {
            "ConditionCheck": {
                "TableName": table,
                "Key": delete["Delete"]["Key"],
                "ConditionExpression": "attribute_not_exists(PK)",
            }
        }
        step = TRANSACTION_MAX - 1
        for start in range(TRANSACTION_MAX, len(ops), step):
            if not self._transact_quietly([absent, *ops[start : start + step]]):
                break
        return True

    @staticmethod
    def _guard(previous: Thread | None, mode: str | None) -> dict[str, Any]:
        if previous is None:
            return {"ConditionExpression": "attribute_not_exists(PK)"}
        if mode == INDEX_LEGACY:
            return {
                "ConditionExpression": "version = :seen AND attribute_not_exists(inbox_index)",
                "ExpressionAttributeValues": {":seen": previous.version},
            }
        return {
            "ConditionExpression": "version = :seen AND inbox_index = :index",
            "ExpressionAttributeValues": {":seen": previous.version, ":index": mode},
        }

    def _transact_chunks(self, thread: Thread, first: list[Any], rest: list[Any]) -> bool:
        """The first transaction decides (it holds the thread's condition and the counters);
        the rest are written only while the thread is still this version, and the last
        marks the thread's entries complete."""
        ops = first + rest
        if not self._transact_quietly(ops[:TRANSACTION_MAX]):
            return False
        if len(ops) <= TRANSACTION_MAX:
            return True
        key = {"PK": keys.thread_pk(thread.company_id, thread.id), "SK": keys.THREAD_SK}
        mine = {":v": thread.version, ":pending": INDEX_PENDING}
        check = {
            "ConditionCheck": {
                "TableName": self._table.name,
                "Key": key,
                "ConditionExpression": "version = :v AND inbox_index = :pending",
                "ExpressionAttributeValues": mine,
            }
        }
        done = {
            "Update": {
                "TableName": self._table.name,
                "Key": key,
                "UpdateExpression": "SET inbox_index = :done",
                "ConditionExpression": "version = :v AND inbox_index = :pending",
                "ExpressionAttributeValues": {**mine, ":done": INDEX_DONE},
            }
        }
        step = TRANSACTION_MAX - 1
        starts = list(range(TRANSACTION_MAX, len(ops), step))
        for start in starts:
            guard = done if start == starts[-1] else check
            if not self._transact_quietly([guard, *ops[start : start + step]]):
                # A newer version is stored: its writer saw "pending" and rewrote every entry.
                break
        return True

    def _transact_quietly(self, ops: list[Any]) -> bool:
        """One transaction; False when a condition failed or it conflicted."""
        try:
            self._client.transact_write_items(TransactItems=ops)
        except ClientError as exc:
            if _conflict(exc):
                return False
            raise
        return True

    def _thread_item(self, thread: Thread, inbox_index: str) -> dict[str, Any]:
        return {
            "PK": keys.thread_pk(thread.company_id, thread.id),
            "SK": keys.THREAD_SK,
            "GSI1PK": keys.account_threads_gsi1pk(thread.company_id, thread.account_id),
            "GSI1SK": f"{iso(thread.last_message_at)}#{thread.id}",
            "kind": "thread",
            "account_id": thread.account_id,
            "version": thread.version,
            "inbox_index": inbox_index,
            "data": thread.model_dump(mode="json"),
        }

    def _link_key(self, thread: Thread, link: LinkRecord) -> dict[str, Any]:
        return {
            "PK": keys.thread_pk(thread.company_id, thread.id),
            "SK": keys.link_sk(link.type, link.id),
        }

    def _link_item(self, thread: Thread, link: LinkRecord) -> dict[str, Any]:
        item: dict[str, Any] = {
            **self._link_key(thread, link),
            "kind": "thread_link",
            "account_id": thread.account_id,
            "thread_id": thread.id,
            "owner_user_id": thread.owner_user_id,
            "visibility": thread.visibility,
            "data": link.model_dump(mode="json"),
        }
        if link.active:
            item["GSI2PK"] = keys.entity_threads_gsi2pk(thread.company_id, link.type, link.id)
            item["GSI2SK"] = f"{iso(thread.last_message_at)}#{thread.id}"
        return item

    # -- pages for the API ------------------------------------------------------------------
    def linked_threads(
        self, company_id: str, link_type: str, target_id: str, limit: int, cursor: str | None
    ) -> tuple[list[dict[str, Any]], str | None]:
        """One page of link items (newest thread first): thread id, owner and visibility."""
        partition = keys.entity_threads_gsi2pk(company_id, link_type, target_id)
        return self._newest_first("GSI2", partition, limit, cursor)

    def _newest_first(
        self, index: str, partition: str, limit: int, cursor: str | None
    ) -> tuple[list[dict[str, Any]], str | None]:
        """One page of an index partition, newest first; the cursor must point into it."""
        request: dict[str, Any] = {
            "IndexName": index,
            "KeyConditionExpression": Key(f"{index}PK").eq(partition),
            "ScanIndexForward": False,
            "Limit": limit,
        }
        start = decode_cursor(cursor, partition, partition_key=f"{index}PK")
        if start:
            request["ExclusiveStartKey"] = start
        reply = self._table.query(**request)
        return list(reply.get("Items", [])), encode_cursor(reply.get("LastEvaluatedKey"))
