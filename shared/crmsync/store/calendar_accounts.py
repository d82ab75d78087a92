"""DynamoDB adapter for calendar accounts (SPEC C1, C7): the account item, its sealed
credentials, versioned saves, and the `CAL#NN` shards of the PollDue index the calendar
dispatcher reads."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from typing import TYPE_CHECKING, Any

from boto3.dynamodb.conditions import Key
from botocore.exceptions import ClientError

from crmsync.clock import iso
from crmsync.models.calendar import CalendarAccount
from crmsync.ports import DueAccount
from crmsync.store import keys
from crmsync.store.account_items import (
    conditional_failed,
    due_accounts,
    index_data,
    load_sealed,
    put_if_version,
    save_sealed,
)

if TYPE_CHECKING:
    from mypy_boto3_dynamodb.service_resource import Table

CALENDAR_ACCOUNT_KIND = "calendar_account"


def polls(account: CalendarAccount) -> bool:
    """Whether the account belongs in the dispatcher's shards: a polling state, a calendar
    to sync, and a time. Anything else leaves the sparse index."""
    return (
        account.state.polls and account.calendar_id is not None and account.next_poll_at is not None
    )


class DynamoCalendarAccountRepository:
    def __init__(self, table: Table, shard_count: int) -> None:
        self._table = table
        self._shards = shard_count

    def get(self, company_id: str, account_id: str) -> CalendarAccount | None:
        item = self._table.get_item(
            Key={
                "PK": keys.calendar_account_pk(company_id, account_id),
                "SK": keys.CALENDAR_ACCOUNT_SK,
            },
            ConsistentRead=True,
        ).get("Item")
        return CalendarAccount.model_validate(item["data"]) if item else None

    def create(self, account: CalendarAccount, credentials: dict[str, Any]) -> None:
        """The account and its sealed credentials in one transaction; never overwrites."""
        pk = keys.calendar_account_pk(account.company_id, account.id)
        self._table.meta.client.transact_write_items(
            TransactItems=[
                {
                    "Put": {
                        "TableName": self._table.name,
                        "Item": self._item(account),
                        "ConditionExpression": "attribute_not_exists(PK)",
                    }
                },
                {
                    "Put": {
                        "TableName": self._table.name,
                        "Item": {"PK": pk, "SK": keys.CREDENTIALS_SK, "sealed": credentials},
                    }
                },
            ]
        )

    def save(self, account: CalendarAccount, expected_version: int) -> bool:
        """Replace the account iff nobody saved it since it was read at `expected_version`;
        stored with the version bumped by one. The PollDue keys follow `data`: a save writes
        `next_poll_at` as the account has it (a claim moves only the index key)."""
        updated = account.model_copy(update={"version": expected_version + 1})
        return put_if_version(self._table, self._item(updated), expected_version)

    def save_credentials(self, company_id: str, account_id: str, sealed: dict[str, Any]) -> None:
        save_sealed(self._table, keys.calendar_account_pk(company_id, account_id), sealed)

    def load_credentials(self, company_id: str, account_id: str) -> dict[str, Any] | None:
        return load_sealed(self._table, keys.calendar_account_pk(company_id, account_id))

    def list_for_user(self, company_id: str, user_id: str) -> list[CalendarAccount]:
        return self._query_index(
            "GSI1", "GSI1PK", keys.user_calendar_accounts_gsi1pk(company_id, user_id)
        )

    def list_for_company(self, company_id: str) -> list[CalendarAccount]:
        return self._query_index(
            "GSI2", "GSI2PK", keys.company_calendar_accounts_gsi2pk(company_id)
        )

    def _query_index(self, index: str, key: str, value: str) -> list[CalendarAccount]:
        return [
            CalendarAccount.model_validate(data)
            for data in index_data(self._table, index, key, value)
        ]

    def delete(self, company_id: str, account_id: str) -> int:
        """Remove the whole account partition: the account, its credentials and whatever sync
        state the calendar sync keeps there. How many items went."""
        pk = keys.calendar_account_pk(company_id, account_id)
        query: dict[str, Any] = {
            "KeyConditionExpression": Key("PK").eq(pk),
            "ProjectionExpression": "PK, SK",
            "ConsistentRead": True,
        }
        removed = 0
        with self._table.batch_writer() as batch:
            while True:
                page = self._table.query(**query)
                for item in page["Items"]:
                    batch.delete_item(Key={"PK": item["PK"], "SK": item["SK"]})
                    removed += 1
                if "LastEvaluatedKey" not in page:
                    break
                query["ExclusiveStartKey"] = page["LastEvaluatedKey"]
        return removed

    # -- the calendar dispatcher ---------------------------------------------------------
    def due(self, shard: int, now: datetime) -> Iterator[DueAccount]:
        """Accounts of shard `CAL#{shard:02d}` whose poll time has come."""
        return due_accounts(self._table, f"{keys.CALENDAR_SHARD_PREFIX}{shard:02d}", now)

    def claim(self, due: DueAccount, lease_until: datetime) -> bool:
        """Move the index's next_poll_at to the lease iff it still holds the value seen: of
        two dispatchers (or ticks) that saw the account, one wins. The account's data and
        version are untouched, so the claim never makes a user's change conflict."""
        try:
            self._table.update_item(
                Key={
                    "PK": keys.calendar_account_pk(due.company_id, due.account_id),
                    "SK": keys.CALENDAR_ACCOUNT_SK,
                },
                UpdateExpression="SET next_poll_at = :lease",
                ConditionExpression="next_poll_at = :seen AND begins_with(poll_shard, :cal)",
                ExpressionAttributeValues={
                    ":lease": iso(lease_until),
                    ":seen": due.next_poll_at,
                    ":cal": keys.CALENDAR_SHARD_PREFIX,
                },
            )
        except ClientError as exc:
            if conditional_failed(exc):
                return False
            raise
        return True

    def finish_poll(self, company_id: str, account_id: str, next_poll_at: datetime) -> bool:
        """Reschedule an account that still polls (index key and `data.next_poll_at`),
        without a version bump; False (nothing written) when it stopped polling meanwhile."""
        try:
            self._table.update_item(
                Key={
                    "PK": keys.calendar_account_pk(company_id, account_id),
                    "SK": keys.CALENDAR_ACCOUNT_SK,
                },
                UpdateExpression="SET next_poll_at = :next, #d.next_poll_at = :next_json",
                ConditionExpression="begins_with(poll_shard, :cal)",
                ExpressionAttributeNames={"#d": "data"},
                ExpressionAttributeValues={
                    ":next": iso(next_poll_at),
                    ":next_json": next_poll_at.isoformat(),
                    ":cal": keys.CALENDAR_SHARD_PREFIX,
                },
            )
        except ClientError as exc:
            if conditional_failed(exc):
                return False
            raise
        return True

    def _item(self, account: CalendarAccount) -> dict[str, Any]:
        item: dict[str, Any] = {
            "PK": keys.calendar_account_pk(account.company_id, account.id),
            "SK": keys.CALENDAR_ACCOUNT_SK,
            "GSI1PK": keys.user_calendar_accounts_gsi1pk(account.company_id, account.user_id),
            "GSI1SK": f"CALACCOUNT#{account.id}",
            "GSI2PK": keys.company_calendar_accounts_gsi2pk(account.company_id),
            "GSI2SK": f"CALACCOUNT#{account.id}",
            "kind": CALENDAR_ACCOUNT_KIND,
            "account_id": account.id,
            "company_id": account.company_id,
            "data": account.model_dump(mode="json"),
        }
        if account.next_poll_at is not None and polls(account):
            item["poll_shard"] = keys.calendar_poll_shard(account.id, self._shards)
            item["next_poll_at"] = iso(account.next_poll_at)
        return item
