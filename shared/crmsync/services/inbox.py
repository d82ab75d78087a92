"""The inbox (SPEC I1, item 5 of the inbox issue): the caller's own threads by folder with
filters, newest first, and the unread counts.

Only the caller's own mailboxes are listed: colleagues' shared threads appear on the CRM
records they are linked to. Each page is one Query on one entry partition of the caller
(models/inbox.py says which entries a thread has), planned by `plan_query`: the most
selective filter picks the partition, the date range bounds its sort key, and every other
filter is a server-side FilterExpression on the entry's attributes.
"""

from __future__ import annotations

from typing import Literal

from crmsync.errors import NotFoundError
from crmsync.models.identity import Principal
from crmsync.models.inbox import (
    AccountCounts,
    Condition,
    FolderCounts,
    InboxFilter,
    InboxQuery,
    MailCounts,
    entry_sort_key,
)
from crmsync.models.mail import Thread
from crmsync.models.pages import Page
from crmsync.ports import AccountRepository, InboxIndex, ThreadStore
from crmsync.services.sync_status import visible_account

FlagAttribute = Literal["tracked", "attach", "unread"]


def plan_query(wanted: InboxFilter) -> InboxQuery:
    """The entry partition to read and the filters left for the FilterExpression.

    Partition, most selective first: a linked record, a participant, the longest search
    word, tracked, with attachments, unread, linked/unlinked, else the folder's list."""
    links = wanted.link_targets
    # The longest word is likely the rarest; ties in the order given.
    search = sorted(wanted.query_words, key=len, reverse=True)
    flags: tuple[tuple[str, FlagAttribute, bool | None], ...] = (
        ("TRACKED", "tracked", wanted.tracked),
        ("ATTACH", "attach", wanted.has_attachments),
        ("UNREAD", "unread", wanted.unread),
    )
    if links:
        entry = f"LINK#{links[0]}"
    elif wanted.participant:
        entry = f"ADDR#{wanted.participant}"
    elif search:
        entry = f"TERM#{search[0]}"
    elif flagged := [name for name, _, value in flags if value]:
        entry = flagged[0]
    elif wanted.linked is not None:
        entry = "LINKED" if wanted.linked else "UNLINKED"
    else:
        entry = f"BOX#{wanted.folder}"

    conditions: list[Condition] = []
    if wanted.folder != "all" and entry != f"BOX#{wanted.folder}":
        conditions.append(Condition(attribute="boxes", op="contains", value=wanted.folder))
    if wanted.account_id is not None:
        conditions.append(Condition(attribute="account_id", op="eq", value=wanted.account_id))
    for name, attribute, value in flags:
        if value is not None and entry != name:
            conditions.append(Condition(attribute=attribute, op="eq", value=value))
    if wanted.linked is not None and entry not in {"LINKED", "UNLINKED"}:
        conditions.append(Condition(attribute="linked", op="eq", value=wanted.linked))
    conditions += [
        Condition(attribute="links", op="contains", value=link)
        for link in links
        if entry != f"LINK#{link}"
    ]
    if wanted.participant and entry != f"ADDR#{wanted.participant}":
        conditions.append(Condition(attribute="addrs", op="contains", value=wanted.participant))
    conditions += [
        Condition(attribute="terms", op="contains", value=word)
        for word in search
        if entry != f"TERM#{word}"
    ]
    return InboxQuery(
        entry=entry,
        since=wanted.since_at,
        until=wanted.until_at,
        conditions=tuple(conditions),
    )


class InboxService:
    def __init__(self, accounts: AccountRepository, threads: ThreadStore, index: InboxIndex):
        self._accounts = accounts
        self._threads = threads
        self._index = index

    def threads(
        self, principal: Principal, wanted: InboxFilter, limit: int, cursor: str | None
    ) -> Page[Thread]:
        if wanted.account_id is not None:
            account = visible_account(self._accounts, principal, wanted.account_id)
            if account.user_id != principal.user_id:
                # The inbox is the caller's own mail; an admin reads a colleague's shared
                # threads on the records they are linked to.
                raise NotFoundError(f"Mail account {wanted.account_id} not found.")
        found, next_cursor = self._index.entries(
            principal.company_id, principal.user_id, plan_query(wanted), limit, cursor
        )
        threads = self._threads.threads(principal.company_id, [t for t, _ in found])
        items = [
            thread
            for thread_id, sort_key in found
            if (thread := threads.get(thread_id)) is not None
            and _current(principal, thread, sort_key)
        ]
        return Page(items=items, next_cursor=next_cursor)

    def counts(self, principal: Principal) -> MailCounts:
        """Every own account (zeros when it has no mail yet), plus accounts removed whose
        mail is kept until the retention sweep, so the total matches the `all` list."""
        accounts = {
            a.id: a.email
            for a in self._accounts.list_for_user(principal.company_id, principal.user_id)
        }
        counters = self._index.counters(principal.company_id, principal.user_id)
        shown: list[AccountCounts] = []
        for account_id in sorted({*accounts, *counters}):
            folders = FolderCounts.from_counters(counters.get(account_id, {}))
            if account_id not in accounts and folders == FolderCounts():
                continue
            shown.append(
                AccountCounts(
                    account_id=account_id, email=accounts.get(account_id), folders=folders
                )
            )
        total = FolderCounts()
        for account in shown:
            total = total.plus(account.folders)
        return MailCounts(accounts=shown, total=total)


def _current(principal: Principal, thread: Thread, sort_key: str) -> bool:
    """The entry is the thread as stored now (not an entry a broken write left behind)."""
    return (
        thread.owner_user_id == principal.user_id
        and thread.company_id == principal.company_id
        and not thread.deleted
        and entry_sort_key(thread) == sort_key
    )
