"""What one run of the mail sync did, kept per account for status and troubleshooting."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel


class SyncRun(BaseModel):
    id: str
    account_id: str
    reason: str
    enqueued_at: datetime
    outcome: Literal["ok", "idle", "skipped", "failed"]
    detail: str = ""
    started_at: datetime
    finished_at: datetime
    folders_checked: int = 0
    messages_on_server: int = 0
    messages_fetched: int = 0
    flag_changes: int = 0
    messages_removed: int = 0
    complete: bool = True
    imap_commands: int = 0
    mailbox_actions: int = 0
