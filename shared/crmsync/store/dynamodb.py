"""DynamoDB adapters for accounts and sync runs."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from typing import TYPE_CHECKING, Any

from boto3.dynamodb.conditions import Key
from botocore.exceptions import ClientError

from crmsync.clock import iso
from crmsync.models.accounts import MailAccount
from crmsync.models.pages import Page
from crmsync.models.sync import SyncRun
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
from crmsync.store.cursor import decode_cursor, encode_cursor

if TYPE_CHECKING:
    from mypy_boto3_dynamodb.service_resource import Table

SYNC_RUN_TTL_SECONDS = 30 * 24 * 3600
RETENTION_MARKER_KIND = "retention_marker"


class DynamoAccountRepository:
    def __init__(self, table: Table) -> None:
        self._table = table

    def get(self, company_id: str, account_id: str) -> MailAccount | None:
        item = self._table.get_item(
            Key={"PK": keys.account_pk(company_id, account_id), "SK": keys.ACCOUNT_SK},
            ConsistentRead=True,
        ).get("Item")
        return MailAccount.model_validate(item["data"]) if item else None

    def put(self, account: MailAccount, shard_count: int) -> None:
        self._table.put_item(Item=self._item(account, shard_count))

    def create(
        self, account: MailAccount, shard_count: int, credentials: dict[str, Any] | None
    ) -> None:
        """Account and its sealed credentials in one transaction; never overwrites.

        The table resource's client serialises Python values itself (boto3 injects it)."""
        pk = keys.account_pk(account.company_id, account.id)
        writes: list[Any] = [
            {
                "Put": {
                    "TableName": self._table.name,
                    "Item": self._item(account, shard_count),
                    "ConditionExpression": "attribute_not_exists(PK)",
                }
            }
        ]
        if credentials is not None:
            writes.append(
                {
                    "Put": {
                        "TableName": self._table.name,
                        "Item": {"PK": pk, "SK": keys.CREDENTIALS_SK, "sealed": credentials},
                    }
                }
            )
        self._table.meta.client.transact_write_items(TransactItems=writes)

    def save(self, account: MailAccount, shard_count: int, expected_version: int) -> bool:
        """Replace the account iff nobody else saved it since we read it."""
        updated = account.model_copy(update={"version": expected_version + 1})
        return put_if_version(self._table, self._item(updated, shard_count), expected_version)

    def save_credentials(self, company_id: str, account_id: str, sealed: dict[str, Any]) -> None:
        save_sealed(self._table, keys.account_pk(company_id, account_id), sealed)

    def load_credentials(self, company_id: str, account_id: str) -> dict[str, Any] | None:
        return load_sealed(self._table, keys.account_pk(company_id, account_id))

    def list_for_user(self, company_id: str, user_id: str) -> list[MailAccount]:
        return self._query_index("GSI1", "GSI1PK", keys.user_accounts_gsi1pk(company_id, user_id))

    def list_for_company(self, company_id: str) -> list[MailAccount]:
        return self._query_index("GSI2", "GSI2PK", keys.company_accounts_gsi2pk(company_id))

    def _query_index(self, index: str, key: str, value: str) -> list[MailAccount]:
        return [
            MailAccount.model_validate(data) for data in index_data(self._table, index, key, value)
        ]

    def delete(
        self, company_id: str, account_id: str, shard_count: int, removed_at: datetime
    ) -> int:
        """Remove the account, its credentials and its sync state (the whole account
        partition). Synced mail lives in its own partitions and stays until the retention
        sweep purges it: the marker written first keys that purge (SPEC E6, E7)."""
        self._table.put_item(
            Item={
                "PK": keys.retention_pk(company_id),
                "SK": keys.retention_marker_sk(account_id),
                "kind": RETENTION_MARKER_KIND,
                "account_id": account_id,
                "company_id": company_id,
                "poll_shard": keys.purge_shard(account_id, shard_count),
                "next_poll_at": iso(removed_at),
            }
        )
        pk = keys.account_pk(company_id, account_id)
        query: dict[str, Any] = {
            "KeyConditionExpression": Key("PK").eq(pk),
            "ProjectionExpression": "PK, SK",
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

    def _item(self, account: MailAccount, shard_count: int) -> dict[str, Any]:
        item: dict[str, Any] = {
            "PK": keys.account_pk(account.company_id, account.id),
            "SK": keys.ACCOUNT_SK,
            "GSI1PK": keys.user_accounts_gsi1pk(account.company_id, account.user_id),
            "GSI1SK": f"ACCOUNT#{account.id}",
            "GSI2PK": keys.company_accounts_gsi2pk(account.company_id),
            "GSI2SK": f"ACCOUNT#{account.id}",
            "kind": "mail_account",
            "account_id": account.id,
            "company_id": account.company_id,
            "data": account.model_dump(mode="json"),
        }
        inactive_since = account.inactive_since
        if account.state.polls and account.next_poll_at is not None:
            # Sparse index: only accounts that poll carry the PollDue keys.
            item["poll_shard"] = keys.poll_shard(account.id, shard_count)
            item["next_poll_at"] = iso(account.next_poll_at)
        elif inactive_since is not None:
            # The retention sweep's shards; the sort key is when the 30-day clock started.
            item["poll_shard"] = keys.purge_shard(account.id, shard_count)
            item["next_poll_at"] = iso(inactive_since)
        return item

    def due(self, shard: int, now: datetime) -> Iterator[DueAccount]:
        return due_accounts(self._table, f"{shard:02d}", now)

    def claim_poll(self, due: DueAccount, lease_until: datetime) -> bool:
        try:
            self._table.update_item(
                Key={"PK": keys.account_pk(due.company_id, due.account_id), "SK": keys.ACCOUNT_SK},
                UpdateExpression="SET next_poll_at = :lease",
                ConditionExpression="next_poll_at = :seen AND attribute_exists(poll_shard) "
                "AND NOT begins_with(poll_shard, :purge)",
                ExpressionAttributeValues={
                    ":lease": iso(lease_until),
                    ":seen": due.next_poll_at,
                    ":purge": keys.PURGE_SHARD_PREFIX,
                },
            )
        except ClientError as exc:
            if conditional_failed(exc):
                return False
            raise
        return True

    def finish_poll(
        self, company_id: str, account_id: str, synced_at: datetime, next_poll_at: datetime
    ) -> None:
        try:
            self._table.update_item(
                Key={"PK": keys.account_pk(company_id, account_id), "SK": keys.ACCOUNT_SK},
                UpdateExpression="SET next_poll_at = :next, #d.last_synced_at = :synced, "
                "#d.next_poll_at = :next_json",
                ConditionExpression="attribute_exists(poll_shard) "
                "AND NOT begins_with(poll_shard, :purge)",
                ExpressionAttributeNames={"#d": "data"},
                ExpressionAttributeValues={
                    ":purge": keys.PURGE_SHARD_PREFIX,
                    ":next": iso(next_poll_at),
                    ":synced": synced_at.isoformat(),
                    ":next_json": next_poll_at.isoformat(),
                },
            )
        except ClientError as exc:
            # The account stopped polling while it synced: leave it out of the index (or in
            # the retention shards, where a poll time would restart its clock).
            if not conditional_failed(exc):
                raise


class DynamoSyncRunRepository:
    def __init__(self, table: Table) -> None:
        self._table = table

    def record(self, company_id: str, run: SyncRun) -> bool:
        try:
            self._table.put_item(
                Item={
                    "PK": keys.account_pk(company_id, run.account_id),
                    "SK": keys.sync_run_sk(iso(run.enqueued_at), run.id),
                    "kind": "sync_run",
                    "data": run.model_dump(mode="json"),
                    "expires_at": int(run.finished_at.timestamp()) + SYNC_RUN_TTL_SECONDS,
                },
                ConditionExpression="attribute_not_exists(PK)",
            )
        except ClientError as exc:
            if conditional_failed(exc):
                return False
            raise
        return True

    def list(
        self, company_id: str, account_id: str, limit: int, cursor: str | None
    ) -> Page[SyncRun]:
        pk = keys.account_pk(company_id, account_id)
        query: dict[str, Any] = {
            "KeyConditionExpression": Key("PK").eq(pk)
            & Key("SK").begins_with(keys.SYNC_RUN_PREFIX),
            "ScanIndexForward": False,
            "Limit": limit,
        }
        start = decode_cursor(cursor, pk)
        if start:
            query["ExclusiveStartKey"] = start
        page = self._table.query(**query)
        return Page[SyncRun](
            items=[SyncRun.model_validate(item["data"]) for item in page["Items"]],
            next_cursor=encode_cursor(page.get("LastEvaluatedKey")),
        )
