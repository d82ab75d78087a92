"""Domain events published on the event bus for the CRM to consume."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, Field

EVENT_SOURCE = "crmsync"


class DomainEvent(BaseModel):
    """One fact the CRM may react to; `detail_type` is the EventBridge DetailType."""

    detail_type: str = Field(pattern=r"^[a-z_]+\.[a-z_]+$")
    company_id: str
    occurred_at: datetime
    detail: dict[str, Any] = Field(default_factory=dict)
