"""Directory inputs: unknown fields refused, addresses validated and normalised, money and
times checked."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from pydantic import BaseModel, ValidationError

from crmsync.models.activities import ActivityCreate, ActivityUpdate
from crmsync.models.deals import (
    DealCreate,
    DealUpdate,
    LeadCreate,
    LeadUpdate,
    ProjectCreate,
    ProjectUpdate,
)
from crmsync.models.directory import (
    MAX_EMAILS,
    OrganizationCreate,
    OrganizationUpdate,
    PersonCreate,
    PersonUpdate,
    UserCreate,
    UserUpdate,
    address_key,
)

NOW = datetime(2025, 3, 3, 9, 0, tzinfo=UTC)


INPUTS: list[tuple[type[BaseModel], dict[str, Any]]] = [
    (UserCreate, {"name": "N", "email": "n@x.com"}),
    (UserUpdate, {}),
    (PersonCreate, {"name": "N"}),
    (PersonUpdate, {}),
    (OrganizationCreate, {"name": "N"}),
    (OrganizationUpdate, {}),
    (DealCreate, {"title": "T"}),
    (DealUpdate, {}),
    (LeadCreate, {"title": "T"}),
    (LeadUpdate, {}),
    (ProjectCreate, {"title": "T"}),
    (ProjectUpdate, {}),
    (ActivityCreate, {"subject": "S", "start": "2030-01-01T09:00:00Z"}),
    (ActivityUpdate, {}),
]


@pytest.mark.parametrize(("model", "valid"), INPUTS, ids=[m.__name__ for m, _ in INPUTS])
def test_inputs_refuse_unknown_fields(model: type[BaseModel], valid: dict[str, Any]) -> None:
    model.model_validate(valid)
    with pytest.raises(ValidationError, match="colour"):
        model.model_validate({**valid, "colour": "red"})


def test_person_addresses_are_validated_and_deduplicated() -> None:
    body = PersonCreate(name="P", emails=["a@Example.com", "A@EXAMPLE.COM", "b@münchen.de"])
    assert body.emails == ["a@example.com", "b@münchen.de"]
    with pytest.raises(ValidationError, match=r"emails\.1"):
        PersonCreate(name="P", emails=["a@example.com", "no-at-sign"])
    with pytest.raises(ValidationError, match="emails"):
        PersonCreate(name="P", emails=[f"a{n}@example.com" for n in range(MAX_EMAILS + 1)])
    with pytest.raises(ValidationError, match="name"):
        PersonCreate(emails=["a@example.com"])


def test_address_keys_are_lower_case_with_idna_domains() -> None:
    assert address_key("Ann.Lee@Bücher.DE") == "ann.lee@xn--bcher-kva.de"
    assert address_key("dev@demo.crmsync.test") == "dev@demo.crmsync.test"
    with pytest.raises(ValueError, match="special-use"):
        address_key("someone@intranet.local")


def test_money_and_times_are_checked() -> None:
    with pytest.raises(ValidationError, match="value"):
        DealCreate.model_validate({"title": "T", "value": "-0.01"})
    with pytest.raises(ValidationError, match="currency"):
        DealCreate.model_validate({"title": "T", "currency": "euro"})
    with pytest.raises(ValidationError, match="start"):
        ActivityCreate.model_validate({"subject": "S", "start": "2030-01-01T09:00:00"})
    with pytest.raises(ValidationError, match="type"):
        ActivityCreate.model_validate({"subject": "S", "start": NOW, "type": "Big Meeting"})
    assert ActivityCreate.model_validate({"subject": "S", "start": NOW, "type": "demo"})


@pytest.mark.parametrize("start", ["0001-01-01T00:30:00+01:00", "1850-01-01T00:00:00Z"])
def test_activity_times_outside_the_key_range_are_refused(start: str) -> None:
    with pytest.raises(ValidationError, match="start"):
        ActivityCreate.model_validate({"subject": "S", "start": start})


def test_activity_times_are_kept_in_utc() -> None:
    body = ActivityCreate.model_validate({"subject": "S", "start": "2030-01-01T10:00:00+02:00"})
    assert body.start == datetime(2030, 1, 1, 8, tzinfo=UTC)
    assert body.start.utcoffset() == timedelta(0)
