"""The CalDAV adapter against a real Radicale: discovery, calendars, conditional writes,
sync-collection, and every failure in the user's words.

Calendars and "other apps'" edits are made with the `caldav` client library, as another
calendar app would make them.
"""

from __future__ import annotations

import secrets
import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import caldav
import pytest
import requests
from caldav.elements import ical

from crmsync.calendar.caldav_server import CaldavConnector
from crmsync.calendar.problems import PERMISSION_FIX, TWO_FACTOR_HINT
from crmsync.models.calendar import CalendarInfo
from crmsync.models.servers import MailServerError
from crmsync.security.network import HostGuard
from crmsync_local.testservers.hangup_proxy import HangupProxy
from crmsync_local.testservers.net import LOOPBACK, free_port
from crmsync_local.testservers.radicale import CalUser, RadicaleServer

pytestmark = pytest.mark.integration


def _ics(uid: str, summary: str, description: str = "") -> str:
    extra = f"DESCRIPTION:{description}\r\n" if description else ""
    return (
        "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//other app//EN\r\n"
        "BEGIN:VEVENT\r\n"
        f"UID:{uid}\r\nDTSTAMP:20260101T000000Z\r\n"
        "DTSTART:20260105T100000Z\r\nDTEND:20260105T110000Z\r\n"
        f"SUMMARY:{summary}\r\n{extra}"
        "END:VEVENT\r\nEND:VCALENDAR\r\n"
    )


@pytest.fixture
def connector() -> CaldavConnector:
    return CaldavConnector(HostGuard("local"), timeout=5.0)


@contextmanager
def _other_app(radicale: RadicaleServer, user: CalUser) -> Iterator[caldav.Principal]:
    with caldav.DAVClient(radicale.url, username=user.username, password=user.password) as client:
        yield client.principal()


def _make_calendar(
    radicale: RadicaleServer,
    user: CalUser,
    cal_id: str,
    name: str,
    color: str | None = None,
    components: list[str] | None = None,
) -> str:
    with _other_app(radicale, user) as principal:
        calendar = principal.make_calendar(
            name=name, cal_id=cal_id, supported_calendar_component_set=components
        )
        if color is not None:
            calendar.set_properties([ical.CalendarColor(color)])
    return f"{user.principal_url}{cal_id}/"


def _problem(excinfo: pytest.ExceptionInfo[MailServerError]) -> tuple[str, str]:
    return excinfo.value.problem.code, str(excinfo.value)


# -- discovery and calendars -----------------------------------------------------------------


def test_discovery_from_the_base_url_and_from_the_principal_url(
    radicale: RadicaleServer, cal_user: CalUser, connector: CaldavConnector
) -> None:
    work = _make_calendar(radicale, cal_user, "work", "Work")

    with connector.open(radicale.url, cal_user.username, cal_user.password) as server:
        assert server.requests_sent == 0  # opening sends nothing
        from_base = server.calendars()
        assert server.principal_url == cal_user.principal_url
        # PROPFIND / (current-user-principal), the principal (home set), the home (depth 1).
        assert server.requests_sent == 3
    with connector.open(cal_user.principal_url, cal_user.username, cal_user.password) as server:
        from_principal = server.calendars()
        # The principal names its own home set: one PROPFIND less.
        assert server.requests_sent == 2
        assert server.home_urls == [cal_user.principal_url]

    assert from_base == from_principal
    assert [(c.url, c.name, c.id) for c in from_base] == [(work, "Work", CalendarInfo.id_for(work))]


def test_discovery_from_a_calendar_url_and_the_well_known_path(
    radicale: RadicaleServer, cal_user: CalUser, connector: CaldavConnector
) -> None:
    work = _make_calendar(radicale, cal_user, "work", "Work")
    for url in (work, f"{radicale.url}.well-known/caldav"):
        with connector.open(url, cal_user.username, cal_user.password) as server:
            assert [c.url for c in server.calendars()] == [work]
            assert server.principal_url == cal_user.principal_url


def test_a_wrong_path_falls_back_to_the_well_known_url(
    radicale: RadicaleServer, cal_user: CalUser, connector: CaldavConnector
) -> None:
    # Radicale answers 404 below a user's home for what does not exist, and the well-known
    # fallback then finds the principal: a typo in the path is forgiven.
    with connector.open(
        f"{radicale.url}{cal_user.username}/nothing/here/", cal_user.username, cal_user.password
    ) as server:
        assert server.calendars() == []


def test_calendars_have_names_colours_and_say_whether_writable(
    radicale: RadicaleServer, cal_user: CalUser, connector: CaldavConnector
) -> None:
    work = _make_calendar(radicale, cal_user, "work", "Work", color="#FF8800FF")
    shared = _make_calendar(radicale, cal_user, "shared", "Team (read-only)", color="#00AA11")
    tasks = _make_calendar(radicale, cal_user, "tasks", "Tasks", components=["VTODO"])
    radicale.make_read_only(cal_user.username, f"/{cal_user.username}/shared/")

    with connector.open(radicale.url, cal_user.username, cal_user.password) as server:
        calendars = {c.url: c for c in server.calendars()}

    assert set(calendars) == {work, shared, tasks}
    assert (calendars[work].name, calendars[work].color, calendars[work].writable) == (
        "Work",
        "#FF8800",
        True,
    )
    assert (calendars[shared].color, calendars[shared].writable) == ("#00AA11", False)
    assert calendars[work].supports_events
    assert calendars[shared].supports_events
    assert not calendars[tasks].supports_events
    assert calendars[tasks].color is None


# -- writes ----------------------------------------------------------------------------------


def test_conditional_writes_create_update_and_delete(
    radicale: RadicaleServer, cal_user: CalUser, connector: CaldavConnector
) -> None:
    work = _make_calendar(radicale, cal_user, "work", "Work")
    uid = f"crmsync-{secrets.token_hex(6)}@crmsync"
    href = f"{uid}.ics"

    with connector.open(radicale.url, cal_user.username, cal_user.password) as server:
        outcome, etag = server.put(work, href, _ics(uid, "Kickoff"), None)
        assert outcome == "created"
        assert etag
        assert server.requests_sent == 1  # Radicale returns the ETag with the 201

        # A second create of the same href: If-None-Match: * fails, nothing is overwritten.
        assert server.put(work, href, _ics(uid, "Duplicate"), None) == ("exists", None)
        # The same UID under another href: CalDAV's no-uid-conflict, also "exists".
        assert server.put(work, "other.ics", _ics(uid, "Duplicate"), None) == ("exists", None)

        outcome, new_etag = server.put(work, href, _ics(uid, "Kickoff (moved)"), etag)
        assert outcome == "updated"
        assert new_etag
        assert new_etag != etag
        assert server.put(work, href, _ics(uid, "Lost update"), etag) == (
            "precondition_failed",
            None,
        )

        event = server.get(work, href)
        assert event is not None
        assert event.etag == new_etag
        assert event.ics is not None
        assert "SUMMARY:Kickoff (moved)" in event.ics
        assert event.href == f"/{cal_user.username}/work/{href}"

        assert server.delete(work, href, etag) == "precondition_failed"
        assert server.delete(work, href, new_etag) == "deleted"
        assert server.delete(work, href, new_etag) == "gone"
        assert server.get(work, href) is None

    with _other_app(radicale, cal_user) as principal:
        assert principal.calendar(cal_id="work").events() == []


def test_find_uid_matches_the_whole_uid(
    radicale: RadicaleServer, cal_user: CalUser, connector: CaldavConnector
) -> None:
    work = _make_calendar(radicale, cal_user, "work", "Work")
    with _other_app(radicale, cal_user) as principal:
        calendar = principal.calendar(cal_id="work")
        calendar.save_event(_ics("meeting-1", "One"))
        calendar.save_event(_ics("meeting-10", "Ten"))

    with connector.open(radicale.url, cal_user.username, cal_user.password) as server:
        found = server.find_uid(work, "meeting-1")
        assert found is not None
        assert found.ics is not None
        assert "SUMMARY:One" in found.ics
        assert found.etag
        assert server.get(work, found.href) is not None
        assert server.find_uid(work, "meeting") is None
        assert server.find_uid(work, "meeting-2") is None
        assert server.requests_sent == 4


# -- changes ---------------------------------------------------------------------------------


def test_changes_full_sync_then_idle_then_exactly_the_external_edits(
    radicale: RadicaleServer, cal_user: CalUser, connector: CaldavConnector
) -> None:
    work = _make_calendar(radicale, cal_user, "work", "Work")
    with _other_app(radicale, cal_user) as principal:
        calendar = principal.calendar(cal_id="work")
        for n in range(3):
            calendar.save_event(_ics(f"ev-{n}", f"Event {n}"))

    with connector.open(work, cal_user.username, cal_user.password) as server:
        first = server.changes(work, None)
        assert server.requests_sent == 2  # sync-collection + one calendar-multiget
        assert first.full_listing
        assert not first.token_reset
        assert first.sync_token
        assert first.deleted == []
        by_uid = {_uid(e.ics): e for e in first.changed}
        assert set(by_uid) == {"ev-0", "ev-1", "ev-2"}
        assert all(e.etag for e in first.changed)

        idle = server.changes(work, first.sync_token)
        assert server.requests_sent == 3  # an idle sync is ONE request
        assert (idle.changed, idle.deleted, idle.full_listing) == ([], [], False)
        assert idle.sync_token

    with _other_app(radicale, cal_user) as principal:
        calendar = principal.calendar(cal_id="work")
        edited = calendar.event_by_uid("ev-0")
        edited.icalendar_component["SUMMARY"] = "Event 0 (moved)"
        edited.save()
        calendar.event_by_uid("ev-1").delete()
        calendar.save_event(_ics("ev-3", "Event 3"))

    with connector.open(work, cal_user.username, cal_user.password) as server:
        later = server.changes(work, idle.sync_token)
        assert server.requests_sent == 2
    assert not later.full_listing
    assert {_uid(e.ics) for e in later.changed} == {"ev-0", "ev-3"}
    changed = {_uid(e.ics): e for e in later.changed}
    assert "Event 0 (moved)" in (changed["ev-0"].ics or "")
    assert changed["ev-0"].etag != by_uid["ev-0"].etag
    assert later.deleted == [by_uid["ev-1"].href]
    assert later.sync_token not in (None, idle.sync_token)


def test_an_invalid_sync_token_starts_over_and_says_so(
    radicale: RadicaleServer, cal_user: CalUser, connector: CaldavConnector
) -> None:
    work = _make_calendar(radicale, cal_user, "work", "Work")
    with _other_app(radicale, cal_user) as principal:
        principal.calendar(cal_id="work").save_event(_ics("ev-0", "Event 0"))

    with connector.open(work, cal_user.username, cal_user.password) as server:
        changes = server.changes(work, "http://radicale.org/ns/sync/expired")
        assert server.requests_sent == 3  # refused token, full sync-collection, multiget
    assert changes.token_reset
    assert changes.full_listing
    assert [_uid(e.ics) for e in changes.changed] == ["ev-0"]
    assert changes.sync_token


@pytest.mark.parametrize(
    "refused",
    [{"sync-collection"}, {"sync-collection", "calendar-query"}],
    ids=["calendar-query", "propfind"],
)
def test_a_server_without_sync_collection_gets_a_listing(
    radicale: RadicaleServer, cal_user: CalUser, connector: CaldavConnector, refused: set[str]
) -> None:
    work = _make_calendar(radicale, cal_user, "work", "Work")
    with _other_app(radicale, cal_user) as principal:
        calendar = principal.calendar(cal_id="work")
        for n in range(3):
            calendar.save_event(_ics(f"ev-{n}", f"Event {n}"))

    with _report_filter(radicale.url, refused) as base:
        url = work.replace(radicale.url, base)
        with connector.open(url, cal_user.username, cal_user.password) as server:
            listing = server.changes(url, None)
            assert server.requests_sent == 1 + len(refused)
            assert listing.full_listing
            assert listing.sync_token is None
            assert len(listing.changed) == 3
            assert all(e.etag and e.ics is None for e in listing.changed)
            fetched = server.multiget(url, [e.href for e in listing.changed])
    assert {_uid(e.ics) for e in fetched} == {"ev-0", "ev-1", "ev-2"}
    assert {e.etag for e in fetched} == {e.etag for e in listing.changed}


# -- failures in the user's words ------------------------------------------------------------


def test_a_wrong_password_is_auth_failed_with_the_app_password_hint(
    radicale: RadicaleServer, cal_user: CalUser, connector: CaldavConnector
) -> None:
    work = _make_calendar(radicale, cal_user, "work", "Work")
    wrong = "not-" + cal_user.password
    with connector.open(radicale.url, cal_user.username, wrong) as server:
        with pytest.raises(MailServerError) as excinfo:
            server.calendars()
        code, text = _problem(excinfo)
        assert code == "auth_failed"
        assert TWO_FACTOR_HINT in text
        assert wrong not in text
        with pytest.raises(MailServerError) as excinfo:
            server.changes(work, None)
        assert excinfo.value.problem.code == "auth_failed"
        with pytest.raises(MailServerError) as excinfo:
            server.put(work, "x.ics", _ics("x", "X"), None)
        assert excinfo.value.problem.code == "auth_failed"
    assert wrong not in radicale.logs()


def test_writing_to_a_read_only_calendar_is_permission_denied(
    radicale: RadicaleServer, cal_user: CalUser, connector: CaldavConnector
) -> None:
    shared = _make_calendar(radicale, cal_user, "shared", "Team")
    with _other_app(radicale, cal_user) as principal:
        principal.calendar(cal_id="shared").save_event(_ics("ev-0", "Event 0"))
    radicale.make_read_only(cal_user.username, f"{cal_user.username}/shared")

    with connector.open(shared, cal_user.username, cal_user.password) as server:
        assert [_uid(e.ics) for e in server.changes(shared, None).changed] == ["ev-0"]
        existing = server.find_uid(shared, "ev-0")
        assert existing is not None
        for attempt in (
            lambda: server.put(shared, "new.ics", _ics("new", "New"), None),
            lambda: server.put(shared, existing.href, _ics("ev-0", "Edit"), existing.etag),
            lambda: server.delete(shared, existing.href, existing.etag),
        ):
            with pytest.raises(MailServerError) as excinfo:
                attempt()
            code, text = _problem(excinfo)
            assert code == "permission_denied"
            assert PERMISSION_FIX in text
            assert "IT administrator" in text

    radicale.make_writable(cal_user.username, f"{cal_user.username}/shared")
    with connector.open(shared, cal_user.username, cal_user.password) as server:
        assert server.put(shared, "new.ics", _ics("new", "New"), None)[0] == "created"


def test_a_deleted_calendar_is_calendar_missing(
    radicale: RadicaleServer, cal_user: CalUser, connector: CaldavConnector
) -> None:
    work = _make_calendar(radicale, cal_user, "work", "Work")
    with connector.open(work, cal_user.username, cal_user.password) as server:
        token = server.changes(work, None).sync_token
    with _other_app(radicale, cal_user) as principal:
        principal.calendar(cal_id="work").delete()

    with connector.open(work, cal_user.username, cal_user.password) as server:
        for attempt in (
            lambda: server.changes(work, token),
            lambda: server.changes(work, None),
            lambda: server.find_uid(work, "x"),
            lambda: server.put(work, "x.ics", _ics("x", "X"), None),
        ):
            with pytest.raises(MailServerError) as excinfo:
                attempt()
            code, text = _problem(excinfo)
            assert code == "calendar_missing"
            assert "choose another calendar" in text


@pytest.mark.parametrize("reset", [True, False], ids=["rst", "fin"])
def test_a_server_that_hangs_up_mid_report_loses_nothing(
    radicale: RadicaleServer, cal_user: CalUser, connector: CaldavConnector, reset: bool
) -> None:
    work = _make_calendar(radicale, cal_user, "work", "Work")
    with connector.open(work, cal_user.username, cal_user.password) as server:
        token = server.changes(work, None).sync_token
    with _other_app(radicale, cal_user) as principal:
        calendar = principal.calendar(cal_id="work")
        for n in range(20):  # random text: the answer stays large even gzipped
            calendar.save_event(_ics(f"ev-{n}", f"Event {n}", secrets.token_hex(200)))

    with HangupProxy(radicale.host, radicale.port) as proxy:
        via_proxy = work.replace(f":{radicale.port}/", f":{proxy.port}/")
        with connector.open(via_proxy, cal_user.username, cal_user.password) as server:
            proxy.arm(trigger=b"calendar-multiget", server_bytes=1500, reset=reset)
            with pytest.raises(MailServerError) as excinfo:
                server.changes(via_proxy, token)
            assert proxy.cuts == 1
            code, text = _problem(excinfo)
            assert code == "server_error"
            assert "closed the connection unexpectedly" in text

            # Nothing was half-applied: the same token still yields every change.
            again = server.changes(via_proxy, token)
    assert {_uid(e.ics) for e in again.changed} == {f"ev-{n}" for n in range(20)}


def _calendars_problem(connector: CaldavConnector, url: str, user: str, password: str) -> str:
    with connector.open(url, user, password) as server, pytest.raises(MailServerError) as exc:
        server.calendars()
    return exc.value.problem.code


def test_a_private_address_is_refused_in_production(
    radicale: RadicaleServer, cal_user: CalUser
) -> None:
    production = CaldavConnector(HostGuard("production"), timeout=5.0)
    secure_loopback = f"https://127.0.0.1:{radicale.port}/"
    code = _calendars_problem(production, secure_loopback, cal_user.username, cal_user.password)
    assert code == "host_not_allowed"

    # Plain http is refused before anything is sent: the password would travel in clear.
    with pytest.raises(MailServerError) as excinfo:
        production.open(radicale.url, cal_user.username, cal_user.password).__enter__()
    assert excinfo.value.problem.code == "insecure_not_allowed"


def test_a_redirect_to_a_refused_address_is_not_followed() -> None:
    """Every redirect's host is judged again: here the "server" sends us to the metadata
    service (through a name that resolves there)."""

    def resolver(host: str, port: int) -> list[str]:
        return {"calendar.test": ["127.0.0.1"], "metadata.test": ["169.254.169.254"]}[host]

    guarded = CaldavConnector(HostGuard("local", resolver=resolver), timeout=5.0)
    with _redirecting_server("http://metadata.test/latest/") as (port, seen):
        code = _calendars_problem(guarded, f"http://calendar.test:{port}/", "u", "p")
    assert code == "host_not_allowed"
    assert seen == ["PROPFIND /"]


def test_a_server_without_caldav_says_so(connector: CaldavConnector) -> None:
    with (
        _redirecting_server(None) as (port, seen),  # 404 for everything
        connector.open(f"http://{LOOPBACK}:{port}/cal/", "u", "p") as server,
    ):
        with pytest.raises(MailServerError) as excinfo:
            server.calendars()
        assert server.requests_sent == 2
    code, text = _problem(excinfo)
    assert code == "not_caldav"
    assert "CalDAV address your provider documents" in text
    assert seen == ["PROPFIND /cal/", "PROPFIND /.well-known/caldav"]


def test_network_failures_in_the_users_words(radicale: RadicaleServer) -> None:
    quick = CaldavConnector(HostGuard("local"), timeout=0.5)
    closed = f"http://{LOOPBACK}:{free_port()}/"
    assert _calendars_problem(quick, closed, "u", "p") == "connection_refused"

    with socket.socket() as silent:  # accepts the connection, never answers
        silent.bind((LOOPBACK, 0))
        silent.listen(1)
        url = f"http://{LOOPBACK}:{silent.getsockname()[1]}/"
        assert _calendars_problem(quick, url, "u", "p") == "timeout"

    # https to Radicale's plain-http port: the TLS handshake fails.
    tls_to_plain = f"https://{LOOPBACK}:{radicale.port}/"
    assert _calendars_problem(quick, tls_to_plain, "u", "p") == "tls_failed"


def _uid(ics: str | None) -> str:
    assert ics is not None
    return next(
        line.split(":", 1)[1].strip() for line in ics.splitlines() if line.startswith("UID:")
    )


@contextmanager
def _redirecting_server(location: str | None) -> Iterator[tuple[int, list[str]]]:
    """A loopback HTTP server that answers every PROPFIND with a 301 to `location` (with
    None: a 404, like a web server that knows nothing of CalDAV)."""
    seen: list[str] = []

    class Redirect(BaseHTTPRequestHandler):
        def do_PROPFIND(self) -> None:
            seen.append(f"{self.command} {self.path}")
            self.send_response(301 if location else 404)
            if location:
                self.send_header("Location", location)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, format: str, *args: object) -> None:
            pass

    httpd = ThreadingHTTPServer((LOOPBACK, 0), Redirect)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield int(httpd.server_address[1]), seen
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(timeout=5)


@contextmanager
def _report_filter(target: str, refused: set[str]) -> Iterator[str]:
    """A loopback HTTP proxy to `target` that answers 501 to the REPORTs named in `refused`
    (a CalDAV server without sync-collection, or without calendar-query either)."""

    class Filter(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def _forward(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            if self.command == "REPORT" and any(name.encode() in body for name in refused):
                status, headers, answer = 501, {}, b""
            else:
                wanted = ("Authorization", "Depth", "Content-Type", "If-Match", "If-None-Match")
                upstream = requests.request(
                    self.command,
                    target.rstrip("/") + self.path,
                    data=body,
                    headers={k: v for k, v in self.headers.items() if k in wanted},
                    timeout=10,
                )
                status, answer = upstream.status_code, upstream.content
                headers = {
                    k: v for k, v in upstream.headers.items() if k in ("Content-Type", "ETag")
                }
            self.send_response(status)
            for name, value in headers.items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(answer)))
            self.end_headers()
            self.wfile.write(answer)

        do_PROPFIND = do_REPORT = do_GET = do_PUT = do_DELETE = _forward

        def log_message(self, format: str, *args: object) -> None:
            pass

    httpd = ThreadingHTTPServer((LOOPBACK, 0), Filter)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://{LOOPBACK}:{httpd.server_address[1]}/"
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(timeout=5)
