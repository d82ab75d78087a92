"""Who is calling: the claims the JWT authorizer verified."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from crmsync.errors import CrmSyncError


class UnauthenticatedError(CrmSyncError):
    status = 401
    title = "Unauthorized"


class Principal(BaseModel):
    """A CRM user of one company. Every read and write is scoped by it."""

    model_config = ConfigDict(frozen=True)

    user_id: str = Field(min_length=1)
    company_id: str = Field(min_length=1)
    role: Literal["admin", "user"]
    email: str | None = None

    @property
    def is_admin(self) -> bool:
        return self.role == "admin"

    @classmethod
    def from_claims(cls, claims: Mapping[str, Any]) -> Principal:
        """Build from API Gateway JWT claims; a token without tenancy claims is refused."""
        try:
            return cls(
                user_id=str(claims.get("sub") or ""),
                company_id=str(claims.get("company_id") or ""),
                role=claims.get("role"),  # type: ignore[arg-type]
                email=claims.get("email"),
            )
        except ValueError as exc:
            raise UnauthenticatedError("The token lacks sub, company_id or role.") from exc
