"""The CRM directory's rules: who reads and writes which record, links, safe concurrent writes."""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable
from datetime import datetime
from functools import partial
from typing import Protocol, TypeVar

from pydantic import BaseModel, ValidationError

from crmsync.clock import Clock
from crmsync.errors import ConflictError, CrmSyncError, ForbiddenError, NotFoundError
from crmsync.models.activities import Activity
from crmsync.models.deals import Deal, Lead, Project
from crmsync.models.directory import (
    Organization,
    OwnedRecord,
    Person,
    Record,
    address_key,
)
from crmsync.models.identity import Principal
from crmsync.models.pages import Page

R = TypeVar("R", bound=Record)
T = TypeVar("T")

_ID = re.compile(r"[^#\s/]{1,128}")
"""What an id looks like (RecordId); other path values address nothing."""

WRITE_ATTEMPTS = 3
"""A write that lost a race re-reads and re-applies the change this many times in all."""

LINKS: dict[str, type[Record]] = {
    "person_id": Person,
    "organization_id": Organization,
    "deal_id": Deal,
    "lead_id": Lead,
    "project_id": Project,
}
"""Fields that point at another record of the company, and the kind they point at."""


class InvalidFieldsError(CrmSyncError):
    """A body that is well-formed but not acceptable as a whole (e.g. a link to nothing)."""

    status = 422
    title = "Invalid request"


class DirectoryRepository(Protocol):
    """The storage the directory needs; `accept` drops records a page must not show."""

    def get(self, company_id: str, record_type: type[R], record_id: str) -> R | None: ...

    def create(self, company_id: str, record: Record) -> None: ...

    def replace(self, company_id: str, seen: Record, record: Record) -> None:
        """Raise ConflictError when the stored version is no longer `seen.version`."""
        ...

    def delete(self, company_id: str, seen: Record) -> None: ...

    def all_of(
        self,
        company_id: str,
        record_type: type[R],
        limit: int,
        cursor: str | None,
        accept: Callable[[R], bool],
    ) -> Page[R]: ...

    def persons_with_address(
        self,
        company_id: str,
        key: str,
        limit: int,
        cursor: str | None,
        accept: Callable[[Person], bool],
    ) -> Page[Person]: ...

    def deals_of_person(
        self,
        company_id: str,
        person_id: str,
        status: str | None,
        limit: int,
        cursor: str | None,
        accept: Callable[[Deal], bool],
    ) -> Page[Deal]: ...

    def activities(
        self,
        company_id: str,
        owner_id: str | None,
        since: datetime | None,
        until: datetime | None,
        limit: int,
        cursor: str | None,
        accept: Callable[[Activity], bool],
    ) -> Page[Activity]: ...


def can_read(principal: Principal, record: Record) -> bool:
    """The directory's visibility rule; nothing else decides who sees a record.

    The company is not checked here because it is part of every key: another company's
    record never gets this far. Users of the company see each other. Admins see every record
    of their company, "owner" ones included (only mail is private from admins). Other users
    see records with visibility "company" and their own.
    """
    if not isinstance(record, OwnedRecord):
        return True
    return (
        principal.is_admin or record.visibility == "company" or record.owner_id == principal.user_id
    )


def can_write(principal: Principal, record: Record) -> bool:
    """Admins write everything; a user writes records they own (and creates records owned by
    themselves). Users of the company are written by admins only."""
    if not isinstance(record, OwnedRecord):
        return principal.is_admin
    return principal.is_admin or record.owner_id == principal.user_id


def _label(record_type: type[Record]) -> str:
    return record_type.__name__


def _describe(exc: ValidationError) -> str:
    return "; ".join(
        f"{'.'.join(str(p) for p in err['loc']) or 'body'}: {err['msg']}" for err in exc.errors()
    )


def _new_id() -> str:
    return uuid.uuid4().hex


class DirectoryChanges(Protocol):
    """Told after every committed write, e.g. to re-match mail when addresses change."""

    def changed(self, company_id: str, before: Record | None, after: Record | None) -> None: ...


class DirectoryService:
    def __init__(
        self,
        repository: DirectoryRepository,
        clock: Clock,
        new_id: Callable[[], str] = _new_id,
        changes: DirectoryChanges | None = None,
    ) -> None:
        self._repository = repository
        self._clock = clock
        self._new_id = new_id
        self._changes = changes

    def _changed(self, company_id: str, before: Record | None, after: Record | None) -> None:
        if self._changes is not None:
            self._changes.changed(company_id, before, after)

    # ------------------------------------------------------------ any kind

    def get(self, principal: Principal, record_type: type[R], record_id: str) -> R:
        """The record, or NotFoundError when it does not exist or the caller may not see it,
        so ids of hidden records cannot be probed."""
        record = (
            self._repository.get(principal.company_id, record_type, record_id)
            if _ID.fullmatch(record_id)
            else None
        )
        if record is None or not can_read(principal, record):
            raise NotFoundError(f"{_label(record_type)} {record_id} not found.")
        return record

    def list(
        self, principal: Principal, record_type: type[R], limit: int, cursor: str | None
    ) -> Page[R]:
        return self._repository.all_of(
            principal.company_id, record_type, limit, cursor, partial(can_read, principal)
        )

    def create(self, principal: Principal, record_type: type[R], data: BaseModel) -> R:
        fields = data.model_dump()
        now = self._clock.now()
        fields.update(id=fields.get("id") or self._new_id(), created_at=now, updated_at=now)
        if issubclass(record_type, OwnedRecord):
            fields["owner_id"] = fields.get("owner_id") or principal.user_id
        record = self._validated(lambda: record_type.model_validate(fields))
        if not can_write(principal, record):
            raise ForbiddenError(self._refusal(record))
        self._check_links(principal, record, None)
        self._repository.create(principal.company_id, record)
        self._changed(principal.company_id, None, record)
        return record

    def update(
        self, principal: Principal, record_type: type[R], record_id: str, patch: BaseModel
    ) -> R:
        """Apply the fields the PATCH sent. A concurrent write makes the conditional write
        fail; the change is then applied again to the newer record, so none is lost."""
        changes = patch.model_dump(exclude_unset=True)

        def attempt() -> R:
            seen = self.get(principal, record_type, record_id)
            if not can_write(principal, seen):
                raise ForbiddenError(self._refusal(seen))
            stamp = {"updated_at": self._clock.now(), "version": seen.version + 1}
            record = self._validated(lambda: seen.changed({**changes, **stamp}))
            if not can_write(principal, record):
                raise ForbiddenError(self._refusal(record))
            self._check_links(principal, record, seen)
            self._repository.replace(principal.company_id, seen, record)
            self._changed(principal.company_id, seen, record)
            return record

        return _retrying(attempt)

    def delete(self, principal: Principal, record_type: type[Record], record_id: str) -> None:
        def attempt() -> None:
            seen = self.get(principal, record_type, record_id)
            if not can_write(principal, seen):
                raise ForbiddenError(self._refusal(seen))
            self._repository.delete(principal.company_id, seen)
            self._changed(principal.company_id, seen, None)

        _retrying(attempt)

    # ------------------------------------------------------------ lookups by index

    def persons_with_email(
        self, principal: Principal, email: str, limit: int, cursor: str | None
    ) -> Page[Person]:
        """Persons having `email` among their addresses, whatever its case."""
        try:
            key = address_key(email)
        except ValueError as exc:
            raise InvalidFieldsError(f"email: {exc}") from exc
        return self._repository.persons_with_address(
            principal.company_id, key, limit, cursor, partial(can_read, principal)
        )

    def deals(
        self,
        principal: Principal,
        person_id: str | None,
        status: str | None,
        limit: int,
        cursor: str | None,
    ) -> Page[Deal]:
        """A person's deals come from their own index (linking asks for the open ones)."""
        if person_id:
            return self._repository.deals_of_person(
                principal.company_id, person_id, status, limit, cursor, partial(can_read, principal)
            )

        def accept(deal: Deal) -> bool:
            return can_read(principal, deal) and status in (None, deal.status)

        return self._repository.all_of(principal.company_id, Deal, limit, cursor, accept)

    def activities(
        self,
        principal: Principal,
        owner_id: str | None,
        since: datetime | None,
        until: datetime | None,
        limit: int,
        cursor: str | None,
    ) -> Page[Activity]:
        if since and until and since >= until:
            raise InvalidFieldsError("until: must be later than since.")
        return self._repository.activities(
            principal.company_id,
            owner_id,
            since,
            until,
            limit,
            cursor,
            partial(can_read, principal),
        )

    # ------------------------------------------------------------ rules

    def _check_links(self, principal: Principal, record: Record, seen: Record | None) -> None:
        """A new link must name a record of the company that the caller can see."""
        for field, target in LINKS.items():
            value = getattr(record, field, None)
            if value and value != getattr(seen, field, None):
                self._require(principal, target, value, field)
        if isinstance(record, Activity):
            known = (
                {p.person_id for p in seen.participants} if isinstance(seen, Activity) else set()
            )
            for index, participant in enumerate(record.participants):
                if participant.person_id and participant.person_id not in known:
                    field = f"participants.{index}.person_id"
                    self._require(principal, Person, participant.person_id, field)

    def _require(
        self, principal: Principal, target: type[Record], record_id: str, field: str
    ) -> None:
        found = self._repository.get(principal.company_id, target, record_id)
        if found is None or not can_read(principal, found):
            raise InvalidFieldsError(f"{field}: there is no {_label(target)} {record_id}.")

    @staticmethod
    def _refusal(record: Record) -> str:
        if isinstance(record, OwnedRecord):
            return "Only the owner or an admin can change this record, or give it to another user."
        return "Only admins can add or change users."

    @staticmethod
    def _validated(build: Callable[[], T]) -> T:
        try:
            return build()
        except ValidationError as exc:
            raise InvalidFieldsError(_describe(exc)) from exc


def _retrying(attempt: Callable[[], T]) -> T:
    for _ in range(WRITE_ATTEMPTS - 1):
        try:
            return attempt()
        except ConflictError:
            continue
    return attempt()
