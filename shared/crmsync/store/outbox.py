"""DynamoDB and S3 adapters of the outbox (SPEC I2, I5); docs/dynamodb.md, "Outbox".

One item per outbox entry, written whole under its version (the state machine's guard);
a scheduled entry sits in the sparse PollDue index under a `SEND#NN` shard until it is
due. The rendered message and its files are one JSON object in the raw mail bucket."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from typing import TYPE_CHECKING, Any

from boto3.dynamodb.conditions import Key
from botocore.exceptions import ClientError

from crmsync.clock import iso
from crmsync.models.outbox import OutboxEntry, OutboxPayload
from crmsync.store import keys
from crmsync.store.account_items import POLL_DUE_INDEX

if TYPE_CHECKING:
    from mypy_boto3_dynamodb.service_resource import Table
    from mypy_boto3_s3 import S3Client


def _failed_condition(exc: ClientError) -> bool:
    return exc.response["Error"]["Code"] == "ConditionalCheckFailedException"


class DynamoOutboxStore:
    def __init__(self, table: Table, shard_count: int) -> None:
        self._table = table
        self._shards = shard_count

    def get(self, company_id: str, outbox_id: str) -> OutboxEntry | None:
        item = self._table.get_item(
            Key={"PK": keys.outbox_pk(company_id, outbox_id), "SK": keys.OUTBOX_SK},
            ConsistentRead=True,
        ).get("Item")
        return OutboxEntry.model_validate(item["data"]) if item else None

    def create(self, entry: OutboxEntry) -> bool:
        """False when an entry with this id exists (an Idempotency-Key seen before)."""
        try:
            self._table.put_item(
                Item=self._item(entry), ConditionExpression="attribute_not_exists(PK)"
            )
        except ClientError as exc:
            if _failed_condition(exc):
                return False
            raise
        return True

    def save(self, entry: OutboxEntry, seen_version: int) -> bool:
        """The entry iff still at `seen_version` (its `version` is the next one)."""
        try:
            self._table.put_item(
                Item=self._item(entry),
                ConditionExpression="version = :seen",
                ExpressionAttributeValues={":seen": seen_version},
            )
        except ClientError as exc:
            if _failed_condition(exc):
                return False
            raise
        return True

    def due(self, shard: int, now: datetime) -> Iterator[tuple[str, str]]:
        """(company id, outbox id) of scheduled sends whose time has come."""
        query: dict[str, Any] = {
            "IndexName": POLL_DUE_INDEX,
            "KeyConditionExpression": Key("poll_shard").eq(f"{keys.SEND_SHARD_PREFIX}{shard:02d}")
            & Key("next_poll_at").lte(iso(now)),
        }
        while True:
            page = self._table.query(**query)
            for item in page["Items"]:
                # The index projects the table keys, company_id and kind (not outbox_id).
                outbox_id = str(item["PK"]).rpartition("#OUTBOX#")[2]
                yield str(item["company_id"]), outbox_id
            if "LastEvaluatedKey" not in page:
                return
            query["ExclusiveStartKey"] = page["LastEvaluatedKey"]

    def _item(self, entry: OutboxEntry) -> dict[str, Any]:
        moment = entry.send_at or entry.created_at
        item: dict[str, Any] = {
            "PK": keys.outbox_pk(entry.company_id, entry.id),
            "SK": keys.OUTBOX_SK,
            "GSI1PK": keys.user_outbox_gsi1pk(entry.company_id, entry.user_id),
            "GSI1SK": f"{entry.status}#{iso(moment)}#{entry.id}",
            "kind": "outbox",
            "company_id": entry.company_id,
            "outbox_id": entry.id,
            "version": entry.version,
            "data": entry.model_dump(mode="json"),
        }
        if entry.status == "scheduled" and entry.send_at is not None:
            item["poll_shard"] = keys.send_shard(entry.id, self._shards)
            item["next_poll_at"] = iso(entry.send_at)
        return item


class S3OutboxPayloads:
    def __init__(self, client: S3Client, bucket: str) -> None:
        self._client = client
        self._bucket = bucket

    @staticmethod
    def key(company_id: str, account_id: str, outbox_id: str) -> str:
        return f"outbox/{company_id}/{account_id}/{outbox_id}.json"

    def put(self, key: str, payload: OutboxPayload) -> None:
        self._client.put_object(
            Bucket=self._bucket,
            Key=key,
            Body=payload.model_dump_json().encode(),
            ContentType="application/json",
        )

    def get(self, key: str) -> OutboxPayload:
        body = self._client.get_object(Bucket=self._bucket, Key=key)["Body"].read()
        return OutboxPayload.model_validate_json(body)
