"""The CalDAV adapter of the `CalendarConnector` and `CalendarServer` ports (RFC 4791,
6578, 6764), on plain HTTP.

The `caldav` package (1.x) hides what the sync depends on: its `save()` sends neither
`If-Match` nor `If-None-Match`, it follows redirects without asking HostGuard, it sends every
first request twice (unauthenticated, then with credentials) and retries failures as a GET.
So the adapter speaks WebDAV itself: few, counted requests, conditional writes, ETags, and
`current-user-privilege-set` for "writable".

Opening a server sends nothing. `calendars()` discovers (the URL given, else
`/.well-known/caldav`, then `current-user-principal`, then `calendar-home-set`); the sync
calls go straight to the calendar URL, so an idle sync costs exactly one REPORT.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from urllib.parse import urljoin, urlsplit, urlunsplit

from crmsync.calendar import dav_xml, problems
from crmsync.calendar.dav_xml import CALDAV, DAV, ICAL, DavResponse, DavXmlError, Multistatus, tag
from crmsync.calendar.transport import CaFile, DavReply, DavTransport, where
from crmsync.models.calendar import CalendarInfo, CollectionChanges, RemoteEvent, WriteOutcome
from crmsync.models.servers import ConnectionProblem, MailServerError
from crmsync.security.network import HostGuard

DEFAULT_TIMEOUT = 15.0
MULTIGET_BATCH = 1000
WELL_KNOWN = "/.well-known/caldav"
_XML = {"Content-Type": "application/xml; charset=utf-8"}
_UNSUPPORTED_REPORT = frozenset({400, 405, 415, 422, 501})
_MAX_TRUNCATED_ROUNDS = 50
_WRITE_PRIVILEGES = frozenset({tag(DAV, "write"), tag(DAV, "write-content"), tag(DAV, "all")})
_COLOR = re.compile(r"#[0-9A-Fa-f]{6}(?:[0-9A-Fa-f]{2})?")
_FOLD = re.compile(r"\r?\n[ \t]")


class CaldavConnector:
    """Opens CalDAV servers for one environment (HostGuard decides which hosts)."""

    def __init__(
        self, guard: HostGuard, timeout: float = DEFAULT_TIMEOUT, cafile: CaFile = None
    ) -> None:
        self._guard = guard
        self._timeout = timeout
        self._cafile = cafile

    @contextmanager
    def open(self, url: str, username: str, password: str) -> Iterator[CaldavServer]:
        """A server for this account; nothing is sent until the first call on it."""
        transport = DavTransport(self._guard, username, password, self._timeout, self._cafile)
        try:
            server = CaldavServer(_without_userinfo(url.strip()), transport)
            yield server
        finally:
            transport.close()


class CaldavServer:
    """One account on one CalDAV server. Every failure is a MailServerError."""

    def __init__(self, url: str, transport: DavTransport) -> None:
        transport.check_url(url)
        self.url = url
        self._http = transport
        self.principal_url: str | None = None
        self.home_urls: list[str] = []

    @property
    def requests_sent(self) -> int:
        return self._http.requests_sent

    # -- discovery ---------------------------------------------------------------------

    def discover(self) -> str:
        """Find the principal and its calendar homes (once); returns the principal URL."""
        if self.principal_url is not None:
            return self.principal_url
        found = self._principal_at(self.url)
        if found is None and urlsplit(self.url).path.rstrip("/") != WELL_KNOWN:
            found = self._principal_at(urljoin(self.url, WELL_KNOWN))
        if found is None:
            raise MailServerError(problems.not_caldav(where(self.url)))
        principal, homes = found
        if not homes:
            reply = self._send("PROPFIND", principal, dav_xml.PRINCIPAL_PROPFIND, depth="0")
            self._expect_multistatus(reply, "read your account's calendars")
            responses = self._multistatus(reply).responses
            homes = [urljoin(reply.url, h) for r in responses[:1] for h in r.hrefs(_HOME)]
        if not homes:
            raise MailServerError(problems.not_caldav(where(self.url)))
        self.principal_url, self.home_urls = principal, list(dict.fromkeys(homes))
        return principal

    def _principal_at(self, url: str) -> tuple[str, list[str]] | None:
        """(principal URL, calendar homes if this answer names them), or None when the URL
        is not a CalDAV endpoint. A refused login is final."""
        reply = self._send("PROPFIND", url, dav_xml.PRINCIPAL_PROPFIND, depth="0")
        if reply.status == 401:
            raise MailServerError(problems.auth_failed())
        if reply.status != 207:
            return None
        try:
            responses = dav_xml.parse_multistatus(reply.body, reply.url).responses
        except DavXmlError:
            return None
        for response in responses:
            principals = response.hrefs(tag(DAV, "current-user-principal"))
            if principals:
                homes = [urljoin(reply.url, href) for href in response.hrefs(_HOME)]
                return urljoin(reply.url, principals[0]), homes
        return None

    def calendars(self) -> list[CalendarInfo]:
        self.discover()
        found: dict[str, CalendarInfo] = {}
        for home in self.home_urls:
            reply = self._send("PROPFIND", home, dav_xml.CALENDARS_PROPFIND, depth="1")
            self._expect_multistatus(reply, "list your calendars")
            for response in self._multistatus(reply).responses:
                info = _calendar_info(response, reply.url)
                if info is not None:
                    found.setdefault(info.url, info)
        return list(found.values())

    # -- reading -----------------------------------------------------------------------

    def changes(self, calendar_url: str, sync_token: str | None) -> CollectionChanges:
        calendar_url = _collection(calendar_url)
        listed = self._sync_collection(calendar_url, sync_token)
        if listed is None:
            return self._listing(calendar_url)
        changes, complete = listed
        if changes.changed:
            hrefs = [event.href for event in changes.changed]
            fetched = {event.href: event for event in self.multiget(calendar_url, hrefs)}
            changes.deleted.extend(h for h in hrefs if h not in fetched)
            changes.changed = [fetched[h] for h in hrefs if h in fetched]
        changes.full_listing = complete
        return changes

    def _sync_collection(
        self, calendar_url: str, sync_token: str | None
    ) -> tuple[CollectionChanges, bool] | None:
        """Changes from `sync_token` (and whether they are the whole calendar), or None on a
        server without sync-collection. Follows truncated answers (507) to the end."""
        etags: dict[str, str | None] = {}
        deleted: dict[str, None] = {}
        token, reset = sync_token, False
        collection_path = dav_xml.normalise_href(calendar_url, calendar_url)
        for _ in range(_MAX_TRUNCATED_ROUNDS):
            reply = self._send("REPORT", calendar_url, dav_xml.sync_collection(token), depth="0")
            if reply.status in (403, 409) and _has(reply, DAV, "valid-sync-token"):
                if token is None:
                    raise MailServerError(
                        problems.server_error(where(calendar_url), "refused to list the calendar")
                    )
                token, reset, etags, deleted = None, True, {}, {}
                continue
            if _unsupported_report(reply):
                return None
            self._expect_multistatus(reply, "read this calendar", calendar_url)
            answer = self._multistatus(reply)
            if answer.sync_token is None:
                return None
            truncated = False
            for response in answer.responses:
                if response.href == collection_path:
                    truncated = truncated or response.status == 507
                elif response.href.endswith("/"):
                    continue
                elif response.status == 404:
                    etags.pop(response.href, None)
                    deleted[response.href] = None
                else:
                    deleted.pop(response.href, None)
                    etags[response.href] = response.text(tag(DAV, "getetag"))
            token = answer.sync_token
            if not truncated:
                changes = CollectionChanges(
                    changed=[RemoteEvent(href=h, etag=e) for h, e in etags.items()],
                    deleted=list(deleted),
                    sync_token=token,
                    token_reset=reset,
                )
                return changes, sync_token is None or reset
        raise MailServerError(
            problems.server_error(where(calendar_url), "never finished listing the changes")
        )

    def _listing(self, calendar_url: str) -> CollectionChanges:
        """Every event's href and ETag, on a server without sync-collection."""
        reply = self._send("REPORT", calendar_url, dav_xml.EVENT_LISTING, depth="1")
        if _unsupported_report(reply):
            reply = self._send("PROPFIND", calendar_url, dav_xml.ETAG_PROPFIND, depth="1")
        self._expect_multistatus(reply, "read this calendar", calendar_url)
        collection_path = dav_xml.normalise_href(calendar_url, calendar_url)
        events = [
            RemoteEvent(href=r.href, etag=r.text(tag(DAV, "getetag")))
            for r in self._multistatus(reply).responses
            if r.href != collection_path
            and not r.href.endswith("/")
            and r.status in (None, 200)
            and not r.children(tag(DAV, "resourcetype"))
        ]
        return CollectionChanges(changed=events, full_listing=True)

    def multiget(self, calendar_url: str, hrefs: list[str]) -> list[RemoteEvent]:
        """The data of these events (one calendar-multiget REPORT per 1,000); an event
        that is gone meanwhile is left out."""
        calendar_url = _collection(calendar_url)
        wanted = [dav_xml.normalise_href(h, calendar_url) for h in hrefs]
        events: list[RemoteEvent] = []
        for start in range(0, len(wanted), MULTIGET_BATCH):
            batch = wanted[start : start + MULTIGET_BATCH]
            body = dav_xml.calendar_multiget(batch)
            reply = self._send("REPORT", calendar_url, body, depth="1")
            self._expect_multistatus(reply, "read this calendar", calendar_url)
            events.extend(
                RemoteEvent(
                    href=r.href,
                    etag=r.text(tag(DAV, "getetag")),
                    ics=_calendar_data(r),
                )
                for r in self._multistatus(reply).responses
                if r.status in (None, 200) and _calendar_data(r) is not None
            )
        return events

    def get(self, calendar_url: str, href: str) -> RemoteEvent | None:
        calendar_url = _collection(calendar_url)
        url = _resource(calendar_url, href)
        reply = self._send("GET", url, None, accept="text/calendar")
        if reply.status in (404, 410):
            return None
        self._check(reply, "read this calendar")
        if reply.status != 200:
            raise MailServerError(_unexpected(reply))
        return RemoteEvent(
            href=dav_xml.normalise_href(url, url),
            etag=reply.headers.get("ETag"),
            ics=reply.body.decode("utf-8", "replace"),
        )

    def find_uid(self, calendar_url: str, uid: str) -> RemoteEvent | None:
        calendar_url = _collection(calendar_url)
        reply = self._send("REPORT", calendar_url, dav_xml.uid_query(uid), depth="1")
        self._expect_multistatus(reply, "read this calendar", calendar_url)
        for response in self._multistatus(reply).responses:
            ics = _calendar_data(response)
            if ics is not None and _has_uid(ics, uid):
                return RemoteEvent(
                    href=response.href, etag=response.text(tag(DAV, "getetag")), ics=ics
                )
        return None

    # -- writing -----------------------------------------------------------------------

    def put(
        self, calendar_url: str, href: str, ics: str, etag: str | None
    ) -> tuple[WriteOutcome, str | None]:
        calendar_url = _collection(calendar_url)
        url = _resource(calendar_url, href)
        condition = {"If-None-Match": "*"} if etag is None else {"If-Match": etag}
        reply = self._http.request(
            "PUT",
            url,
            body=ics,
            headers={"Content-Type": "text/calendar; charset=utf-8", **condition},
        )
        if reply.status in (200, 201, 204):
            new_etag = reply.headers.get("ETag") or self._etag_of(url)
            return ("created" if etag is None else "updated"), new_etag
        if reply.status == 412:
            return ("exists" if etag is None else "precondition_failed"), None
        if reply.status in (403, 409) and _has(reply, CALDAV, "no-uid-conflict"):
            return "exists", None  # the UID lives at another href: find_uid() and adopt it
        if reply.status in (404, 409):
            self._require_calendar(calendar_url)
        self._check(reply, "change events in this calendar")
        raise MailServerError(_unexpected(reply))

    def delete(self, calendar_url: str, href: str, etag: str | None) -> WriteOutcome:
        calendar_url = _collection(calendar_url)
        url = _resource(calendar_url, href)
        headers = {"If-Match": etag} if etag is not None else {}
        reply = self._http.request("DELETE", url, headers=headers)
        if reply.status in (200, 202, 204):
            return "deleted"
        if reply.status in (404, 410):
            return "gone"
        if reply.status == 412:
            return "precondition_failed"
        self._check(reply, "delete events in this calendar")
        raise MailServerError(_unexpected(reply))

    def _etag_of(self, url: str) -> str | None:
        reply = self._send("PROPFIND", url, dav_xml.ETAG_PROPFIND, depth="0")
        if reply.status != 207:
            return None
        responses = self._multistatus(reply).responses
        return responses[0].text(tag(DAV, "getetag")) if responses else None

    def _require_calendar(self, calendar_url: str) -> None:
        """calendar_missing when the collection itself is gone."""
        reply = self._send("PROPFIND", calendar_url, dav_xml.ETAG_PROPFIND, depth="0")
        if reply.status in (404, 410):
            raise MailServerError(problems.calendar_missing())

    # -- HTTP and its answers ----------------------------------------------------------

    def _send(
        self,
        method: str,
        url: str,
        body: str | None,
        *,
        depth: str | None = None,
        accept: str | None = None,
    ) -> DavReply:
        headers = dict(_XML) if body is not None else {}
        if depth is not None:
            headers["Depth"] = depth
        if accept is not None:
            headers["Accept"] = accept
        return self._http.request(method, url, body=body, headers=headers)

    def _check(self, reply: DavReply, what: str) -> None:
        """Raise the user's problem for an error status (401, 403, 5xx…)."""
        if reply.status == 401:
            raise MailServerError(problems.auth_failed())
        if reply.status == 403:
            raise MailServerError(problems.permission_denied(what))
        if reply.status == 507:
            raise MailServerError(
                problems.server_error(where(reply.url), "has no storage space left")
            )
        if reply.status >= 500:
            raise MailServerError(
                problems.server_error(
                    where(reply.url), f"answered with an error (HTTP {reply.status})"
                )
            )

    def _expect_multistatus(self, reply: DavReply, what: str, calendar_url: str = "") -> None:
        if calendar_url and reply.status in (404, 410):
            raise MailServerError(problems.calendar_missing())
        self._check(reply, what)
        if reply.status != 207:
            raise MailServerError(_unexpected(reply))

    def _multistatus(self, reply: DavReply) -> Multistatus:
        try:
            return dav_xml.parse_multistatus(reply.body, reply.url)
        except DavXmlError as exc:
            raise MailServerError(
                problems.server_error(where(reply.url), "sent an answer crmsync cannot read")
            ) from exc


_HOME = tag(CALDAV, "calendar-home-set")


def _calendar_info(response: DavResponse, base: str) -> CalendarInfo | None:
    kinds = {child.tag for child in response.children(tag(DAV, "resourcetype"))}
    if tag(CALDAV, "calendar") not in kinds:
        return None
    url = urljoin(base, response.href)
    components = {
        (child.get("name") or "").upper()
        for child in response.children(tag(CALDAV, "supported-calendar-component-set"))
    }
    privileges = {
        grant.tag
        for privilege in response.children(tag(DAV, "current-user-privilege-set"))
        for grant in privilege
    }
    has_privileges = tag(DAV, "current-user-privilege-set") in response.props
    name = response.text(tag(DAV, "displayname"))
    return CalendarInfo(
        id=CalendarInfo.id_for(url),
        url=url,
        name=name or urlsplit(url).path.rstrip("/").rsplit("/", 1)[-1] or url,
        color=_color(response.text(tag(ICAL, "calendar-color"))),
        writable=not has_privileges or bool(privileges & _WRITE_PRIVILEGES),
        supports_events=not components or "VEVENT" in components,
    )


def _color(value: str | None) -> str | None:
    """Apple's `#RRGGBBAA` as `#RRGGBB`; anything else unchanged (or None)."""
    if value is None:
        return None
    return value[:7].upper() if _COLOR.fullmatch(value) else value[:32]


def _calendar_data(response: DavResponse) -> str | None:
    element = response.props.get(tag(CALDAV, "calendar-data"))
    return element.text if element is not None and element.text else None


def _has_uid(ics: str, uid: str) -> bool:
    for line in _FOLD.sub("", ics).splitlines():
        name, _, value = line.partition(":")
        if name.split(";", 1)[0].strip().upper() == "UID" and value.strip() == uid:
            return True
    return False


def _has(reply: DavReply, namespace: str, name: str) -> bool:
    return dav_xml.has_error(reply.body, namespace, name)


def _unsupported_report(reply: DavReply) -> bool:
    return reply.status in _UNSUPPORTED_REPORT or (
        reply.status == 403 and _has(reply, DAV, "supported-report")
    )


def _unexpected(reply: DavReply) -> ConnectionProblem:
    return problems.server_error(
        where(reply.url), f"answered in a way crmsync did not expect (HTTP {reply.status})"
    )


def _collection(url: str) -> str:
    return url if url.endswith("/") else url + "/"


def _resource(calendar_url: str, href: str) -> str:
    return urljoin(calendar_url, dav_xml.normalise_href(href, calendar_url))


def _without_userinfo(url: str) -> str:
    """Credentials typed into the URL are dropped: they would end up in messages."""
    parts = urlsplit(url)
    if "@" not in parts.netloc:
        return url
    netloc = parts.netloc.rpartition("@")[2]
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))
