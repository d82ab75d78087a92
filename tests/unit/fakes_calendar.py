"""In-memory fakes of the calendar ports: a CalDAV server (CalendarConnector/CalendarServer)
with the behaviour the sync relies on, the calendar account store and the sync queue.

The server keeps, per calendar, its events by href with an ETag, and a change log so
`changes` answers like RFC 6578 sync-collection (or, with `sync_collection=False`, like a
server without it: a full listing). Conditional writes behave like CalDAV's `If-None-Match: *`
and `If-Match`. Failures are injected: `down` (any problem for every login), a refused
password, read-only calendars (403 on write), deleted calendars (`calendar_missing`).
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from crmsync.clock import iso
from crmsync.models.calendar import (
    CalendarAccount,
    CalendarInfo,
    CalendarSyncJob,
    CollectionChanges,
    RemoteEvent,
    WriteOutcome,
)
from crmsync.models.servers import ConnectionProblem, MailServerError
from crmsync.ports import DueAccount
from crmsync.store import keys

_UID = re.compile(r"^UID:(.+?)\r?$", re.MULTILINE)


def _problem(code: str, message: str, action: str = "") -> MailServerError:
    return MailServerError(ConnectionProblem(code=code, message=message, action=action))


@dataclass
class FakeCalendar:
    info: CalendarInfo
    events: dict[str, tuple[str, str]] = field(default_factory=dict)  # href -> (etag, ics)
    revision: int = 0
    changed_at: dict[str, int] = field(default_factory=dict)  # href -> revision (deletes too)


class FakeCalDavServer:
    """One CalDAV server: users, their calendars (every user sees every calendar here)."""

    def __init__(self, url: str = "https://cal.example.com/") -> None:
        self.url = url
        self.passwords: dict[str, str] = {}
        self.calendars: dict[str, FakeCalendar] = {}
        self.down: ConnectionProblem | None = None
        self.sync_collection = True
        self.logins = 0
        self._etags = itertools.count(1)

    def add_calendar(
        self,
        name: str,
        *,
        writable: bool = True,
        color: str | None = None,
        supports_events: bool = True,
    ) -> CalendarInfo:
        url = f"{self.url}calendars/{name.lower().replace(' ', '-')}/"
        info = CalendarInfo(
            id=CalendarInfo.id_for(url),
            url=url,
            name=name,
            color=color,
            writable=writable,
            supports_events=supports_events,
        )
        self.calendars[url] = FakeCalendar(info)
        return info

    def remove_calendar(self, calendar_id: str) -> None:
        self.calendars = {u: c for u, c in self.calendars.items() if c.info.id != calendar_id}

    def set_writable(self, calendar_id: str, writable: bool) -> None:
        for calendar in self.calendars.values():
            if calendar.info.id == calendar_id:
                calendar.info = calendar.info.model_copy(update={"writable": writable})

    def next_etag(self) -> str:
        return f'"e{next(self._etags)}"'


class FakeCalendarSession:
    """A logged-in connection to the fake server (the CalendarServer port)."""

    def __init__(self, server: FakeCalDavServer) -> None:
        self._server = server
        self._requests = 0

    @property
    def requests_sent(self) -> int:
        return self._requests

    def calendars(self) -> list[CalendarInfo]:
        self._requests += 1
        return [c.info.model_copy() for c in self._server.calendars.values()]

    def changes(self, calendar_url: str, sync_token: str | None) -> CollectionChanges:
        calendar = self._calendar(calendar_url)
        if not self._server.sync_collection:
            return CollectionChanges(
                changed=[RemoteEvent(href=h, etag=e) for h, (e, _) in calendar.events.items()],
                full_listing=True,
            )
        since = int(sync_token) if sync_token else 0
        changed, deleted = [], []
        for href, revision in sorted(calendar.changed_at.items()):
            if revision <= since:
                continue
            if href in calendar.events:
                etag, ics = calendar.events[href]
                changed.append(RemoteEvent(href=href, etag=etag, ics=ics))
            elif sync_token:
                deleted.append(href)
        return CollectionChanges(
            changed=changed, deleted=deleted, sync_token=str(calendar.revision)
        )

    def get(self, calendar_url: str, href: str) -> RemoteEvent | None:
        stored = self._calendar(calendar_url).events.get(href)
        return RemoteEvent(href=href, etag=stored[0], ics=stored[1]) if stored else None

    def find_uid(self, calendar_url: str, uid: str) -> RemoteEvent | None:
        for href, (etag, ics) in self._calendar(calendar_url).events.items():
            found = _UID.search(ics)
            if found and found.group(1).strip() == uid:
                return RemoteEvent(href=href, etag=etag, ics=ics)
        return None

    def put(
        self, calendar_url: str, href: str, ics: str, etag: str | None
    ) -> tuple[WriteOutcome, str | None]:
        calendar = self._writable(calendar_url)
        stored = calendar.events.get(href)
        if etag is None and stored is not None:
            return "exists", stored[0]
        if etag is not None and stored is None:
            return "gone", None
        if etag is not None and stored is not None and stored[0] != etag:
            return "precondition_failed", stored[0]
        new_etag = self._server.next_etag()
        self._record(calendar, href, (new_etag, ics))
        return ("created" if stored is None else "updated"), new_etag

    def delete(self, calendar_url: str, href: str, etag: str | None) -> WriteOutcome:
        calendar = self._writable(calendar_url)
        stored = calendar.events.get(href)
        if stored is None:
            return "gone"
        if etag is not None and stored[0] != etag:
            return "precondition_failed"
        self._record(calendar, href, None)
        return "deleted"

    def _record(self, calendar: FakeCalendar, href: str, value: tuple[str, str] | None) -> None:
        calendar.revision += 1
        calendar.changed_at[href] = calendar.revision
        if value is None:
            calendar.events.pop(href, None)
        else:
            calendar.events[href] = value

    def _calendar(self, calendar_url: str) -> FakeCalendar:
        self._requests += 1
        calendar = self._server.calendars.get(calendar_url)
        if calendar is None:
            raise _problem(
                "calendar_missing",
                "The calendar chosen for sync no longer exists on the server.",
                "Open the calendar sync settings and choose another calendar.",
            )
        return calendar

    def _writable(self, calendar_url: str) -> FakeCalendar:
        calendar = self._calendar(calendar_url)
        if not calendar.info.writable:
            raise _problem(
                "permission_denied",
                "The calendar server says crmsync is not allowed to change events in this "
                "calendar.",
                "Make sure crmsync was given read and write access to the calendar.",
            )
        return calendar


class FakeCalendarConnector:
    """The CalendarConnector port over FakeCalDavServers, by URL (any path under it)."""

    def __init__(self, *servers: FakeCalDavServer) -> None:
        self.servers = list(servers)
        self.sessions: list[FakeCalendarSession] = []

    @contextmanager
    def open(self, url: str, username: str, password: str) -> Iterator[FakeCalendarSession]:
        server = next((s for s in self.servers if url.startswith(s.url)), None)
        if server is None:
            raise _problem(
                "connection_refused", f"Nothing answers on {url}.", "Check the server address."
            )
        if server.down is not None:
            raise MailServerError(server.down)
        server.logins += 1
        if server.passwords.get(username) != password:
            raise _problem(
                "auth_failed",
                "The calendar server refused the user name or password.",
                "Check the user name and password.",
            )
        session = FakeCalendarSession(server)
        self.sessions.append(session)
        yield session


@dataclass
class CalendarPollKeys:
    shard: str
    next_poll_at: str


class FakeCalendarAccountRepository:
    """The calendar account store with its sparse PollDue keys (`CAL#NN`), conditional like
    DynamoCalendarAccountRepository."""

    def __init__(self, shard_count: int = 8) -> None:
        self._shards = shard_count
        self._accounts: dict[tuple[str, str], CalendarAccount] = {}
        self._poll: dict[tuple[str, str], CalendarPollKeys] = {}
        self.credentials: dict[tuple[str, str], dict[str, Any]] = {}
        self.saves = 0

    def get(self, company_id: str, account_id: str) -> CalendarAccount | None:
        account = self._accounts.get((company_id, account_id))
        return account.model_copy(deep=True) if account else None

    def _put(self, account: CalendarAccount) -> None:
        key = (account.company_id, account.id)
        self._accounts[key] = account.model_copy(deep=True)
        self._poll.pop(key, None)
        if account.state.polls and account.calendar_id and account.next_poll_at is not None:
            self._poll[key] = CalendarPollKeys(
                keys.calendar_poll_shard(account.id, self._shards), iso(account.next_poll_at)
            )

    def create(self, account: CalendarAccount, credentials: dict[str, Any]) -> None:
        key = (account.company_id, account.id)
        if key in self._accounts:
            raise AssertionError("create must never overwrite an account")
        self._put(account)
        self.credentials[key] = dict(credentials)

    def save(self, account: CalendarAccount, expected_version: int) -> bool:
        stored = self._accounts.get((account.company_id, account.id))
        if stored is None or stored.version != expected_version:
            return False
        self.saves += 1
        self._put(account.model_copy(update={"version": expected_version + 1}))
        return True

    def save_credentials(self, company_id: str, account_id: str, sealed: dict[str, Any]) -> None:
        assert (company_id, account_id) in self._accounts
        self.credentials[(company_id, account_id)] = dict(sealed)

    def load_credentials(self, company_id: str, account_id: str) -> dict[str, Any] | None:
        sealed = self.credentials.get((company_id, account_id))
        return dict(sealed) if sealed else None

    def list_for_user(self, company_id: str, user_id: str) -> list[CalendarAccount]:
        return [
            a for (c, _), a in self._accounts.items() if c == company_id and a.user_id == user_id
        ]

    def list_for_company(self, company_id: str) -> list[CalendarAccount]:
        return [a for (c, _), a in self._accounts.items() if c == company_id]

    def delete(self, company_id: str, account_id: str) -> int:
        key = (company_id, account_id)
        self._poll.pop(key, None)
        removed = int(self._accounts.pop(key, None) is not None)
        return removed + int(self.credentials.pop(key, None) is not None)

    def due(self, shard: int, now: datetime) -> Iterator[DueAccount]:
        wanted, cutoff = f"{keys.CALENDAR_SHARD_PREFIX}{shard:02d}", iso(now)
        hits = sorted(
            (poll.next_poll_at, key)
            for key, poll in self._poll.items()
            if poll.shard == wanted and poll.next_poll_at <= cutoff
        )
        for next_poll_at, (company_id, account_id) in hits:
            yield DueAccount(
                account_id=account_id, company_id=company_id, next_poll_at=next_poll_at
            )

    def claim(self, due: DueAccount, lease_until: datetime) -> bool:
        poll = self._poll.get((due.company_id, due.account_id))
        if poll is None or poll.next_poll_at != due.next_poll_at:
            return False
        poll.next_poll_at = iso(lease_until)
        return True

    def finish_poll(self, company_id: str, account_id: str, next_poll_at: datetime) -> bool:
        key = (company_id, account_id)
        poll = self._poll.get(key)
        if poll is None:
            return False
        poll.next_poll_at = iso(next_poll_at)
        self._accounts[key] = self._accounts[key].model_copy(update={"next_poll_at": next_poll_at})
        return True

    def poll_keys(self, company_id: str, account_id: str) -> CalendarPollKeys | None:
        poll = self._poll.get((company_id, account_id))
        return CalendarPollKeys(poll.shard, poll.next_poll_at) if poll else None


class FakeCalendarSyncQueue:
    def __init__(self) -> None:
        self.jobs: list[CalendarSyncJob] = []

    def send(self, jobs: Sequence[CalendarSyncJob]) -> None:
        self.jobs.extend(jobs)
