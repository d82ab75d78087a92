"""DynamoDB adapter of the calendar sync's own items (docs/dynamodb.md, "Calendar sync").

- Event mapping `PK=COMPANY#c#ACTIVITY#a, SK=CALMAP`: the activity's event (account, calendar,
  UID, href, ETag, recurrence id, the activity version last synced). Beside the directory's
  record item, so a page of activities gets its mappings with one BatchGetItem.
- UID claim `PK=COMPANY#c#CALENDAR#cal#UID#uid, SK=UID[#rid]`: which activity an event (or one
  occurrence) belongs to. `PutItem IF attribute_not_exists(PK) OR activity_id = :same`, made
  before the event is written, so two activities never share an event and a retry is harmless.
- In the calendar account's partition `PK=COMPANY#c#CALACCOUNT#acct` (removed with it):
  `SYNCSTATE` (sync token, recurrence window, last push and pull, versioned), `HREF#{href}`
  (UID, last ETag, the activities made of it), `PUSH#{activity}` (changed since its last
  push), `SKIP#{activity}` (why it was not pushed).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any

from boto3.dynamodb.conditions import Key
from botocore.exceptions import ClientError

from crmsync.models.calendar_sync import (
    CalendarSyncState,
    EventRef,
    PushMarker,
    SkippedActivity,
    StoredMapping,
)
from crmsync.store import keys

if TYPE_CHECKING:
    from mypy_boto3_dynamodb.service_resource import Table

BATCH_GET_LIMIT = 100
TRANSACTION_LIMIT = 100


def _failed_condition(exc: ClientError) -> bool:
    code = exc.response["Error"]["Code"]
    reasons = {r.get("Code") for r in exc.response.get("CancellationReasons", [])}
    return code == "ConditionalCheckFailedException" or "ConditionalCheckFailed" in reasons


def _chunks(items: Sequence[Any], size: int) -> Iterator[Sequence[Any]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


class DynamoCalendarSyncStore:
    def __init__(self, table: Table) -> None:
        self._table = table
        self._client = table.meta.client

    # ------------------------------------------------------------ state

    def state(self, company_id: str, account_id: str) -> CalendarSyncState | None:
        item = self._table.get_item(
            Key={
                "PK": keys.calendar_sync_pk(company_id, account_id),
                "SK": keys.CALENDAR_SYNC_STATE_SK,
            },
            ConsistentRead=True,
        ).get("Item")
        return CalendarSyncState.model_validate(item["data"]) if item else None

    def save_state(self, state: CalendarSyncState) -> bool:
        """Write iff the stored version is still `state.version` (absent when 0); stored +1."""
        stored = state.model_copy(update={"version": state.version + 1})
        condition: dict[str, Any] = (
            {"ConditionExpression": "attribute_not_exists(PK)"}
            if state.version == 0
            else {
                "ConditionExpression": "version = :seen",
                "ExpressionAttributeValues": {":seen": state.version},
            }
        )
        try:
            self._table.put_item(
                Item={
                    "PK": keys.calendar_sync_pk(state.company_id, state.account_id),
                    "SK": keys.CALENDAR_SYNC_STATE_SK,
                    "kind": "calendar_sync_state",
                    "company_id": state.company_id,
                    "version": stored.version,
                    "data": stored.model_dump(mode="json"),
                },
                **condition,
            )
        except ClientError as exc:
            if _failed_condition(exc):
                return False
            raise
        return True

    # ------------------------------------------------------------ push markers, skips

    def mark_push(
        self, company_id: str, account_id: str, activity_id: str, changed_at: datetime
    ) -> None:
        marker = PushMarker(activity_id=activity_id, changed_at=changed_at)
        self._table.put_item(
            Item={
                "PK": keys.calendar_sync_pk(company_id, account_id),
                "SK": keys.PUSH_MARKER_PREFIX + activity_id,
                "kind": "calendar_push",
                "company_id": company_id,
                "changed_at": marker.model_dump(mode="json")["changed_at"],
                "data": marker.model_dump(mode="json"),
            }
        )

    def pending_pushes(self, company_id: str, account_id: str) -> list[PushMarker]:
        return [
            PushMarker.model_validate(item["data"])
            for item in self._partition(company_id, account_id, keys.PUSH_MARKER_PREFIX)
        ]

    def clear_push(self, company_id: str, account_id: str, marker: PushMarker) -> bool:
        """Remove the marker iff no newer change replaced it meanwhile."""
        try:
            self._table.delete_item(
                Key={
                    "PK": keys.calendar_sync_pk(company_id, account_id),
                    "SK": keys.PUSH_MARKER_PREFIX + marker.activity_id,
                },
                ConditionExpression="changed_at = :seen",
                ExpressionAttributeValues={":seen": marker.model_dump(mode="json")["changed_at"]},
            )
        except ClientError as exc:
            if _failed_condition(exc):
                return False
            raise
        return True

    def skipped(self, company_id: str, account_id: str) -> list[SkippedActivity]:
        return [
            SkippedActivity.model_validate(item["data"])
            for item in self._partition(company_id, account_id, keys.SKIPPED_PREFIX)
        ]

    def record_skip(self, company_id: str, account_id: str, skip: SkippedActivity) -> None:
        self._table.put_item(
            Item={
                "PK": keys.calendar_sync_pk(company_id, account_id),
                "SK": keys.SKIPPED_PREFIX + skip.activity_id,
                "kind": "calendar_skip",
                "company_id": company_id,
                "data": skip.model_dump(mode="json"),
            }
        )

    def clear_skip(self, company_id: str, account_id: str, activity_id: str) -> None:
        self._table.delete_item(
            Key={
                "PK": keys.calendar_sync_pk(company_id, account_id),
                "SK": keys.SKIPPED_PREFIX + activity_id,
            }
        )

    # ------------------------------------------------------------ events by href

    def event_ref(self, company_id: str, account_id: str, href: str) -> EventRef | None:
        item = self._table.get_item(
            Key={
                "PK": keys.calendar_sync_pk(company_id, account_id),
                "SK": keys.EVENT_HREF_PREFIX + href,
            },
            ConsistentRead=True,
        ).get("Item")
        return EventRef.model_validate(item["data"]) if item else None

    def event_refs(self, company_id: str, account_id: str) -> dict[str, EventRef]:
        """Every event the account knows (for servers without sync-collection)."""
        refs = (
            EventRef.model_validate(item["data"])
            for item in self._partition(company_id, account_id, keys.EVENT_HREF_PREFIX)
        )
        return {ref.href: ref for ref in refs}

    def save_event(
        self,
        company_id: str,
        account_id: str,
        ref: EventRef,
        mappings: Sequence[StoredMapping],
    ) -> None:
        """The mappings, then the href item (the commit point a retry starts from)."""
        ops: list[dict[str, Any]] = [
            {"Put": {"TableName": self._table.name, "Item": self._mapping_item(company_id, m)}}
            for m in mappings
        ]
        ops.append(
            {
                "Put": {
                    "TableName": self._table.name,
                    "Item": {
                        "PK": keys.calendar_sync_pk(company_id, account_id),
                        "SK": keys.EVENT_HREF_PREFIX + ref.href,
                        "kind": "calendar_event",
                        "company_id": company_id,
                        "data": ref.model_dump(mode="json"),
                    },
                }
            }
        )
        self._transact(ops)

    def drop_event_ref(self, company_id: str, account_id: str, href: str) -> None:
        self._table.delete_item(
            Key={
                "PK": keys.calendar_sync_pk(company_id, account_id),
                "SK": keys.EVENT_HREF_PREFIX + href,
            }
        )

    # ------------------------------------------------------------ mappings and UID claims

    def mapping(self, company_id: str, activity_id: str) -> StoredMapping | None:
        item = self._table.get_item(
            Key={"PK": keys.activity_pk(company_id, activity_id), "SK": keys.EVENT_MAPPING_SK},
            ConsistentRead=True,
        ).get("Item")
        return StoredMapping.model_validate(item["data"]) if item else None

    def mappings(self, company_id: str, activity_ids: Iterable[str]) -> dict[str, StoredMapping]:
        """The mappings of these activities: one BatchGetItem per 100 ids."""
        wanted = sorted(set(activity_ids))
        found: dict[str, StoredMapping] = {}
        for chunk in _chunks(wanted, BATCH_GET_LIMIT):
            request: dict[str, Any] = {
                self._table.name: {
                    "Keys": [
                        {"PK": keys.activity_pk(company_id, a), "SK": keys.EVENT_MAPPING_SK}
                        for a in chunk
                    ]
                }
            }
            while request:
                reply = self._client.batch_get_item(RequestItems=request)
                for item in reply.get("Responses", {}).get(self._table.name, []):
                    mapping = StoredMapping.model_validate(item["data"])
                    found[mapping.activity_id] = mapping
                request = dict(reply.get("UnprocessedKeys") or {})
        return found

    def drop_mappings(
        self,
        company_id: str,
        mappings: Sequence[StoredMapping],
    ) -> None:
        """Delete the mappings and their UID claims."""
        ops: list[dict[str, Any]] = []
        for m in mappings:
            ops.append(
                {
                    "Delete": {
                        "TableName": self._table.name,
                        "Key": {
                            "PK": keys.activity_pk(company_id, m.activity_id),
                            "SK": keys.EVENT_MAPPING_SK,
                        },
                    }
                }
            )
            ops.append(
                {
                    "Delete": {
                        "TableName": self._table.name,
                        "Key": self._claim_key(company_id, m.calendar_id, m.uid, m.recurrence_id),
                    }
                }
            )
        self._transact(ops)

    def claim_uid(
        self,
        company_id: str,
        calendar_id: str,
        uid: str,
        recurrence_id: str | None,
        activity_id: str,
        account_id: str,
    ) -> str:
        """Claim the event (occurrence) for the activity; the activity that holds it."""
        try:
            self._table.put_item(
                Item={
                    **self._claim_key(company_id, calendar_id, uid, recurrence_id),
                    "kind": "uid_claim",
                    "company_id": company_id,
                    "activity_id": activity_id,
                    "account_id": account_id,
                },
                ConditionExpression="attribute_not_exists(PK) OR activity_id = :same",
                ExpressionAttributeValues={":same": activity_id},
            )
        except ClientError as exc:
            if not _failed_condition(exc):
                raise
            holder = self.uid_claim(company_id, calendar_id, uid, recurrence_id)
            return holder or activity_id
        return activity_id

    def uid_claim(
        self, company_id: str, calendar_id: str, uid: str, recurrence_id: str | None
    ) -> str | None:
        item = self._table.get_item(
            Key=self._claim_key(company_id, calendar_id, uid, recurrence_id),
            ConsistentRead=True,
        ).get("Item")
        return str(item["activity_id"]) if item else None

    def release_claim(
        self, company_id: str, calendar_id: str, uid: str, recurrence_id: str | None
    ) -> None:
        self._table.delete_item(Key=self._claim_key(company_id, calendar_id, uid, recurrence_id))

    # ------------------------------------------------------------ plumbing

    @staticmethod
    def _claim_key(
        company_id: str, calendar_id: str, uid: str, recurrence_id: str | None
    ) -> dict[str, str]:
        return {
            "PK": keys.uid_claim_pk(company_id, calendar_id, uid),
            "SK": keys.uid_claim_sk(recurrence_id),
        }

    @staticmethod
    def _mapping_item(company_id: str, mapping: StoredMapping) -> dict[str, Any]:
        return {
            "PK": keys.activity_pk(company_id, mapping.activity_id),
            "SK": keys.EVENT_MAPPING_SK,
            "kind": "event_mapping",
            "company_id": company_id,
            "account_id": mapping.account_id,
            "data": mapping.model_dump(mode="json"),
        }

    def _partition(self, company_id: str, account_id: str, prefix: str) -> Iterator[dict[str, Any]]:
        request: dict[str, Any] = {
            "KeyConditionExpression": Key("PK").eq(keys.calendar_sync_pk(company_id, account_id))
            & Key("SK").begins_with(prefix),
            "ConsistentRead": True,
        }
        while True:
            reply = self._table.query(**request)
            yield from reply["Items"]
            last = reply.get("LastEvaluatedKey")
            if not last:
                return
            request["ExclusiveStartKey"] = last

    def _transact(self, ops: list[dict[str, Any]]) -> None:
        """Writes in order, up to 100 per transaction (a retry redoes a later chunk)."""
        for chunk in _chunks(ops, TRANSACTION_LIMIT):
            if len(chunk) == 1:
                op = chunk[0]
                if "Put" in op:
                    self._client.put_item(**op["Put"])
                else:
                    self._client.delete_item(**op["Delete"])
            else:
                self._client.transact_write_items(TransactItems=list(chunk))
