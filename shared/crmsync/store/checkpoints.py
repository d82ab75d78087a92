"""DynamoDB adapter of folder checkpoints and UID maps (docs/dynamodb.md, "Mail")."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from boto3.dynamodb.conditions import Key
from botocore.exceptions import ClientError

from crmsync.models.mail import FolderCheckpoint, UidEntry
from crmsync.ports import CheckpointConflict
from crmsync.store import keys

if TYPE_CHECKING:
    from mypy_boto3_dynamodb.service_resource import Table

BATCH_GET_MAX = 100


class DynamoCheckpointStore:
    def __init__(self, table: Table) -> None:
        self._table = table

    def checkpoints(self, company_id: str, account_id: str) -> dict[str, FolderCheckpoint]:
        found: dict[str, FolderCheckpoint] = {}
        for item in _query_all(
            self._table,
            KeyConditionExpression=Key("PK").eq(keys.account_pk(company_id, account_id))
            & Key("SK").begins_with(keys.FOLDER_PREFIX),
            ConsistentRead=True,
        ):
            checkpoint = FolderCheckpoint.model_validate(item["data"])
            found[checkpoint.folder] = checkpoint
        return found

    def save_checkpoint(
        self, company_id: str, account_id: str, checkpoint: FolderCheckpoint
    ) -> FolderCheckpoint:
        saved = checkpoint.model_copy(update={"version": checkpoint.version + 1})
        guard: dict[str, Any] = (
            {"ConditionExpression": "attribute_not_exists(PK)"}
            if checkpoint.version == 0
            else {
                "ConditionExpression": "version = :seen",
                "ExpressionAttributeValues": {":seen": checkpoint.version},
            }
        )
        try:
            self._table.put_item(
                Item={
                    "PK": keys.account_pk(company_id, account_id),
                    "SK": keys.folder_sk(checkpoint.folder_id),
                    "kind": "folder_checkpoint",
                    "version": saved.version,
                    "data": saved.model_dump(mode="json"),
                },
                **guard,
            )
        except ClientError as exc:
            if exc.response["Error"]["Code"] == "ConditionalCheckFailedException":
                raise CheckpointConflict(checkpoint.folder) from exc
            raise
        return saved

    def uid_entries(
        self,
        company_id: str,
        account_id: str,
        folder_id: str,
        uidvalidity: int,
        uids: Sequence[int] | None = None,
    ) -> dict[int, UidEntry]:
        pk = keys.uid_map_pk(company_id, account_id, folder_id)
        if uids is None:
            items = _query_all(
                self._table,
                KeyConditionExpression=Key("PK").eq(pk)
                & Key("SK").begins_with(keys.uid_prefix(uidvalidity)),
                ConsistentRead=True,
            )
        else:
            items = _batch_get(
                self._table, [{"PK": pk, "SK": keys.uid_sk(uidvalidity, uid)} for uid in uids]
            )
        entries = (UidEntry.model_validate(item["data"]) for item in items)
        return {entry.uid: entry for entry in entries}

    def put_uid_entries(
        self,
        company_id: str,
        account_id: str,
        folder_id: str,
        uidvalidity: int,
        entries: Sequence[UidEntry],
    ) -> None:
        pk = keys.uid_map_pk(company_id, account_id, folder_id)
        with self._table.batch_writer(overwrite_by_pkeys=["PK", "SK"]) as batch:
            for entry in entries:
                batch.put_item(
                    Item={
                        "PK": pk,
                        "SK": keys.uid_sk(uidvalidity, entry.uid),
                        "kind": "uid_entry",
                        "data": entry.model_dump(mode="json"),
                    }
                )

    def delete_uid_entries(
        self,
        company_id: str,
        account_id: str,
        folder_id: str,
        uidvalidity: int,
        uids: Sequence[int],
    ) -> None:
        pk = keys.uid_map_pk(company_id, account_id, folder_id)
        with self._table.batch_writer(overwrite_by_pkeys=["PK", "SK"]) as batch:
            for uid in uids:
                batch.delete_item(Key={"PK": pk, "SK": keys.uid_sk(uidvalidity, uid)})


def _query_all(table: Table, **request: Any) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = []
    while True:
        page = table.query(**request)
        items.extend(page.get("Items", []))
        last = page.get("LastEvaluatedKey")
        if not last:
            return items
        request["ExclusiveStartKey"] = last


def _batch_get(table: Table, wanted: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """BatchGetItem in chunks of 100, retrying the keys DynamoDB left unprocessed."""
    resource = table.meta.client
    found: list[dict[str, Any]] = []
    for start in range(0, len(wanted), BATCH_GET_MAX):
        request: dict[str, Any] = {
            table.name: {"Keys": wanted[start : start + BATCH_GET_MAX], "ConsistentRead": True}
        }
        while request:
            reply = resource.batch_get_item(RequestItems=request)
            found.extend(_plain(item) for item in reply["Responses"].get(table.name, []))
            request = reply.get("UnprocessedKeys") or {}
    return found


def _plain(item: Any) -> dict[str, Any]:
    return dict(item)
