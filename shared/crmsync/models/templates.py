"""Mail templates and personal signatures (SPEC I4).

A template is owned like a directory record (`owner_id`, `visibility` "company" or "owner",
see models/directory.py) and versioned the same way. A signature belongs to one user; at most
one of the user's signatures is the default. Sizes are bounded so a template (body and text)
fits one DynamoDB item (400 KB) and a user's signatures fit one answer.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, Field, StringConstraints

from crmsync.models.directory import Input, OwnedRecord, RecordId, Visibility

MAX_TEMPLATE_HTML_BYTES = 256 * 1024
MAX_TEMPLATE_TEXT_BYTES = 64 * 1024
MAX_SIGNATURE_HTML_BYTES = 64 * 1024
"""A signature is appended to every message and a user's signatures are listed whole."""
MAX_SIGNATURES = 20
"""Signatures per user."""
MAX_SUBJECT_CHARS = 998
"""RFC 5322's line limit."""


def _at_most(limit: int) -> AfterValidator:
    def check(value: str) -> str:
        size = len(value.encode("utf-8"))
        if size > limit:
            raise ValueError(f"at most {limit // 1024} KB (UTF-8), got {size} bytes")
        return value

    return AfterValidator(check)


Name = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200)]
Subject = Annotated[str, StringConstraints(max_length=MAX_SUBJECT_CHARS)]
TemplateHtml = Annotated[str, StringConstraints(min_length=1), _at_most(MAX_TEMPLATE_HTML_BYTES)]
TemplateText = Annotated[str, _at_most(MAX_TEMPLATE_TEXT_BYTES)]
SignatureHtml = Annotated[str, StringConstraints(min_length=1), _at_most(MAX_SIGNATURE_HTML_BYTES)]


# ---------------------------------------------------------------- templates

TemplateOrder = Literal["updated", "name"]
"""List orders: newest update first, or by name (case-insensitive, A to Z)."""


class TemplateCreate(Input):
    name: Name
    subject: Subject = Field(default="", description="May use smart fields.")
    html: TemplateHtml = Field(description="The body; may use smart fields. Cleaned on save.")
    text: TemplateText | None = Field(
        default=None, description="Plain-text body; derived from html when absent."
    )
    owner_id: RecordId | None = Field(default=None, description="Defaults to the caller.")
    visibility: Visibility = "company"


class TemplateUpdate(Input):
    name: Name | None = None
    subject: Subject | None = None
    html: TemplateHtml | None = None
    text: TemplateText | None = None
    owner_id: RecordId | None = None
    visibility: Visibility | None = None


class TemplateSummary(OwnedRecord):
    """What a list shows: everything but the bodies."""

    name: str
    subject: str = ""


class Template(TemplateSummary):
    html: str
    text: str | None = None

    def summary(self) -> TemplateSummary:
        return TemplateSummary.model_validate(self.model_dump(exclude={"html", "text"}))


# ---------------------------------------------------------------- signatures


class SignatureCreate(Input):
    name: Name
    html: SignatureHtml = Field(description="May use smart fields. Cleaned on save.")
    is_default: bool = False


class SignatureUpdate(Input):
    name: Name | None = None
    html: SignatureHtml | None = None
    is_default: bool | None = None


class Signature(BaseModel):
    """One of a user's signatures; `is_default` is true for at most one of them."""

    id: str
    name: str
    html: str
    is_default: bool = False
    created_at: datetime
    updated_at: datetime
    version: int = Field(default=1, ge=1)


# ---------------------------------------------------------------- rendering


class PreviewRequest(Input):
    """The records whose values fill the smart fields; each is optional."""

    person_id: RecordId | None = None
    deal_id: RecordId | None = None
    lead_id: RecordId | None = None
    project_id: RecordId | None = None
    signature: bool | RecordId = Field(
        default=False,
        description="Append a signature: false (default), true (the caller's default) or an id.",
    )


class RenderedMessage(BaseModel):
    """A message with its smart fields filled: what is sent, or what a preview shows.

    `missing`: fields that had no value and no fallback (they rendered empty); `unknown`:
    `{{…}}` that are not smart fields (left as written)."""

    subject: str
    html: str
    text: str
    missing: list[str] = Field(default_factory=list)
    unknown: list[str] = Field(default_factory=list)


class SmartFieldInfo(BaseModel):
    name: str
    description: str
    example: str


class DefaultSignature(BaseModel):
    """Which signature is a user's default: one item of its own, versioned, so two requests
    that each make a signature the default cannot both win."""

    signature_id: str
    version: int = Field(default=1, ge=1)


class SignatureSet(BaseModel):
    """A user's signatures (`is_default` filled in) and the default pointer as read."""

    items: list[Signature] = Field(default_factory=list)
    default: DefaultSignature | None = None


class DefaultChange(BaseModel):
    """A change of the default pointer, written in the same transaction as the signature:
    `seen` is the pointer as read (None: there was none), `signature_id` the new default
    (None: no default)."""

    seen: DefaultSignature | None = None
    signature_id: str | None = None
