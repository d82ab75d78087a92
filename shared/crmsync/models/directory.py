"""The CRM directory: users, persons and organizations (deals and activities live beside).

Three shapes per entity: `…Create` (POST body), `…Update` (PATCH body: only the fields sent
change, `null` clears an optional field) and the record itself (stored and answered). Inputs
refuse unknown fields so a typo is a 422, not a silently ignored field.

Visibility of a record (`visibility`):
- `"company"`: every user of the owner's company sees it;
- `"owner"`: only its owner and the company's admins see it.
Directory records have no level above that; only mail can be private from admins.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal, Self

from email_validator import EmailNotValidError, ValidatedEmail, validate_email
from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    model_validator,
)

Visibility = Literal["company", "owner"]
Role = Literal["admin", "user"]

RecordId = Annotated[str, StringConstraints(min_length=1, max_length=128, pattern=r"^[^#\s/]+$")]
Text = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=255)]
LongText = Annotated[str, StringConstraints(max_length=10_000)]
Phone = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=40)]
Domain = Annotated[
    str,
    StringConstraints(
        strip_whitespace=True, to_lower=True, max_length=253, pattern=r"^[^@\s/]+\.[^@\s/]+$"
    ),
]
MAX_EMAILS = 10
"""Addresses per person: each has an index item written in the person's transaction."""


def _parse_address(value: str) -> ValidatedEmail:
    """email-validator without DNS. `.test` domains (RFC 2606) are accepted: the demo corpus
    and local stacks use them; other special-use names (`.local`, `.invalid`…) are not."""
    try:
        return validate_email(value, check_deliverability=False, test_environment=True)
    except EmailNotValidError as exc:
        raise ValueError(str(exc)) from exc


def _valid_address(value: str) -> str:
    """The address as email-validator normalises it (the domain lower-cased)."""
    return _parse_address(value).normalized


EmailAddress = Annotated[str, StringConstraints(max_length=254), AfterValidator(_valid_address)]


def address_key(address: str) -> str:
    """The form used in keys (docs/dynamodb.md rule 7): lower-cased, domain IDNA-encoded.

    Raises ValueError for a string that is not an address.
    """
    parts = _parse_address(address)
    return f"{parts.local_part}@{parts.ascii_domain}".lower()


def _distinct_addresses(addresses: list[str]) -> list[str]:
    """Drop repeats that differ only in case, keeping the first spelling."""
    seen: set[str] = set()
    kept = []
    for address in addresses:
        key = address_key(address)
        if key not in seen:
            seen.add(key)
            kept.append(address)
    return kept


EmailList = Annotated[
    list[EmailAddress], Field(max_length=MAX_EMAILS), AfterValidator(_distinct_addresses)
]


class Input(BaseModel):
    """A request body: unknown fields are refused."""

    model_config = ConfigDict(extra="forbid")


class Record(BaseModel):
    """What every stored directory record carries. `version` grows by one on every write;
    a write that saw an older version is refused (optimistic concurrency)."""

    id: str
    created_at: datetime
    updated_at: datetime
    version: int = Field(default=1, ge=1)

    def changed(self, changes: dict[str, Any]) -> Self:
        """This record with a PATCH's fields applied, validated as a whole."""
        return self.model_validate({**self.model_dump(), **changes})


class OwnedRecord(Record):
    owner_id: str
    visibility: Visibility = "company"


# ---------------------------------------------------------------- users


class UserCreate(Input):
    id: RecordId | None = Field(
        default=None, description="The identity provider's subject (JWT sub); generated if absent."
    )
    name: Text
    email: EmailAddress
    role: Role = "user"
    active: bool = True


class UserUpdate(Input):
    name: Text | None = None
    email: EmailAddress | None = None
    role: Role | None = None
    active: bool | None = None


class User(Record):
    """A CRM user of the company; `id` is the `sub` of the user's token."""

    name: str
    email: str
    role: Role = "user"
    active: bool = True


# ---------------------------------------------------------------- persons


class PersonCreate(Input):
    name: Text | None = Field(default=None, description="Derived from first/last when absent.")
    first_name: Text | None = None
    last_name: Text | None = None
    emails: EmailList = Field(default_factory=list)
    phones: list[Phone] = Field(default_factory=list, max_length=10)
    organization_id: RecordId | None = None
    owner_id: RecordId | None = Field(default=None, description="Defaults to the caller.")
    visibility: Visibility = "company"

    @model_validator(mode="after")
    def _has_a_name(self) -> Self:
        if not (self.name or self.first_name or self.last_name):
            raise ValueError("give name, or first_name and/or last_name")
        return self


class PersonUpdate(Input):
    name: Text | None = None
    first_name: Text | None = None
    last_name: Text | None = None
    emails: EmailList | None = None
    phones: list[Phone] | None = Field(default=None, max_length=10)
    organization_id: RecordId | None = None
    owner_id: RecordId | None = None
    visibility: Visibility | None = None


class Person(OwnedRecord):
    name: str = Field(min_length=1)
    first_name: str | None = None
    last_name: str | None = None
    emails: list[str] = Field(default_factory=list)
    phones: list[str] = Field(default_factory=list)
    organization_id: str | None = None

    @model_validator(mode="before")
    @classmethod
    def _derive_names(cls, data: Any) -> Any:
        """name from first/last when absent; first/last split from name when both absent."""
        if not isinstance(data, dict):
            return data
        data = dict(data)
        first, last = data.get("first_name"), data.get("last_name")
        if not data.get("name"):
            data["name"] = " ".join(part for part in (first, last) if part) or None
        elif first is None and last is None:
            head, _, tail = str(data["name"]).strip().partition(" ")
            data["first_name"], data["last_name"] = head or None, tail.strip() or None
        return data

    def changed(self, changes: dict[str, Any]) -> Self:
        """A new name re-derives first/last unless they are sent too, and the reverse."""
        names = {"first_name", "last_name"} & changes.keys()
        if "name" in changes and not names:
            changes = {**changes, "first_name": None, "last_name": None}
        elif names and "name" not in changes:
            changes = {**changes, "name": None}
        return super().changed(changes)


# ---------------------------------------------------------------- organizations


class OrganizationCreate(Input):
    name: Text
    domain: Domain | None = None
    owner_id: RecordId | None = None
    visibility: Visibility = "company"


class OrganizationUpdate(Input):
    name: Text | None = None
    domain: Domain | None = None
    owner_id: RecordId | None = None
    visibility: Visibility | None = None


class Organization(OwnedRecord):
    name: str
    domain: str | None = None
