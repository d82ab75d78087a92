"""Blocked addresses of a user (SPEC S8): an exact address or a whole `@domain`."""

from __future__ import annotations

import re

from pydantic import BaseModel, ConfigDict, Field, field_validator

from crmsync.clock import Clock
from crmsync.errors import ConflictError
from crmsync.models.directory import address_key
from crmsync.models.identity import Principal
from crmsync.models.mail import BlockedAddress
from crmsync.ports import BlockedAddressStore

_DOMAIN = re.compile(r"^@(?=.{1,253}$)([a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z0-9-]{2,63}$")


def normalise_blocked(value: str) -> str:
    """`Ann@Example.COM` -> `ann@example.com`; `@Example.com` -> `@example.com` (IDNA)."""
    value = value.strip()
    if value.startswith("@"):
        try:
            domain = "@" + value[1:].encode("idna").decode("ascii").lower()
        except UnicodeError as exc:
            raise ValueError("not a domain") from exc
        if not _DOMAIN.match(domain):
            raise ValueError("not a domain: use @example.com")
        return domain
    return address_key(value)


class BlockedAddressInput(BaseModel):
    model_config = ConfigDict(extra="forbid")

    address: str = Field(
        min_length=3,
        max_length=254,
        description="An address (ann@example.com) or a whole domain (@example.com).",
    )

    @field_validator("address")
    @classmethod
    def _normalised(cls, value: str) -> str:
        return normalise_blocked(value)


class BlockingService:
    def __init__(self, store: BlockedAddressStore, clock: Clock) -> None:
        self._store = store
        self._clock = clock

    def list(self, principal: Principal) -> list[BlockedAddress]:
        return self._store.list(principal.company_id, principal.user_id)

    def add(self, principal: Principal, entry: BlockedAddressInput) -> BlockedAddress:
        blocked = BlockedAddress(address=entry.address, created_at=self._clock.now())
        if not self._store.add(principal.company_id, principal.user_id, blocked):
            raise ConflictError(f"{entry.address} is blocked already.")
        return blocked

    def remove(self, principal: Principal, address: str) -> bool:
        try:
            key = normalise_blocked(address)
        except ValueError:
            return False
        return self._store.remove(principal.company_id, principal.user_id, key)
