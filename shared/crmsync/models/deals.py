"""Deals, leads and projects: what conversations are linked to (shapes as in directory.py)."""

from __future__ import annotations

from decimal import Decimal
from typing import Annotated, Literal

from pydantic import Field, StringConstraints

from crmsync.models.directory import Input, OwnedRecord, RecordId, Text, Visibility

DealStatus = Literal["open", "won", "lost"]
ProjectStatus = Literal["open", "completed", "canceled"]
Money = Annotated[Decimal, Field(ge=0, max_digits=20, decimal_places=4)]
Currency = Annotated[str, StringConstraints(pattern=r"^[A-Z]{3}$")]


class DealCreate(Input):
    title: Text
    value: Money = Decimal(0)
    currency: Currency = Field(default="EUR", description="ISO 4217 code.")
    status: DealStatus = "open"
    person_id: RecordId | None = None
    organization_id: RecordId | None = None
    owner_id: RecordId | None = Field(default=None, description="Defaults to the caller.")
    visibility: Visibility = "company"


class DealUpdate(Input):
    title: Text | None = None
    value: Money | None = None
    currency: Currency | None = None
    status: DealStatus | None = None
    person_id: RecordId | None = None
    organization_id: RecordId | None = None
    owner_id: RecordId | None = None
    visibility: Visibility | None = None


class Deal(OwnedRecord):
    title: str
    value: Decimal = Decimal(0)
    currency: str = "EUR"
    status: DealStatus = "open"
    person_id: str | None = None
    organization_id: str | None = None


class LeadCreate(Input):
    title: Text
    person_id: RecordId | None = None
    organization_id: RecordId | None = None
    owner_id: RecordId | None = Field(default=None, description="Defaults to the caller.")
    visibility: Visibility = "company"


class LeadUpdate(Input):
    title: Text | None = None
    person_id: RecordId | None = None
    organization_id: RecordId | None = None
    owner_id: RecordId | None = None
    visibility: Visibility | None = None


class Lead(OwnedRecord):
    title: str
    person_id: str | None = None
    organization_id: str | None = None


class ProjectCreate(Input):
    title: Text
    status: ProjectStatus = "open"
    person_id: RecordId | None = None
    organization_id: RecordId | None = None
    deal_id: RecordId | None = None
    owner_id: RecordId | None = Field(default=None, description="Defaults to the caller.")
    visibility: Visibility = "company"


class ProjectUpdate(Input):
    title: Text | None = None
    status: ProjectStatus | None = None
    person_id: RecordId | None = None
    organization_id: RecordId | None = None
    deal_id: RecordId | None = None
    owner_id: RecordId | None = None
    visibility: Visibility | None = None


class Project(OwnedRecord):
    title: str
    status: ProjectStatus = "open"
    person_id: str | None = None
    organization_id: str | None = None
    deal_id: str | None = None
