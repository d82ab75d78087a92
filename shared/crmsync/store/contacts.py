"""The directory as the linker sees it: who owns an address, and persons' open deals.

Reads the address-owner items and the deals-of-a-person index of `store/directory.py`."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from boto3.dynamodb.conditions import Key

from crmsync.models.deals import Deal
from crmsync.ports import AddressOwner
from crmsync.store.checkpoints import _query_all
from crmsync.store.directory import address_pk, person_deals_gsi2pk

if TYPE_CHECKING:
    from mypy_boto3_dynamodb.service_resource import Table


class DynamoContactDirectory:
    """Answers are cached for the life of the object: one processor batch."""

    def __init__(self, table: Table) -> None:
        self._table = table
        self._owners: dict[tuple[str, str], AddressOwner | None] = {}
        self._deals: dict[tuple[str, str], list[Deal]] = {}

    def address_owners(self, company_id: str, addresses: Sequence[str]) -> dict[str, AddressOwner]:
        found: dict[str, AddressOwner] = {}
        for address in dict.fromkeys(addresses):
            cache_key = (company_id, address)
            if cache_key not in self._owners:
                self._owners[cache_key] = self._owner(company_id, address)
            owner = self._owners[cache_key]
            if owner is not None:
                found[address] = owner
        return found

    def _owner(self, company_id: str, address: str) -> AddressOwner | None:
        items = _query_all(
            self._table, KeyConditionExpression=Key("PK").eq(address_pk(company_id, address))
        )
        if not items:
            return None
        persons = sorted(
            str(item["SK"]).removeprefix("PERSON#")
            for item in items
            if str(item["SK"]).startswith("PERSON#")
        )
        user = any(str(item["SK"]).startswith("USER#") for item in items)
        return AddressOwner(person_ids=persons, user=user)

    def open_deals(self, company_id: str, person_ids: Sequence[str]) -> list[Deal]:
        deals: dict[str, Deal] = {}
        for person_id in dict.fromkeys(person_ids):
            cache_key = (company_id, person_id)
            if cache_key not in self._deals:
                items = _query_all(
                    self._table,
                    IndexName="GSI2",
                    KeyConditionExpression=Key("GSI2PK").eq(
                        person_deals_gsi2pk(company_id, person_id)
                    )
                    & Key("GSI2SK").begins_with("open#"),
                )
                self._deals[cache_key] = [Deal.model_validate(item["data"]) for item in items]
            deals.update({deal.id: deal for deal in self._deals[cache_key]})
        return list(deals.values())
