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
from crmsync.models.mail import StoredMessage, Thread
from crmsync.models.pages import Page
from crmsync.models.threads import LinkRecord, SubjectThread
from crmsync.store import keys
from crmsync.store.checkpoints import _batch_get, _query_all
from crmsync.store.cursor import decode_cursor, encode_cursor

if TYPE_CHECKING:
    from mypy_boto3_dynamodb.service_resource import Table

TRANSACTION_MAX = 100


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
        expected_version: int | None,
        links: Sequence[LinkRecord],
        dropped: Sequence[LinkRecord],
    ) -> bool:
        """The thread (iff still at `expected_version`) and its links, in one transaction."""
        condition: dict[str, Any] = (
            {"ConditionExpression": "attribute_not_exists(PK)"}
            if expected_version is None
            else {
                "ConditionExpression": "version = :seen",
                "ExpressionAttributeValues": {":seen": expected_version},
            }
        )
        ops: list[Any] = [
            {"Put": {"TableName": self._table.name, "Item": self._thread_item(thread), **condition}}
        ]
        ops += [
            {"Put": {"TableName": self._table.name, "Item": self._link_item(thread, link)}}
            for link in links
        ]
        ops += [
            {"Delete": {"TableName": self._table.name, "Key": self._link_key(thread, link)}}
            for link in dropped
        ]
        return self._transact(ops)

    def delete_thread(self, thread: Thread, links: Sequence[LinkRecord]) -> bool:
        ops: list[Any] = [
            {
                "Delete": {
                    "TableName": self._table.name,
                    "Key": {
                        "PK": keys.thread_pk(thread.company_id, thread.id),
                        "SK": keys.THREAD_SK,
                    },
                    "ConditionExpression": "version = :seen",
                    "ExpressionAttributeValues": {":seen": thread.version},
                }
            }
        ]
        ops += [
            {"Delete": {"TableName": self._table.name, "Key": self._link_key(thread, link)}}
            for link in links
        ]
        return self._transact(ops)

    def _transact(self, ops: list[Any]) -> bool:
        try:
            for start in range(0, len(ops), TRANSACTION_MAX):
                self._client.transact_write_items(
                    TransactItems=ops[start : start + TRANSACTION_MAX]
                )
        except ClientError as exc:
            if _conflict(exc):
                return False
            raise
        return True

    def _thread_item(self, thread: Thread) -> dict[str, Any]:
        return {
            "PK": keys.thread_pk(thread.company_id, thread.id),
            "SK": keys.THREAD_SK,
            "GSI1PK": keys.account_threads_gsi1pk(thread.company_id, thread.account_id),
            "GSI1SK": f"{iso(thread.last_message_at)}#{thread.id}",
            "kind": "thread",
            "account_id": thread.account_id,
            "version": thread.version,
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
    def account_threads(
        self, company_id: str, account_id: str, limit: int, cursor: str | None
    ) -> Page[Thread]:
        partition = keys.account_threads_gsi1pk(company_id, account_id)
        items, next_cursor = self._newest_first("GSI1", partition, limit, cursor)
        threads = [Thread.model_validate(item["data"]) for item in items]
        return Page(items=threads, next_cursor=next_cursor)

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
