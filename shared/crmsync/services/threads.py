"""A thread's summary and links, recomputed from its messages (SPEC S7, L1, L2).

Recomputing from the stored messages (rather than adding to counters) makes every change
idempotent: a redelivered job or a re-match yields the same thread. Two workers that change
one thread at once are ordered by the thread's version: the loser reads again and recomputes,
so the last write always saw every message.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime

from crmsync.models.accounts import MailAccount
from crmsync.models.events import DomainEvent
from crmsync.models.mail import Box, Participant, StoredMessage, Thread, Visibility
from crmsync.models.parsed import Address
from crmsync.models.threads import LinkRecord, SubjectThread
from crmsync.ports import ContactDirectory, EventPublisher, ThreadStore
from crmsync.services.linking import plan_links

SAVE_ATTEMPTS = 5


@dataclass(frozen=True)
class ThreadEdit:
    """A user's change to a thread, applied to what was read under the thread's version
    check, so it never overwrites a sync that landed meanwhile (and a sync never undoes it).

    - `link`: a manual link, or a manual unlink (`active=False`, a tombstone that keeps the
      automatic link away);
    - `visibility`: the per-thread sharing override (SPEC L4);
    - `archived` / `deleted`: the CRM's archive and delete (SPEC S9), stamped `at`;
    - `read`: marks every message read or unread in the CRM."""

    at: datetime
    link: LinkRecord | None = None
    visibility: Visibility | None = None
    archived: bool | None = None
    deleted: bool = False
    read: bool | None = None

    def apply(self, thread: Thread, links: list[LinkRecord]) -> tuple[Thread, list[LinkRecord]]:
        changes: dict[str, object] = {}
        if self.visibility is not None:
            changes["visibility"] = self.visibility
        if self.archived is not None:
            changes["archived_at"] = self.at if self.archived else None
        if self.deleted:
            changes["deleted_at"] = self.at
        if self.link is not None:
            target = self.link.target
            links = [*(link for link in links if link.target != target), self.link]
        return thread.model_copy(update=changes), links


class ThreadNotFoundError(LookupError):
    """An edit of a thread that does not exist (any more)."""


class ThreadConflictError(RuntimeError):
    """The thread kept changing under us; the job is retried by the queue."""


class ThreadAssembler:
    def __init__(
        self,
        store: ThreadStore,
        contacts: ContactDirectory,
        events: EventPublisher,
        now: Callable[[], datetime],
    ) -> None:
        self._store = store
        self._contacts = contacts
        self._events = events
        self._now = now

    def assemble(
        self, account: MailAccount, thread_id: str, edit: ThreadEdit | None = None
    ) -> Thread | None:
        """Recompute the thread from its messages; with `edit`, apply a user's change to
        what was read, under the same version check (ThreadNotFoundError: no such thread)."""
        for _ in range(SAVE_ATTEMPTS):
            old = self._store.thread(account.company_id, thread_id)
            messages = self._store.thread_messages(account.company_id, thread_id)
            links = self._store.thread_links(account.company_id, thread_id)
            if edit is not None:
                if old is None or not messages:
                    raise ThreadNotFoundError(thread_id)
                if edit.read is not None:
                    messages = self._mark_read(messages, read=edit.read)
            if not messages:
                if old is None:
                    return None
                if _holds_user_state(account, old, links):
                    # Its last message left (perhaps moved: the new folder's copy comes
                    # next): keep what the user chose, out of every list, for its return.
                    if _emptied_already(old, links):
                        return None
                    emptied = _emptied(old)
                    keep = [link for link in links if link.manual]
                    drop = [link for link in links if not link.manual]
                    if self._store.save_thread(emptied, old, keep, drop):
                        self._publish(emptied, "thread.deleted")
                        return None
                    continue
                if self._store.delete_thread(old, links):
                    self._publish(old, "thread.deleted")
                    return None
                continue
            base, base_links = old, links
            if edit is not None and old is not None:
                base, base_links = edit.apply(old, list(links))
            thread, keep, drop = self._summary(account, thread_id, base, messages, base_links)
            if old is not None and _same(old, thread) and not drop and _same_links(links, keep):
                return old
            if self._store.save_thread(thread, old, keep, drop):
                self._after_save(account, old, thread)
                return thread
        raise ThreadConflictError(thread_id)

    def _mark_read(self, messages: Sequence[StoredMessage], *, read: bool) -> list[StoredMessage]:
        """The CRM's read state at once; the server's flags follow by a mailbox action, and
        then come back unchanged (so they never undo this)."""
        marked: list[StoredMessage] = []
        for message in messages:
            if message.unread == read:
                message = message.model_copy(update={"unread": not read})
                self._store.update_message(message)
            marked.append(message)
        return marked

    def _summary(
        self,
        account: MailAccount,
        thread_id: str,
        old: Thread | None,
        messages: Sequence[StoredMessage],
        links: Sequence[LinkRecord],
    ) -> tuple[Thread, list[LinkRecord], list[LinkRecord]]:
        ordered = sorted(messages, key=lambda m: (m.date, m.id))
        addresses = _participants(ordered)
        owners = self._contacts.address_owners(account.company_id, [a.email for a in addresses])
        own = {account.email.lower()}
        person_of: dict[str, str | None] = {}
        for address in addresses:
            owner = owners.get(address.email)
            contact = address.email not in own and owner is not None and not owner.user
            person_of[address.email] = owner.person_ids[0] if contact and owner else None
        persons = sorted(
            {
                person
                for address in addresses
                if address.email not in own
                and (owner := owners.get(address.email)) is not None
                and not owner.user
                for person in owner.person_ids
            }
        )
        deals = self._contacts.open_deals(account.company_id, persons) if persons else []
        plan = plan_links(links, persons, deals, account.settings.deal_linking)
        latest = ordered[-1]
        thread = Thread(
            id=thread_id,
            account_id=account.id,
            company_id=account.company_id,
            owner_user_id=account.user_id,
            subject=ordered[0].subject or latest.subject,
            thread_subject=ordered[0].thread_subject,
            message_count=len(ordered),
            unread_count=sum(1 for m in ordered if m.unread),
            participants=[
                Participant(email=a.email, name=a.name, person_id=person_of[a.email])
                for a in addresses
            ],
            links=[link.public() for link in plan.active],
            first_message_at=ordered[0].date,
            last_message_at=latest.date,
            snippet=latest.snippet,
            has_attachments=any(
                not attachment.inline for m in ordered for attachment in m.attachments
            ),
            tracked=any(m.tracked for m in ordered),
            folders=sorted({folder for m in ordered for folder in m.folders}),
            archived_at=old.archived_at if old else None,
            deleted_at=old.deleted_at if old else None,
            visibility=old.visibility if old else account.settings.sharing_default,
            version=(old.version if old else 0) + 1,
        )
        return with_boxes(thread, ordered), plan.keep, plan.drop

    def _after_save(self, account: MailAccount, old: Thread | None, thread: Thread) -> None:
        known = {p.email for p in old.participants} if old else set()
        fresh = [p.email for p in thread.participants if p.email not in known]
        if fresh:
            self._store.index_participants(account.company_id, thread, fresh)
        if thread.thread_subject:
            self._store.remember_subject(
                account.company_id,
                account.id,
                SubjectThread(
                    thread_id=thread.id,
                    thread_subject=thread.thread_subject,
                    last_message_at=thread.last_message_at,
                    addresses=[p.email for p in thread.participants][:50],
                ),
            )
        self._publish(thread, "thread.updated")

    def _publish(self, thread: Thread, detail_type: str) -> None:
        """Ids and link targets only: never a subject, a body or an address."""
        self._events.publish(
            [
                DomainEvent(
                    detail_type=detail_type,
                    company_id=thread.company_id,
                    occurred_at=self._now(),
                    detail={
                        "thread_id": thread.id,
                        "account_id": thread.account_id,
                        "owner_user_id": thread.owner_user_id,
                        "message_count": thread.message_count,
                        "links": [link.model_dump() for link in thread.links],
                        "version": thread.version,
                    },
                )
            ]
        )


def in_inbox(message: StoredMessage) -> bool:
    """In the server's inbox: the INBOX folder, or Gmail's \\Inbox label in All Mail."""
    return any(
        loc.role == "inbox" or (loc.role == "all" and "\\Inbox" in message.gm_labels)
        for loc in message.locations
    )


def with_boxes(thread: Thread, messages: Sequence[StoredMessage]) -> Thread:
    """Which lists the thread is in (SPEC I1, S9), from where its messages are on the server
    and what the user did in the CRM. A message dated after the CRM's archive or delete
    brings the thread back, as a mail app does.

    - deleted: deleted in the CRM and nothing newer since: in no list;
    - inbox: a message is in the server's inbox and the thread is not archived in the CRM;
    - sent: the user sent a message of it;
    - archive: not in the inbox, and archived in the CRM or holding received mail.
    """
    newest = max((m.date for m in messages), default=thread.last_message_at)
    deleted = thread.deleted_at is not None and newest <= thread.deleted_at
    archived = thread.archived_at is not None and not any(
        in_inbox(m) and m.date > thread.archived_at for m in messages
    )
    boxes: list[Box] = []
    if not deleted:
        inbox = not archived and any(in_inbox(m) for m in messages)
        if inbox:
            boxes.append("inbox")
        if any(m.direction == "outbound" for m in messages):
            boxes.append("sent")
        if not inbox and (archived or any(m.direction == "inbound" for m in messages)):
            boxes.append("archive")
    return thread.model_copy(update={"boxes": boxes, "archived": archived, "deleted": deleted})


def _holds_user_state(account: MailAccount, thread: Thread, links: Sequence[LinkRecord]) -> bool:
    """Whether the thread carries a choice of the user's that must outlive its messages: a
    manual link or unlink, or its own sharing. (A CRM archive or delete has no meaning once
    the messages are gone; a message restored in the mail app shows again.)"""
    return (
        any(link.manual for link in links) or thread.visibility != account.settings.sharing_default
    )


def _emptied(thread: Thread) -> Thread:
    """A thread whose messages all left the mailbox: in no list, readable by no one, kept
    only for the user's choices (links, sharing, CRM state) should a message come back."""
    return thread.model_copy(
        update={
            "message_count": 0,
            "unread_count": 0,
            "participants": [],
            "links": [link for link in thread.links if link.reason == "manual"],
            "snippet": "",
            "has_attachments": False,
            "tracked": False,
            "folders": [],
            "boxes": [],
            "archived": False,
            "deleted": True,
            "archived_at": None,
            "deleted_at": None,
            "version": thread.version + 1,
        }
    )


def _emptied_already(thread: Thread, links: Sequence[LinkRecord]) -> bool:
    return thread.message_count == 0 and all(link.manual for link in links)


def _participants(messages: Iterable[StoredMessage]) -> list[Address]:
    seen: dict[str, Address] = {}
    for message in messages:
        for address in [message.from_, *message.to, *message.cc]:
            if address is None:
                continue
            known = seen.get(address.email)
            if known is None or (address.name and not known.name):
                seen[address.email] = address
    return list(seen.values())


def _same(old: Thread, new: Thread) -> bool:
    return old.model_dump(exclude={"version"}) == new.model_dump(exclude={"version"})


def _same_links(stored: Sequence[LinkRecord], keep: Sequence[LinkRecord]) -> bool:
    return sorted(map(_link_sort, stored)) == sorted(map(_link_sort, keep))


def _link_sort(link: LinkRecord) -> tuple[str, str, str, bool]:
    return (link.type, link.id, link.reason, link.active)
