"""The inbox over HTTP: the caller's threads by folder, with filters, and unread counts."""

from __future__ import annotations

from typing import Annotated

from aws_lambda_powertools.event_handler.openapi.params import Query

from crmsync.http.common import Cursor, Limit, caller, new_router
from crmsync.models.mail import Thread
from crmsync.models.pages import Page
from crmsync.runtime import current_runtime

router = new_router()

AccountId = Annotated[str, Query(min_length=1, max_length=128, description="The mail account.")]


@router.get("/v1/threads")
def list_threads(account_id: AccountId, limit: Limit = 25, cursor: Cursor = None) -> Page[Thread]:
    """Threads of one mail account, newest message first."""
    return (
        current_runtime().mail_reader().account_threads(caller(router), account_id, limit, cursor)
    )
