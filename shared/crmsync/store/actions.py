"""DynamoDB adapter of pending mailbox actions (SPEC S9): items `ACTION#{id}` in the
account's partition, read in creation order and deleted once applied on the server."""

from __future__ import annotations

from typing import TYPE_CHECKING

from boto3.dynamodb.conditions import Key

from crmsync.models.actions import MailboxAction
from crmsync.store import keys
from crmsync.store.checkpoints import _query_all

if TYPE_CHECKING:
    from mypy_boto3_dynamodb.service_resource import Table


class DynamoMailboxActionStore:
    def __init__(self, table: Table) -> None:
        self._table = table

    def add(self, action: MailboxAction) -> None:
        self._table.put_item(
            Item={
                "PK": keys.account_pk(action.company_id, action.account_id),
                "SK": keys.mailbox_action_sk(action.id),
                "kind": "mailbox_action",
                "data": action.model_dump(mode="json"),
            }
        )

    def pending(self, company_id: str, account_id: str) -> list[MailboxAction]:
        items = _query_all(
            self._table,
            KeyConditionExpression=Key("PK").eq(keys.account_pk(company_id, account_id))
            & Key("SK").begins_with(keys.MAILBOX_ACTION_PREFIX),
            ConsistentRead=True,
        )
        return [MailboxAction.model_validate(item["data"]) for item in items]

    def done(self, action: MailboxAction) -> None:
        self._table.delete_item(
            Key={
                "PK": keys.account_pk(action.company_id, action.account_id),
                "SK": keys.mailbox_action_sk(action.id),
            }
        )
