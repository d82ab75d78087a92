"""DynamoDB adapter of templates and signatures. Key design: docs/dynamodb.md, "Templates and
signatures".

A template is two items under `PK=COMPANY#{c}#TEMPLATE#{t}`: `SK=TEMPLATE` holds what a list
shows (name, subject, owner, visibility) with the list keys (GSI1: newest update first, GSI2:
by name), `SK=BODY` holds html and text. Lists read the small items only; both are written in
one transaction under the template's `version`.

Signatures live in their user's partition `COMPANY#{c}#USER#{u}`: `SIGNATURE#{s}` each, and
`SIGNATURES`, the pointer to the default one, with its own version: one Query
(`begins_with(SK, "SIGNATURE")`) reads them all.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, cast

from boto3.dynamodb.conditions import Key
from botocore.exceptions import ClientError

from crmsync.clock import iso
from crmsync.errors import ConflictError, ValidationFailedError
from crmsync.models.pages import Page
from crmsync.models.templates import (
    DefaultChange,
    DefaultSignature,
    Signature,
    SignatureSet,
    Template,
    TemplateOrder,
    TemplateSummary,
)
from crmsync.store import keys
from crmsync.store.checkpoints import _query_all
from crmsync.store.cursor import decode_cursor, encode_cursor

if TYPE_CHECKING:
    from mypy_boto3_dynamodb.service_resource import Table

TEMPLATE_SK = "TEMPLATE"
BODY_SK = "BODY"
SIGNATURE_PREFIX = "SIGNATURE#"
DEFAULT_SIGNATURE_SK = "SIGNATURES"
MAX_READS_PER_PAGE = 8
"""Query calls one page may spend skipping templates the caller may not read."""
READ_ATTEMPTS = 3
"""A template read between the two puts of a write (versions differ) is read again."""
NAME_KEY_LENGTH = 100
_NAME_END = "\x1f"
"""Ends the name in the by-name sort key: below every character a name may hold, so a name
sorts before its longer extensions ("Offer" before "Offer 2")."""


def template_pk(company_id: str, template_id: str) -> str:
    return f"COMPANY#{company_id}#TEMPLATE#{template_id}"


def company_templates_pk(company_id: str) -> str:
    """The list partition of GSI1 (by update) and GSI2 (by name)."""
    return f"COMPANY#{company_id}#TEMPLATES"


def signature_sk(signature_id: str) -> str:
    return f"{SIGNATURE_PREFIX}{signature_id}"


def name_key(name: str) -> str:
    """Case-insensitive order; control characters (never in a valid name) dropped."""
    folded = "".join(c for c in name.casefold() if c >= " ")
    return folded[:NAME_KEY_LENGTH]


_INDEX = {"updated": "GSI1", "name": "GSI2"}


def _conflict(exc: ClientError) -> bool:
    code = exc.response["Error"]["Code"]
    reasons = {r.get("Code") for r in exc.response.get("CancellationReasons", [])}
    return code == "ConditionalCheckFailedException" or bool(
        {"ConditionalCheckFailed", "TransactionConflict"} & reasons
    )


@dataclass(frozen=True)
class _Writer:
    table: Table

    def transact(self, ops: list[dict[str, Any]], conflict: str) -> None:
        try:
            self.table.meta.client.transact_write_items(TransactItems=ops)  # type: ignore[arg-type]
        except ClientError as exc:
            if _conflict(exc):
                raise ConflictError(conflict) from exc
            raise


class DynamoTemplateStore:
    def __init__(self, table: Table) -> None:
        self._table = table
        self._writer = _Writer(table)

    # ------------------------------------------------------------ one template

    def get(self, company_id: str, template_id: str) -> Template | None:
        """Both items in one consistent Query; a read that falls between the two puts of a
        transaction (their versions differ) is repeated."""
        pk = template_pk(company_id, template_id)
        for _ in range(READ_ATTEMPTS):
            items = {
                str(item["SK"]): item
                for item in self._table.query(
                    KeyConditionExpression=Key("PK").eq(pk), ConsistentRead=True
                )["Items"]
            }
            head, body = items.get(TEMPLATE_SK), items.get(BODY_SK)
            if head is None:
                return None
            if body is not None and body["version"] == head["version"]:
                fields = {
                    **cast(dict[str, Any], head["data"]),
                    **cast(dict[str, Any], body["data"]),
                }
                return Template.model_validate(fields)
        raise ConflictError(f"Template {template_id} is being changed; try again.")

    def create(self, company_id: str, template: Template) -> None:
        head, body = self._items(company_id, template)
        head["ConditionExpression"] = "attribute_not_exists(PK)"
        self._writer.transact(
            [{"Put": head}, {"Put": body}], f"Template {template.id} exists already."
        )

    def replace(self, company_id: str, seen: Template, template: Template) -> None:
        """Write iff the stored version is still `seen.version`; ConflictError otherwise."""
        head, body = self._items(company_id, template)
        head["ConditionExpression"] = "version = :seen"
        head["ExpressionAttributeValues"] = {":seen": seen.version}
        self._writer.transact(
            [{"Put": head}, {"Put": body}], f"Template {template.id} changed meanwhile."
        )

    def delete(self, company_id: str, seen: Template) -> None:
        pk = template_pk(company_id, seen.id)
        head = {
            "TableName": self._table.name,
            "Key": {"PK": pk, "SK": TEMPLATE_SK},
            "ConditionExpression": "version = :seen",
            "ExpressionAttributeValues": {":seen": seen.version},
        }
        body = {"TableName": self._table.name, "Key": {"PK": pk, "SK": BODY_SK}}
        self._writer.transact(
            [{"Delete": head}, {"Delete": body}], f"Template {seen.id} changed meanwhile."
        )

    def _items(self, company_id: str, template: Template) -> tuple[dict[str, Any], ...]:
        pk = template_pk(company_id, template.id)
        listed = company_templates_pk(company_id)
        head = {
            "PK": pk,
            "SK": TEMPLATE_SK,
            "GSI1PK": listed,
            "GSI1SK": f"{iso(template.updated_at)}#{template.id}",
            "GSI2PK": listed,
            "GSI2SK": f"{name_key(template.name)}{_NAME_END}{template.id}",
            "kind": "template",
            "company_id": company_id,
            "version": template.version,
            "data": template.summary().model_dump(mode="json"),
        }
        body = {
            "PK": pk,
            "SK": BODY_SK,
            "kind": "template_body",
            "company_id": company_id,
            "version": template.version,
            "data": template.model_dump(mode="json", include={"html", "text"}),
        }
        return (
            {"TableName": self._table.name, "Item": head},
            {"TableName": self._table.name, "Item": body},
        )

    # ------------------------------------------------------------ lists

    def list(
        self,
        company_id: str,
        order: TemplateOrder,
        limit: int,
        cursor: str | None,
        accept: Callable[[TemplateSummary], bool],
    ) -> Page[TemplateSummary]:
        """Up to `limit` accepted templates; ones the caller may not read are skipped, so a
        page can come back short with a cursor (as the directory's pages)."""
        index = _INDEX[order]
        partition, value = f"{index}PK", company_templates_pk(company_id)
        key_attributes = {"PK", "SK", partition, f"{index}SK"}
        request: dict[str, Any] = {
            "IndexName": index,
            "KeyConditionExpression": Key(partition).eq(value),
            "ScanIndexForward": order == "name",
            "Limit": limit,
        }
        start = decode_cursor(cursor, value, partition_key=partition)
        if start is not None and (
            set(start) != key_attributes or not all(isinstance(v, str) for v in start.values())
        ):
            raise ValidationFailedError("The cursor is not valid.")
        items: list[TemplateSummary] = []
        for _ in range(MAX_READS_PER_PAGE):
            if start:
                request["ExclusiveStartKey"] = start
            reply = self._table.query(**request)
            rows, last = reply["Items"], reply.get("LastEvaluatedKey")
            for position, row in enumerate(rows):
                summary = TemplateSummary.model_validate(row["data"])
                if accept(summary):
                    items.append(summary)
                if len(items) == limit:
                    more = position < len(rows) - 1 or last is not None
                    key = {name: row[name] for name in key_attributes}
                    return Page(items=items, next_cursor=encode_cursor(key) if more else None)
            if last is None:
                return Page(items=items, next_cursor=None)
            start = dict(last)
        return Page(items=items, next_cursor=encode_cursor(start))


class DynamoSignatureStore:
    def __init__(self, table: Table) -> None:
        self._table = table
        self._writer = _Writer(table)

    def signatures(self, company_id: str, user_id: str) -> SignatureSet:
        """Every signature of the user and the default pointer: one consistent Query."""
        rows = _query_all(
            self._table,
            KeyConditionExpression=Key("PK").eq(keys.user_pk(company_id, user_id))
            & Key("SK").begins_with("SIGNATURE"),
            ConsistentRead=True,
        )
        pointer = next((r for r in rows if r["SK"] == DEFAULT_SIGNATURE_SK), None)
        default = (
            DefaultSignature(signature_id=str(pointer["signature_id"]), version=pointer["version"])
            if pointer
            else None
        )
        items = [
            Signature.model_validate(
                {
                    **row["data"],
                    "is_default": default is not None and default.signature_id == row["data"]["id"],
                }
            )
            for row in rows
            if str(row["SK"]).startswith(SIGNATURE_PREFIX)
        ]
        return SignatureSet(items=items, default=default)

    def create(
        self, company_id: str, user_id: str, signature: Signature, default: DefaultChange | None
    ) -> None:
        put = self._put(company_id, user_id, signature)
        put["ConditionExpression"] = "attribute_not_exists(PK)"
        ops = [{"Put": put}, *self._default_ops(company_id, user_id, default)]
        self._writer.transact(ops, "Your signatures changed meanwhile.")

    def replace(
        self,
        company_id: str,
        user_id: str,
        seen: Signature,
        signature: Signature,
        default: DefaultChange | None,
    ) -> None:
        put = self._put(company_id, user_id, signature)
        put["ConditionExpression"] = "version = :seen"
        put["ExpressionAttributeValues"] = {":seen": seen.version}
        ops = [{"Put": put}, *self._default_ops(company_id, user_id, default)]
        self._writer.transact(ops, "Your signatures changed meanwhile.")

    def delete(
        self, company_id: str, user_id: str, seen: Signature, default: DefaultChange | None
    ) -> None:
        delete = {
            "TableName": self._table.name,
            "Key": {"PK": keys.user_pk(company_id, user_id), "SK": signature_sk(seen.id)},
            "ConditionExpression": "version = :seen",
            "ExpressionAttributeValues": {":seen": seen.version},
        }
        ops = [{"Delete": delete}, *self._default_ops(company_id, user_id, default)]
        self._writer.transact(ops, "Your signatures changed meanwhile.")

    def _put(self, company_id: str, user_id: str, signature: Signature) -> dict[str, Any]:
        item = {
            "PK": keys.user_pk(company_id, user_id),
            "SK": signature_sk(signature.id),
            "kind": "signature",
            "version": signature.version,
            "data": signature.model_dump(mode="json", exclude={"is_default"}),
        }
        return {"TableName": self._table.name, "Item": item}

    def _default_ops(
        self, company_id: str, user_id: str, change: DefaultChange | None
    ) -> list[dict[str, Any]]:
        """The pointer's write, conditioned on the pointer as it was read."""
        if change is None:
            return []
        key = {"PK": keys.user_pk(company_id, user_id), "SK": DEFAULT_SIGNATURE_SK}
        condition: dict[str, Any] = (
            {"ConditionExpression": "attribute_not_exists(PK)"}
            if change.seen is None
            else {
                "ConditionExpression": "version = :pointer",
                "ExpressionAttributeValues": {":pointer": change.seen.version},
            }
        )
        if change.signature_id is None:
            if change.seen is None:
                return []
            return [{"Delete": {"TableName": self._table.name, "Key": key, **condition}}]
        item = {
            **key,
            "kind": "default_signature",
            "signature_id": change.signature_id,
            "version": (change.seen.version + 1) if change.seen else 1,
        }
        return [{"Put": {"TableName": self._table.name, "Item": item, **condition}}]
