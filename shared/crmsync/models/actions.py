"""Mailbox actions (SPEC S9): what the user did to a thread in the CRM that the mail server
should do too. Recorded durably in the account's partition and applied by the sync worker
(one FIFO group per account), so an action waits out an expired password and is never lost.
"""

from __future__ import annotations

import hashlib
from datetime import datetime
from typing import Literal

from pydantic import BaseModel, Field

ActionOp = Literal["read", "unread", "archive", "unarchive", "delete"]


class MailboxAction(BaseModel):
    """One thread-level action. `message_keys` are the thread's messages when the user acted:
    a message that arrives later is not archived or deleted by an older click."""

    id: str
    company_id: str
    account_id: str
    thread_id: str
    op: ActionOp
    message_keys: list[str] = Field(default_factory=list)
    created_at: datetime
    attempts: int = 0

    @staticmethod
    def new_id(created_at: datetime, thread_id: str, op: ActionOp) -> str:
        """Sortable by time: actions are applied in the order the user made them."""
        digest = hashlib.sha256(f"{thread_id}\0{op}\0{created_at.isoformat()}".encode())
        return f"{created_at.strftime('%Y%m%dT%H%M%S%f')}-{digest.hexdigest()[:12]}"


class ActionResult(BaseModel):
    """What applying one action did on the server, per message: how many were changed, and
    which were no longer where the CRM last saw them (moved or deleted meanwhile)."""

    action_id: str
    op: ActionOp
    changed: int = 0
    missing: int = 0
    skipped_reason: str | None = None
