"""What the mail and the calendar account stores do alike: a whole-item write guarded by
the account's version, the sealed credentials item beside it, and a list read from an
index. Each store keeps its own keys and models."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from typing import TYPE_CHECKING, Any

from boto3.dynamodb.conditions import Key
from botocore.exceptions import ClientError

from crmsync.clock import iso
from crmsync.ports import DueAccount
from crmsync.store import keys

POLL_DUE_INDEX = "PollDue"

if TYPE_CHECKING:
    from mypy_boto3_dynamodb.service_resource import Table


def conditional_failed(exc: ClientError) -> bool:
    return bool(exc.response["Error"]["Code"] == "ConditionalCheckFailedException")


def put_if_version(table: Table, item: dict[str, Any], expected_version: int) -> bool:
    """Replace the account item iff its stored `data.version` is still `expected_version`."""
    try:
        table.put_item(
            Item=item,
            ConditionExpression="#d.version = :v",
            ExpressionAttributeNames={"#d": "data"},
            ExpressionAttributeValues={":v": expected_version},
        )
    except ClientError as exc:
        if conditional_failed(exc):
            return False
        raise
    return True


def save_sealed(table: Table, pk: str, sealed: dict[str, Any]) -> None:
    """The sealed password, only beside an account that exists."""
    table.put_item(
        Item={"PK": pk, "SK": keys.CREDENTIALS_SK, "sealed": sealed},
        ConditionExpression="attribute_exists(PK)",
    )


def load_sealed(table: Table, pk: str) -> dict[str, Any] | None:
    item = table.get_item(Key={"PK": pk, "SK": keys.CREDENTIALS_SK}, ConsistentRead=True).get(
        "Item"
    )
    return dict(item["sealed"]) if item else None  # type: ignore[arg-type]


def index_data(table: Table, index: str, key: str, value: str) -> list[dict[str, Any]]:
    """The `data` of every item of one index partition, following every page."""
    query: dict[str, Any] = {"IndexName": index, "KeyConditionExpression": Key(key).eq(value)}
    found: list[dict[str, Any]] = []
    while True:
        page = table.query(**query)
        found += [item["data"] for item in page["Items"]]  # type: ignore[misc]
        if "LastEvaluatedKey" not in page:
            return found
        query["ExclusiveStartKey"] = page["LastEvaluatedKey"]


def due_accounts(table: Table, shard_key: str, now: datetime) -> Iterator[DueAccount]:
    """Accounts of one PollDue shard whose poll time has come (mail `NN`, calendar
    `CAL#NN`), following every page; the index projects ids and `next_poll_at`."""
    query: dict[str, Any] = {
        "IndexName": POLL_DUE_INDEX,
        "KeyConditionExpression": Key("poll_shard").eq(shard_key)
        & Key("next_poll_at").lte(iso(now)),
    }
    while True:
        page = table.query(**query)
        for item in page["Items"]:
            yield DueAccount(
                account_id=str(item["account_id"]),
                company_id=str(item["company_id"]),
                next_poll_at=str(item["next_poll_at"]),
            )
        if "LastEvaluatedKey" not in page:
            return
        query["ExclusiveStartKey"] = page["LastEvaluatedKey"]
