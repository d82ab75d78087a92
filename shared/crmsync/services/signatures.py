"""A user's signatures (SPEC I4): private to the user, at most one the default."""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable
from typing import TypeVar

from pydantic import ValidationError

from crmsync.clock import Clock
from crmsync.errors import ConflictError, NotFoundError
from crmsync.mail.authored_html import clean_authored_html
from crmsync.models.identity import Principal
from crmsync.models.templates import (
    MAX_SIGNATURE_HTML_BYTES,
    MAX_SIGNATURES,
    DefaultChange,
    Signature,
    SignatureCreate,
    SignatureSet,
    SignatureUpdate,
)
from crmsync.ports import SignatureStore
from crmsync.services.directory import WRITE_ATTEMPTS, InvalidFieldsError

T = TypeVar("T")

ID = re.compile(r"[^#\s/]{1,128}")
"""What an id looks like (RecordId); other path values address nothing."""


def new_id() -> str:
    return uuid.uuid4().hex


def cleaned_html(html: str, limit: int) -> str:
    """Authored HTML as it is stored (crmsync.mail.authored_html); 422 when nothing is left
    of it or the cleaned markup outgrew the limit."""
    cleaned = clean_authored_html(html)
    if not cleaned.strip():
        raise InvalidFieldsError("html: nothing is left once scripts and the like are removed.")
    if len(cleaned.encode("utf-8")) > limit:
        raise InvalidFieldsError(f"html: at most {limit // 1024} KB once cleaned.")
    return cleaned


def validated(build: Callable[[], T]) -> T:
    try:
        return build()
    except ValidationError as exc:
        detail = "; ".join(
            f"{'.'.join(str(p) for p in err['loc']) or 'body'}: {err['msg']}"
            for err in exc.errors()
        )
        raise InvalidFieldsError(detail) from exc


def retrying(attempt: Callable[[], T]) -> T:
    """Re-read and re-apply a write that lost a race (WRITE_ATTEMPTS in all, then 409)."""
    for _ in range(WRITE_ATTEMPTS - 1):
        try:
            return attempt()
        except ConflictError:
            continue
    return attempt()


def _find(signatures: SignatureSet, signature_id: str) -> Signature:
    found = next((s for s in signatures.items if s.id == signature_id), None)
    if found is None:
        raise NotFoundError(f"Signature {signature_id} not found.")
    return found


class SignatureService:
    def __init__(
        self, store: SignatureStore, clock: Clock, new_id: Callable[[], str] = new_id
    ) -> None:
        self._store = store
        self._clock = clock
        self._new_id = new_id

    def _read(self, principal: Principal) -> SignatureSet:
        return self._store.signatures(principal.company_id, principal.user_id)

    def list(self, principal: Principal) -> list[Signature]:
        """The default first, then by name."""
        items = self._read(principal).items
        return sorted(items, key=lambda s: (not s.is_default, s.name.casefold(), s.id))

    def get(self, principal: Principal, signature_id: str) -> Signature:
        if not ID.fullmatch(signature_id):
            raise NotFoundError(f"Signature {signature_id} not found.")
        return _find(self._read(principal), signature_id)

    def default(self, principal: Principal) -> Signature | None:
        return next((s for s in self._read(principal).items if s.is_default), None)

    def create(self, principal: Principal, data: SignatureCreate) -> Signature:
        html = cleaned_html(data.html, MAX_SIGNATURE_HTML_BYTES)
        now = self._clock.now()
        signature = Signature(
            id=self._new_id(),
            name=data.name,
            html=html,
            is_default=data.is_default,
            created_at=now,
            updated_at=now,
        )

        def attempt() -> Signature:
            current = self._read(principal)
            if len(current.items) >= MAX_SIGNATURES:
                raise ConflictError(
                    f"You have {MAX_SIGNATURES} signatures, the most there can be: "
                    "delete one first."
                )
            change = (
                DefaultChange(seen=current.default, signature_id=signature.id)
                if data.is_default
                else None
            )
            self._store.create(principal.company_id, principal.user_id, signature, change)
            return signature

        return retrying(attempt)

    def update(self, principal: Principal, signature_id: str, patch: SignatureUpdate) -> Signature:
        """Only the fields sent change. `is_default: true` makes it the default (the previous
        default stops being one), `false` leaves the user without a default if it was it."""
        changes = patch.model_dump(exclude_unset=True)
        if changes.get("html") is not None:
            changes["html"] = cleaned_html(changes["html"], MAX_SIGNATURE_HTML_BYTES)
        wanted_default = changes.pop("is_default", None)

        def attempt() -> Signature:
            if not ID.fullmatch(signature_id):
                raise NotFoundError(f"Signature {signature_id} not found.")
            current = self._read(principal)
            seen = _find(current, signature_id)
            is_default = seen.is_default if wanted_default is None else wanted_default
            change = None
            if is_default != seen.is_default:
                change = DefaultChange(
                    seen=current.default, signature_id=seen.id if is_default else None
                )
            fields = {
                **seen.model_dump(),
                **changes,
                "is_default": is_default,
                "updated_at": self._clock.now(),
                "version": seen.version + 1,
            }
            signature = validated(lambda: Signature.model_validate(fields))
            self._store.replace(principal.company_id, principal.user_id, seen, signature, change)
            return signature

        return retrying(attempt)

    def delete(self, principal: Principal, signature_id: str) -> None:
        """Deleting the default leaves the user without one."""

        def attempt() -> None:
            if not ID.fullmatch(signature_id):
                raise NotFoundError(f"Signature {signature_id} not found.")
            current = self._read(principal)
            seen = _find(current, signature_id)
            change = DefaultChange(seen=current.default) if seen.is_default else None
            self._store.delete(principal.company_id, principal.user_id, seen, change)

        retrying(attempt)
