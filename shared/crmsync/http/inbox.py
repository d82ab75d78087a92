"""The inbox over HTTP: the caller's threads by folder, with filters, and unread counts."""

from __future__ import annotations

from typing import Annotated

from aws_lambda_powertools.event_handler.openapi.params import Query
from pydantic import ValidationError

from crmsync.http.common import Cursor, Limit, caller, new_router
from crmsync.models.inbox import Folder, InboxFilter, InvalidFilterError, MailCounts
from crmsync.models.mail import Thread
from crmsync.models.pages import Page
from crmsync.runtime import current_runtime

router = new_router()

Id = Annotated[str | None, Query(min_length=1, max_length=128)]
Flag = Annotated[bool | None, Query()]
Moment = Annotated[
    str | None,
    Query(
        max_length=40,
        description="ISO-8601 time with an offset, or a date (its whole day, UTC).",
    ),
]


@router.get("/v1/threads")
def list_threads(
    folder: Annotated[Folder, Query(description="inbox, sent, archive or all.")] = "all",
    account_id: Annotated[str | None, Query(min_length=1, max_length=128)] = None,
    unread: Annotated[bool | None, Query(description="true: unread threads; false: read.")] = None,
    linked: Annotated[bool | None, Query(description="Linked to any CRM record, or not.")] = None,
    person_id: Id = None,
    deal_id: Id = None,
    lead_id: Id = None,
    project_id: Id = None,
    has_attachments: Flag = None,
    tracked: Flag = None,
    participant: Annotated[
        str | None, Query(max_length=320, description="An address (any case).")
    ] = None,
    since: Moment = None,
    until: Moment = None,
    q: Annotated[
        str | None,
        Query(max_length=200, description="Words of the subject or participants, all needed."),
    ] = None,
    limit: Limit = 25,
    cursor: Cursor = None,
) -> Page[Thread]:
    """The caller's own threads, newest message first; every filter given must hold."""
    try:
        wanted = InboxFilter.model_validate(
            {
                "folder": folder,
                "account_id": account_id,
                "unread": unread,
                "linked": linked,
                "person_id": person_id,
                "deal_id": deal_id,
                "lead_id": lead_id,
                "project_id": project_id,
                "has_attachments": has_attachments,
                "tracked": tracked,
                "participant": participant,
                "since": since,
                "until": until,
                "q": q,
            }
        )
    except ValidationError as exc:
        detail = "; ".join(
            f"{'.'.join(str(p) for p in err['loc']) or 'query'}: {err['msg']}"
            for err in exc.errors()
        )
        raise InvalidFilterError(detail) from exc
    return current_runtime().inbox().threads(caller(router), wanted, limit, cursor)


@router.get("/v1/me/mail-counts")
def mail_counts() -> MailCounts:
    """Threads and unread threads per folder of each of the caller's accounts, and in total."""
    return current_runtime().inbox().counts(caller(router))
