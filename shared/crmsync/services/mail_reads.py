"""Reading synced mail: threads, messages, raw MIME, and who may read them (SPEC I1, L4, L5).

`can_read_thread` is the one rule, and every read route goes through it:
- the owner of the mailbox reads every thread of it;
- anyone else (admins included) reads a thread only when it is *shared* and linked to a
  person, deal, lead or project they can read (the directory's rule: the record's owner,
  or a record visible to the company; admins read every record);
- a private thread is the owner's alone, everywhere.
A thread the caller may not read answers 404, like a missing one, so ids cannot be probed.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from pydantic import BaseModel, Field

from crmsync.errors import NotFoundError
from crmsync.models.identity import Principal
from crmsync.models.mail import StoredMessage, Thread
from crmsync.models.pages import Page
from crmsync.ports import AccountRepository, RawMailStore, ThreadStore

MAX_LINK_PAGES = 8


class MessageView(BaseModel):
    """A message as the API shows it: metadata, sanitised HTML and text, attachments."""

    id: str
    thread_id: str
    account_id: str
    message_id_header: str | None
    from_: dict[str, Any] | None = Field(serialization_alias="from")
    to: list[dict[str, Any]]
    cc: list[dict[str, Any]]
    subject: str
    date: str
    snippet: str
    text: str
    html: str | None
    unread: bool
    direction: str
    folder: str | None
    folders: list[str]
    attachments: list[dict[str, Any]]
    calendar: list[dict[str, Any]]
    defects: list[str]
    unparseable: bool


class ThreadDetail(Thread):
    messages: list[MessageView] = Field(default_factory=list)


RecordAccess = Callable[[Principal, str, str], bool]
"""(principal, link type, record id) -> whether the directory lets the principal read it."""


def can_read_thread(principal: Principal, thread: Thread, can_read_record: RecordAccess) -> bool:
    if thread.company_id != principal.company_id:
        return False
    if thread.owner_user_id == principal.user_id:
        return True
    return thread.visibility == "shared" and any(
        can_read_record(principal, link.type, link.id) for link in thread.links
    )


def remembered(access: RecordAccess) -> RecordAccess:
    """The same answers, each asked once (a page of threads often links one record)."""
    seen: dict[tuple[str, str, str, str], bool] = {}

    def ask(principal: Principal, link_type: str, record_id: str) -> bool:
        key = (principal.company_id, principal.user_id, link_type, record_id)
        if key not in seen:
            seen[key] = access(principal, link_type, record_id)
        return seen[key]

    return ask


def _emptied(thread: Thread) -> bool:
    """Every message left the mailbox; the thread is kept only for the user's choices."""
    return thread.deleted and thread.message_count == 0


class MailReader:
    def __init__(
        self,
        accounts: AccountRepository,
        store: ThreadStore,
        raw: RawMailStore,
        can_read_record: RecordAccess,
    ) -> None:
        self._accounts = accounts
        self._store = store
        self._raw = raw
        self._can_read_record = can_read_record

    def linked_threads(
        self,
        principal: Principal,
        link_type: str,
        target_id: str,
        limit: int,
        cursor: str | None,
    ) -> Page[Thread]:
        """Threads linked to a record the caller may read, newest first (SPEC L5)."""
        access = remembered(self._can_read_record)
        if not access(principal, link_type, target_id):
            raise NotFoundError(f"No {link_type} {target_id}.")
        shown: list[Thread] = []
        next_cursor = cursor
        for _ in range(MAX_LINK_PAGES):
            items, next_cursor = self._store.linked_threads(
                principal.company_id, link_type, target_id, limit - len(shown), next_cursor
            )
            readable = [
                str(item["thread_id"])
                for item in items
                if item.get("owner_user_id") == principal.user_id
                or item.get("visibility") == "shared"
            ]
            threads = self._store.threads(principal.company_id, readable)
            shown += [
                threads[t]
                for t in readable
                if t in threads
                and not _emptied(threads[t])
                and can_read_thread(principal, threads[t], access)
            ]
            if next_cursor is None or len(shown) >= limit:
                break
        return Page(items=shown, next_cursor=next_cursor)

    def thread(self, principal: Principal, thread_id: str) -> ThreadDetail:
        thread = self._readable_thread(principal, thread_id)
        messages = sorted(
            self._store.thread_messages(principal.company_id, thread_id),
            key=lambda m: (m.date, m.id),
        )
        return ThreadDetail(**thread.model_dump(), messages=[self._view(m) for m in messages])

    def message(self, principal: Principal, message_key: str) -> MessageView:
        return self._view(self._readable_message(principal, message_key))

    def readable_message(self, principal: Principal, message_key: str) -> StoredMessage:
        """The message when the caller may read its thread; NotFoundError otherwise (e.g.
        before showing its tracking)."""
        return self._readable_message(principal, message_key)

    def raw(self, principal: Principal, message_key: str) -> bytes:
        return self._raw.get_raw(self._readable_message(principal, message_key).raw_key)

    def attachment_url(self, principal: Principal, message_key: str, index: int) -> str:
        """A short-lived download link to attachment `index` of a message the caller reads."""
        message = self._readable_message(principal, message_key)
        found = [a for a in message.attachments if a.index == index]
        try:
            if not found:
                raise LookupError(index)
            return self._raw.attachment_url(
                message.company_id, message.account_id, message.id, message.raw_key, found[0]
            )
        except LookupError as exc:
            raise NotFoundError(f"Message {message_key} has no attachment {index}.") from exc

    # -- plumbing ---------------------------------------------------------------------------
    def _readable_thread(self, principal: Principal, thread_id: str) -> Thread:
        thread = self._store.thread(principal.company_id, thread_id)
        if (
            thread is None
            or _emptied(thread)
            or not can_read_thread(principal, thread, self._can_read_record)
        ):
            raise NotFoundError(f"Thread {thread_id} not found.")
        return thread

    def _readable_message(self, principal: Principal, message_key: str) -> StoredMessage:
        message = self._store.find_message(principal.company_id, message_key)
        if message is None:
            raise NotFoundError(f"Message {message_key} not found.")
        self._readable_thread(principal, message.thread_id)
        return message

    def _view(self, message: StoredMessage) -> MessageView:
        bodies: dict[str, Any] = {"text": "", "html": None}
        if message.parsed_key:
            bodies = json.loads(self._raw.get_parsed(message.parsed_key))
        folders = message.folders
        downloads = f"/v1/messages/{message.id}/attachments"  # the API route, never a URL
        return MessageView(
            id=message.id,
            thread_id=message.thread_id,
            account_id=message.account_id,
            message_id_header=message.message_id_header,
            from_=message.from_.model_dump() if message.from_ else None,
            to=[a.model_dump() for a in message.to],
            cc=[a.model_dump() for a in message.cc],
            subject=message.subject,
            date=message.date.isoformat(),
            snippet=message.snippet,
            text=str(bodies.get("text") or ""),
            html=bodies.get("html"),
            unread=message.unread,
            direction=message.direction,
            folder=folders[0] if folders else None,
            folders=folders,
            attachments=[
                {**a.model_dump(), "download_url": f"{downloads}/{a.index}"}
                for a in message.attachments
            ],
            calendar=[c.model_dump() for c in message.calendar],
            defects=message.defects,
            unparseable=message.unparseable,
        )
