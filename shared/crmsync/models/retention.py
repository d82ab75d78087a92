"""What the retention sweep purged (SPEC E7): kept as the record that it happened."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, Field

# "inactive": stopped, needs_reauth or permission_denied for the whole retention period;
# "removed": the account was deleted (E6 keeps its synced mail until then).
PurgeReason = Literal["inactive", "removed"]


class PurgeRecord(BaseModel):
    company_id: str
    account_id: str
    reason: PurgeReason
    since: datetime = Field(description="When the account went inactive or was removed.")
    purged_at: datetime
    counts: dict[str, int] = Field(
        default_factory=dict, description="Items deleted, by kind of synced data."
    )

    @property
    def items_deleted(self) -> int:
        return sum(self.counts.values())
