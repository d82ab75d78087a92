"""In-memory fakes of what templates and signatures need: the directory's read, the template
store and the signature store, each with the version conditions of the DynamoDB adapter."""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

from crmsync.errors import ConflictError, NotFoundError, ValidationFailedError
from crmsync.models.directory import Record
from crmsync.models.identity import Principal
from crmsync.models.pages import Page
from crmsync.models.templates import (
    DefaultChange,
    DefaultSignature,
    Signature,
    SignatureSet,
    Template,
    TemplateOrder,
    TemplateSummary,
)
from crmsync.services.directory import can_read
from crmsync.store.templates import name_key

R = TypeVar("R", bound=Record)


class FakeDirectory:
    """DirectoryService.get over a dict: NotFoundError for missing or unreadable records."""

    def __init__(self, *records: Record) -> None:
        self.records: dict[tuple[type[Record], str], Record] = {}
        self.reads: list[tuple[str, str]] = []
        for record in records:
            self.add(record)

    def add(self, record: Record) -> None:
        self.records[(type(record), record.id)] = record

    def get(self, principal: Principal, record_type: type[R], record_id: str) -> R:
        self.reads.append((record_type.__name__, record_id))
        found = self.records.get((record_type, record_id))
        if not isinstance(found, record_type) or not can_read(principal, found):
            raise NotFoundError(f"{record_type.__name__} {record_id} not found.")
        return found


class FakeTemplateStore:
    def __init__(self) -> None:
        self.templates: dict[tuple[str, str], Template] = {}
        self.conflicts_to_raise = 0

    def get(self, company_id: str, template_id: str) -> Template | None:
        found = self.templates.get((company_id, template_id))
        return found.model_copy(deep=True) if found else None

    def create(self, company_id: str, template: Template) -> None:
        if (company_id, template.id) in self.templates:
            raise ConflictError("exists")
        self.templates[(company_id, template.id)] = template

    def replace(self, company_id: str, seen: Template, template: Template) -> None:
        stored = self.templates.get((company_id, seen.id))
        if self.conflicts_to_raise:
            self.conflicts_to_raise -= 1
            raise ConflictError("raced")
        if stored is None or stored.version != seen.version:
            raise ConflictError("changed meanwhile")
        self.templates[(company_id, seen.id)] = template

    def delete(self, company_id: str, seen: Template) -> None:
        stored = self.templates.get((company_id, seen.id))
        if stored is None or stored.version != seen.version:
            raise ConflictError("changed meanwhile")
        del self.templates[(company_id, seen.id)]

    def list(
        self,
        company_id: str,
        order: TemplateOrder,
        limit: int,
        cursor: str | None,
        accept: Callable[[TemplateSummary], bool],
    ) -> Page[TemplateSummary]:
        """The cursor is the position reached, as a decimal string."""
        mine = [t.summary() for (c, _), t in self.templates.items() if c == company_id]
        if order == "name":
            mine.sort(key=lambda t: (name_key(t.name), t.id))
        else:
            mine.sort(key=lambda t: (t.updated_at, t.id), reverse=True)
        if cursor is not None and not cursor.isdigit():
            raise ValidationFailedError("The cursor is not valid.")
        start = int(cursor or 0)
        items: list[TemplateSummary] = []
        for position in range(start, len(mine)):
            if accept(mine[position]):
                items.append(mine[position])
            if len(items) == limit:
                more = position + 1 < len(mine)
                return Page(items=items, next_cursor=str(position + 1) if more else None)
        return Page(items=items, next_cursor=None)


class FakeSignatureStore:
    """Per user: signatures by id and the default pointer, with the adapter's conditions."""

    def __init__(self) -> None:
        self.signatures_of: dict[tuple[str, str], dict[str, Signature]] = {}
        self.pointers: dict[tuple[str, str], DefaultSignature] = {}
        self.before_write: Callable[[], None] | None = None

    def signatures(self, company_id: str, user_id: str) -> SignatureSet:
        pointer = self.pointers.get((company_id, user_id))
        items = [
            s.model_copy(
                update={"is_default": pointer is not None and pointer.signature_id == s.id}
            )
            for s in self.signatures_of.get((company_id, user_id), {}).values()
        ]
        return SignatureSet(items=items, default=pointer)

    def _check_pointer(self, key: tuple[str, str], change: DefaultChange | None) -> None:
        if change is None:
            return
        current = self.pointers.get(key)
        if (current is None) != (change.seen is None) or (
            current is not None
            and change.seen is not None
            and current.version != change.seen.version
        ):
            raise ConflictError("default changed meanwhile")

    def _apply_pointer(self, key: tuple[str, str], change: DefaultChange | None) -> None:
        if change is None:
            return
        if change.signature_id is None:
            self.pointers.pop(key, None)
        else:
            version = change.seen.version + 1 if change.seen else 1
            self.pointers[key] = DefaultSignature(signature_id=change.signature_id, version=version)

    def _hook(self) -> None:
        if self.before_write is not None:
            hook, self.before_write = self.before_write, None
            hook()

    def create(
        self, company_id: str, user_id: str, signature: Signature, default: DefaultChange | None
    ) -> None:
        self._hook()
        key = (company_id, user_id)
        mine = self.signatures_of.setdefault(key, {})
        if signature.id in mine:
            raise ConflictError("exists")
        self._check_pointer(key, default)
        mine[signature.id] = signature.model_copy(update={"is_default": False})
        self._apply_pointer(key, default)

    def replace(
        self,
        company_id: str,
        user_id: str,
        seen: Signature,
        signature: Signature,
        default: DefaultChange | None,
    ) -> None:
        self._hook()
        key = (company_id, user_id)
        mine = self.signatures_of.setdefault(key, {})
        stored = mine.get(seen.id)
        if stored is None or stored.version != seen.version:
            raise ConflictError("changed meanwhile")
        self._check_pointer(key, default)
        mine[seen.id] = signature.model_copy(update={"is_default": False})
        self._apply_pointer(key, default)

    def delete(
        self, company_id: str, user_id: str, seen: Signature, default: DefaultChange | None
    ) -> None:
        self._hook()
        key = (company_id, user_id)
        mine = self.signatures_of.setdefault(key, {})
        stored = mine.get(seen.id)
        if stored is None or stored.version != seen.version:
            raise ConflictError("changed meanwhile")
        self._check_pointer(key, default)
        del mine[seen.id]
        self._apply_pointer(key, default)
