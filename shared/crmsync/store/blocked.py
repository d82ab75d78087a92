"""Blocked addresses of a user (SPEC S8): `PK=COMPANY#{c}#USER#{u}`, `SK=BLOCK#{address}`."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from boto3.dynamodb.conditions import Key
from botocore.exceptions import ClientError

from crmsync.models.mail import BlockedAddress
from crmsync.store import keys
from crmsync.store.checkpoints import _batch_get, _query_all

if TYPE_CHECKING:
    from mypy_boto3_dynamodb.service_resource import Table


class DynamoBlockedAddressStore:
    def __init__(self, table: Table) -> None:
        self._table = table

    def blocked_among(self, company_id: str, user_id: str, addresses: Sequence[str]) -> set[str]:
        """One BatchGetItem for the addresses and their domains."""
        wanted: dict[str, list[str]] = {}
        for address in dict.fromkeys(addresses):
            domain = "@" + address.rpartition("@")[2]
            wanted.setdefault(address, []).append(address)
            wanted.setdefault(domain, []).append(address)
        pk = keys.user_pk(company_id, user_id)
        items = _batch_get(
            self._table, [{"PK": pk, "SK": keys.block_sk(entry)} for entry in wanted]
        )
        hits = {str(item["SK"]).removeprefix(keys.BLOCK_PREFIX) for item in items}
        return {address for entry in hits for address in wanted.get(entry, [])}

    def list(self, company_id: str, user_id: str) -> list[BlockedAddress]:
        items = _query_all(
            self._table,
            KeyConditionExpression=Key("PK").eq(keys.user_pk(company_id, user_id))
            & Key("SK").begins_with(keys.BLOCK_PREFIX),
        )
        return [BlockedAddress.model_validate(item["data"]) for item in items]

    def add(self, company_id: str, user_id: str, entry: BlockedAddress) -> bool:
        try:
            self._table.put_item(
                Item={
                    "PK": keys.user_pk(company_id, user_id),
                    "SK": keys.block_sk(entry.address),
                    "kind": "blocked_address",
                    "data": entry.model_dump(mode="json"),
                },
                ConditionExpression="attribute_not_exists(PK)",
            )
        except ClientError as exc:
            if exc.response["Error"]["Code"] == "ConditionalCheckFailedException":
                return False
            raise
        return True

    def remove(self, company_id: str, user_id: str, address: str) -> bool:
        reply = self._table.delete_item(
            Key={"PK": keys.user_pk(company_id, user_id), "SK": keys.block_sk(address)},
            ReturnValues="ALL_OLD",
        )
        return "Attributes" in reply
