"""Tracking in the main table (docs/dynamodb.md, "Tracking"): one partition per tracked
message, `PK=COMPANY#{c}#TRACK#{m}`, holding the registered message (`MESSAGE`), one item
per hit (`HIT#{iso(at)}#{id}`, expiring after HIT_RETENTION) and one first-open marker per
recipient (`OPENED#{recipient}`, a conditional put: exactly one `message.opened` each).

Written against the low-level DynamoDB client, not the boto3 resource: the public tracking
function builds this on its cold start, and the resource layer costs tens of milliseconds
more to create. Client errors reach the service as TrackingStoreError.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from boto3.dynamodb.types import TypeDeserializer, TypeSerializer
from botocore.exceptions import BotoCoreError, ClientError

from crmsync.clock import iso
from crmsync.store import keys
from crmsync.tracking.models import TrackedMessage, TrackingHit
from crmsync.tracking.service import TrackingStoreError

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient

HIT_RETENTION = timedelta(days=365)
_serializer = TypeSerializer()
_deserializer = TypeDeserializer()


def _map(data: dict[str, Any]) -> Any:
    return _serializer.serialize(data)


def _plain(value: Any) -> Any:
    return _deserializer.deserialize(value)


@contextmanager
def _store_errors() -> Iterator[None]:
    try:
        yield
    except (ClientError, BotoCoreError) as exc:
        raise TrackingStoreError(str(exc)) from exc


class DynamoTrackingStore:
    def __init__(self, client: DynamoDBClient, table_name: str) -> None:
        self._client = client
        self._table = table_name

    def register(self, message: TrackedMessage) -> None:
        """A plain put: registering the same message again (a retried send) is harmless,
        and its hits are items of their own."""
        with _store_errors():
            self._client.put_item(
                TableName=self._table,
                Item={
                    "PK": {"S": keys.tracking_pk(message.company_id, message.message_key)},
                    "SK": {"S": keys.TRACKED_MESSAGE_SK},
                    "kind": {"S": "tracked_message"},
                    "data": _map(message.model_dump(mode="json")),
                },
            )

    def registered(self, company_id: str, message_key: str) -> TrackedMessage | None:
        with _store_errors():
            reply = self._client.get_item(
                TableName=self._table,
                Key={
                    "PK": {"S": keys.tracking_pk(company_id, message_key)},
                    "SK": {"S": keys.TRACKED_MESSAGE_SK},
                },
                ConsistentRead=True,  # a click right after sending must not 404
                ProjectionExpression="#d",
                ExpressionAttributeNames={"#d": "data"},
            )
        item = reply.get("Item")
        return TrackedMessage.model_validate(_plain(item["data"])) if item else None

    def add_hit(self, company_id: str, message_key: str, hit: TrackingHit) -> None:
        expires = int((hit.at + HIT_RETENTION).timestamp())
        with _store_errors():
            self._client.put_item(
                TableName=self._table,
                Item={
                    "PK": {"S": keys.tracking_pk(company_id, message_key)},
                    "SK": {"S": keys.tracking_hit_sk(iso(hit.at), uuid.uuid4().hex[:12])},
                    "kind": {"S": "tracking_hit"},
                    "data": _map(hit.model_dump(mode="json")),
                    "expires_at": {"N": str(expires)},
                },
            )

    def mark_first_open(
        self, company_id: str, message_key: str, recipient: str, at: datetime
    ) -> bool:
        try:
            self._client.put_item(
                TableName=self._table,
                Item={
                    "PK": {"S": keys.tracking_pk(company_id, message_key)},
                    "SK": {"S": keys.first_open_sk(recipient)},
                    "kind": {"S": "first_open"},
                    "at": {"S": iso(at)},
                },
                ConditionExpression="attribute_not_exists(PK)",
            )
        except ClientError as exc:
            if exc.response["Error"]["Code"] == "ConditionalCheckFailedException":
                return False
            raise TrackingStoreError(str(exc)) from exc
        except BotoCoreError as exc:
            raise TrackingStoreError(str(exc)) from exc
        return True

    def partition(
        self, company_id: str, message_key: str
    ) -> tuple[TrackedMessage | None, list[TrackingHit]]:
        request: dict[str, Any] = {
            "TableName": self._table,
            "KeyConditionExpression": "PK = :pk",
            "ExpressionAttributeValues": {":pk": {"S": keys.tracking_pk(company_id, message_key)}},
            "ConsistentRead": True,
        }
        message: TrackedMessage | None = None
        hits: list[TrackingHit] = []
        with _store_errors():
            while True:
                page = self._client.query(**request)
                for item in page.get("Items", []):
                    sort_key = item["SK"]["S"]
                    if sort_key == keys.TRACKED_MESSAGE_SK:
                        message = TrackedMessage.model_validate(_plain(item["data"]))
                    elif sort_key.startswith(keys.TRACKING_HIT_PREFIX):
                        hits.append(TrackingHit.model_validate(_plain(item["data"])))
                last = page.get("LastEvaluatedKey")
                if not last:
                    return message, hits
                request["ExclusiveStartKey"] = last
