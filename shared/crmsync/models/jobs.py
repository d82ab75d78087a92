"""Jobs carried by the queues. Each has an id so a redelivery can be recognised."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, Field


class SyncAccount(BaseModel):
    """Sync one mail account now. Sent to the FIFO sync queue, grouped by account."""

    kind: Literal["sync_account"] = "sync_account"
    job_id: str = Field(min_length=1)
    account_id: str = Field(min_length=1)
    company_id: str = Field(min_length=1)
    reason: Literal["schedule", "manual", "continue"] = "schedule"
    enqueued_at: datetime
