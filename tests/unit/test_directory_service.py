"""The CRM directory's rules without I/O: visibility, ownership, links, validation and retries
on lost races, against an in-memory repository with the adapter's version condition."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

import pytest

from crmsync.errors import ConflictError, ForbiddenError, NotFoundError
from crmsync.models.activities import Activity, ActivityCreate
from crmsync.models.deals import Deal, DealCreate, DealUpdate
from crmsync.models.directory import (
    Organization,
    Person,
    PersonCreate,
    PersonUpdate,
    Record,
    User,
    UserCreate,
    UserUpdate,
    address_key,
)
from crmsync.models.identity import Principal
from crmsync.models.pages import Page
from crmsync.services.directory import (
    DirectoryService,
    InvalidFieldsError,
    can_read,
    can_write,
)
from tests.unit.fakes import FakeClock

R = TypeVar("R", bound=Record)
NOW = datetime(2025, 3, 3, 9, 0, tzinfo=UTC)
ADMIN = Principal(user_id="boss", company_id="c1", role="admin")
OWNER = Principal(user_id="u1", company_id="c1", role="user")
COLLEAGUE = Principal(user_id="u2", company_id="c1", role="user")
OUTSIDER = Principal(user_id="u1", company_id="c2", role="admin")


class FakeDirectoryRepository:
    """Records per company, with the version condition of the real adapter."""

    def __init__(self) -> None:
        self.records: dict[tuple[str, type[Record], str], Record] = {}
        self.before_replace: Callable[[], None] | None = None

    def get(self, company_id: str, record_type: type[R], record_id: str) -> R | None:
        found = self.records.get((company_id, record_type, record_id))
        return found.model_copy(deep=True) if isinstance(found, record_type) else None

    def create(self, company_id: str, record: Record) -> None:
        key = (company_id, type(record), record.id)
        if key in self.records:
            raise ConflictError("exists")
        self.records[key] = record

    def replace(self, company_id: str, seen: Record, record: Record) -> None:
        if self.before_replace:
            interfere, self.before_replace = self.before_replace, None
            interfere()
        key = (company_id, type(record), record.id)
        if key not in self.records or self.records[key].version != seen.version:
            raise ConflictError("changed")
        self.records[key] = record

    def delete(self, company_id: str, seen: Record) -> None:
        key = (company_id, type(seen), seen.id)
        if key not in self.records or self.records[key].version != seen.version:
            raise ConflictError("changed")
        del self.records[key]

    def _of(self, company_id: str, record_type: type[R]) -> list[R]:
        return [
            r
            for (c, _, _), r in self.records.items()
            if c == company_id and isinstance(r, record_type)
        ]

    def all_of(
        self, company_id: str, record_type: type[R], limit: int, cursor: str | None, accept: Any
    ) -> Page[R]:
        return Page(items=[r for r in self._of(company_id, record_type) if accept(r)][:limit])

    def persons_with_address(
        self, company_id: str, key: str, limit: int, cursor: str | None, accept: Any
    ) -> Page[Person]:
        hits = [
            p
            for p in self._of(company_id, Person)
            if key in {address_key(a) for a in p.emails} and accept(p)
        ]
        return Page(items=hits[:limit])

    def deals_of_person(
        self,
        company_id: str,
        person_id: str,
        status: str | None,
        limit: int,
        cursor: Any,
        accept: Any,
    ) -> Page[Deal]:
        deals = [d for d in self._of(company_id, Deal) if d.person_id == person_id and accept(d)]
        return Page(items=[d for d in deals if status in (None, d.status)][:limit])

    def activities(self, company_id: str, owner_id: str | None, *args: Any) -> Page[Activity]:
        *_, accept = args
        return Page(items=[a for a in self._of(company_id, Activity) if accept(a)])


@pytest.fixture
def repository() -> FakeDirectoryRepository:
    return FakeDirectoryRepository()


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(NOW)


@pytest.fixture
def directory(repository: FakeDirectoryRepository, clock: FakeClock) -> DirectoryService:
    ids = iter(f"id{n}" for n in range(1000))
    return DirectoryService(repository, clock, new_id=lambda: next(ids))


def person(owner: str, visibility: str = "company", **fields: Any) -> Person:
    return Person.model_validate(
        {
            "id": f"p-{owner}-{visibility}",
            "name": "Some One",
            "owner_id": owner,
            "visibility": visibility,
            "created_at": NOW,
            "updated_at": NOW,
            **fields,
        }
    )


# ---------------------------------------------------------------- the rules


@pytest.mark.parametrize(
    ("principal", "record", "readable", "writable"),
    [
        (OWNER, person("u1", "owner"), True, True),
        (COLLEAGUE, person("u1", "owner"), False, False),
        (COLLEAGUE, person("u1", "company"), True, False),
        (ADMIN, person("u1", "owner"), True, True),
        (ADMIN, person("u1", "company"), True, True),
    ],
)
def test_visibility_and_write_rules(
    principal: Principal, record: Person, readable: bool, writable: bool
) -> None:
    assert can_read(principal, record) is readable
    assert can_write(principal, record) is writable


def test_users_are_read_by_everyone_and_written_by_admins() -> None:
    user = User(id="u9", name="N", email="n@x.com", created_at=NOW, updated_at=NOW)
    assert can_read(COLLEAGUE, user)
    assert not can_write(COLLEAGUE, user)
    assert can_write(ADMIN, user)


def test_hidden_and_foreign_records_are_not_found(
    directory: DirectoryService, repository: FakeDirectoryRepository
) -> None:
    secret = person("u1", "owner")
    repository.create("c1", secret)

    assert directory.get(OWNER, Person, secret.id) == secret
    assert directory.get(ADMIN, Person, secret.id) == secret
    for principal in (COLLEAGUE, OUTSIDER):
        with pytest.raises(NotFoundError):
            directory.get(principal, Person, secret.id)
        with pytest.raises(NotFoundError):
            directory.update(principal, Person, secret.id, PersonUpdate(name="X"))
        with pytest.raises(NotFoundError):
            directory.delete(principal, Person, secret.id)
    for malformed in ("", "a#b", "x" * 129, "a b"):
        with pytest.raises(NotFoundError):
            directory.get(ADMIN, Person, malformed)
    assert directory.list(COLLEAGUE, Person, 10, None).items == []
    assert directory.list(OUTSIDER, Person, 10, None).items == []
    assert directory.list(ADMIN, Person, 10, None).items == [secret]


def test_create_owns_the_record_for_the_caller(directory: DirectoryService) -> None:
    created = directory.create(OWNER, Person, PersonCreate(first_name="Ada", last_name="King"))

    assert (created.id, created.owner_id, created.name, created.version) == (
        "id0",
        "u1",
        "Ada King",
        1,
    )
    assert directory.get(COLLEAGUE, Person, created.id) == created
    with pytest.raises(ForbiddenError):
        directory.create(OWNER, Person, PersonCreate(name="Gift", owner_id="u2"))
    assert (
        directory.create(ADMIN, Person, PersonCreate(name="Gift", owner_id="u2")).owner_id == "u2"
    )


def test_only_admins_create_users(directory: DirectoryService) -> None:
    body = UserCreate(id="u7", name="New", email="New@Example.COM")
    with pytest.raises(ForbiddenError):
        directory.create(OWNER, User, body)

    user = directory.create(ADMIN, User, body)
    assert (user.id, user.email, user.role) == ("u7", "New@example.com", "user")
    assert directory.list(COLLEAGUE, User, 10, None).items == [user]
    with pytest.raises(ConflictError):
        directory.create(ADMIN, User, body)
    with pytest.raises(ForbiddenError):
        directory.update(OWNER, User, "u7", UserUpdate(role="admin"))


def test_update_by_owner_bumps_version_and_time(
    directory: DirectoryService, clock: FakeClock
) -> None:
    created = directory.create(OWNER, Person, PersonCreate(name="Ada Lovelace"))
    clock.advance(timedelta(minutes=5))

    renamed = directory.update(OWNER, Person, created.id, PersonUpdate(name="Ada King"))
    assert (renamed.first_name, renamed.last_name, renamed.version) == ("Ada", "King", 2)
    assert renamed.updated_at == NOW + timedelta(minutes=5)
    assert renamed.created_at == NOW

    with pytest.raises(ForbiddenError):
        directory.update(COLLEAGUE, Person, created.id, PersonUpdate(name="Mine"))
    with pytest.raises(ForbiddenError):
        directory.update(OWNER, Person, created.id, PersonUpdate(owner_id="u2"))
    assert directory.update(ADMIN, Person, created.id, PersonUpdate(owner_id="u2")).owner_id == "u2"


def test_clearing_a_required_field_is_invalid(directory: DirectoryService) -> None:
    created = directory.create(OWNER, Deal, DealCreate(title="T"))
    with pytest.raises(InvalidFieldsError, match="title"):
        directory.update(OWNER, Deal, created.id, DealUpdate.model_validate({"title": None}))
    created_person = directory.create(OWNER, Person, PersonCreate(name="P"))
    patch = PersonUpdate.model_validate({"name": None, "first_name": None})
    with pytest.raises(InvalidFieldsError, match="name"):
        directory.update(OWNER, Person, created_person.id, patch)


def test_a_lost_race_is_applied_again_to_the_newer_record(
    directory: DirectoryService, repository: FakeDirectoryRepository
) -> None:
    created = directory.create(OWNER, Person, PersonCreate(name="Raced"))

    def concurrent_write() -> None:
        current = repository.records[("c1", Person, created.id)]
        repository.records[("c1", Person, created.id)] = current.changed(
            {"phones": ["+1 555"], "version": current.version + 1}
        )

    repository.before_replace = concurrent_write
    updated = directory.update(OWNER, Person, created.id, PersonUpdate(name="Renamed"))

    assert (updated.name, updated.phones, updated.version) == ("Renamed", ["+1 555"], 3)
    assert repository.records[("c1", Person, created.id)] == updated


def test_links_must_point_at_visible_records_of_the_company(
    directory: DirectoryService, repository: FakeDirectoryRepository
) -> None:
    repository.create(
        "c2", Organization(id="o2", name="Other", owner_id="x", created_at=NOW, updated_at=NOW)
    )
    repository.create(
        "c1",
        Organization(
            id="o1",
            name="Hidden",
            owner_id="u2",
            visibility="owner",
            created_at=NOW,
            updated_at=NOW,
        ),
    )
    for org in ("nope", "o2", "o1"):
        with pytest.raises(InvalidFieldsError, match="organization_id"):
            directory.create(OWNER, Person, PersonCreate(name="P", organization_id=org))
    assert directory.create(ADMIN, Person, PersonCreate(name="P", organization_id="o1"))

    start = datetime(2030, 1, 1, 9, tzinfo=UTC)
    meeting = ActivityCreate.model_validate(
        {"subject": "M", "start": start, "participants": [{"email": "a@x.com", "person_id": "p?"}]}
    )
    with pytest.raises(InvalidFieldsError, match=r"participants\.0\.person_id"):
        directory.create(OWNER, Activity, meeting)


def test_lookups_validate_their_arguments(directory: DirectoryService) -> None:
    with pytest.raises(InvalidFieldsError, match="email"):
        directory.persons_with_email(OWNER, "not an address", 10, None)
    later, earlier = datetime(2030, 1, 2, tzinfo=UTC), datetime(2030, 1, 1, tzinfo=UTC)
    with pytest.raises(InvalidFieldsError, match="until"):
        directory.activities(OWNER, None, later, earlier, 10, None)


def test_person_is_found_by_any_address_in_any_case(directory: DirectoryService) -> None:
    created = directory.create(
        OWNER, Person, PersonCreate(name="A", emails=["a.w@example.net", "Alice@Example.com"])
    )
    assert directory.persons_with_email(COLLEAGUE, "ALICE@example.COM", 10, None).items == [created]
    assert directory.persons_with_email(COLLEAGUE, "bob@example.com", 10, None).items == []


def test_deals_filter_by_status_without_a_person(directory: DirectoryService) -> None:
    won = directory.create(OWNER, Deal, DealCreate(title="W", status="won"))
    directory.create(OWNER, Deal, DealCreate(title="O"))
    assert directory.deals(OWNER, None, "won", 10, None).items == [won]
