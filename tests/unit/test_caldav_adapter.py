"""The CalDAV adapter's logic without a network: XML parsing, the answers it maps to
outcomes and problems (scripted replies), the failure wording, and the provider presets."""

from __future__ import annotations

import ssl
from collections.abc import Callable
from dataclasses import dataclass, field

import pytest
import requests
import urllib3.exceptions
from requests.structures import CaseInsensitiveDict

from crmsync.calendar import dav_xml
from crmsync.calendar.caldav_server import CaldavConnector, CaldavServer
from crmsync.calendar.presets import all_calendar_presets, calendar_preset
from crmsync.calendar.transport import DavReply, DavTransport
from crmsync.errors import ValidationFailedError
from crmsync.models.servers import MailServerError
from crmsync.security.network import HostGuard

BASE = "https://cal.example.com/dav/alice/work/"


def _multistatus(*responses: str, token: str | None = None) -> bytes:
    sync = f"<D:sync-token>{token}</D:sync-token>" if token else ""
    return (
        '<?xml version="1.0"?><D:multistatus xmlns:D="DAV:" '
        'xmlns:C="urn:ietf:params:xml:ns:caldav" xmlns:I="http://apple.com/ns/ical/">'
        + "".join(responses)
        + sync
        + "</D:multistatus>"
    ).encode()


def _ok(href: str, props: str) -> str:
    return (
        f"<D:response><D:href>{href}</D:href><D:propstat><D:prop>{props}</D:prop>"
        "<D:status>HTTP/1.1 200 OK</D:status></D:propstat></D:response>"
    )


def _gone(href: str) -> str:
    return (
        f"<D:response><D:href>{href}</D:href>"
        "<D:status>HTTP/1.1 404 Not Found</D:status></D:response>"
    )


# -- XML -------------------------------------------------------------------------------------


def test_hostile_xml_is_refused_before_expansion() -> None:
    laughs = (
        b'<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol">'
        b'<!ENTITY lol2 "&lol;&lol;&lol;">]><D:multistatus xmlns:D="DAV:">&lol2;</D:multistatus>'
    )
    with pytest.raises(dav_xml.DavXmlError):
        dav_xml.parse(laughs)
    with pytest.raises(dav_xml.DavXmlError):
        dav_xml.parse(b"<D:multistatus xmlns:D='DAV:'>")


def test_multistatus_normalises_hrefs_and_keeps_only_found_props() -> None:
    body = _multistatus(
        _ok("/dav/alice/work/a%40b.ics", '<D:getetag>"1"</D:getetag>'),
        _ok("https://cal.example.com/dav/alice/work/c d.ics", '<D:getetag>"2"</D:getetag>'),
        _gone("/dav/alice/work/gone.ics"),
        "<D:response><D:href>/dav/alice/work/x.ics</D:href><D:propstat><D:prop>"
        "<D:getetag/></D:prop><D:status>HTTP/1.1 404 Not Found</D:status></D:propstat>"
        "</D:response>",
        token="tok-2",
    )
    answer = dav_xml.parse_multistatus(body, BASE)
    assert answer.sync_token == "tok-2"
    hrefs = [r.href for r in answer.responses]
    assert hrefs == [
        "/dav/alice/work/a@b.ics",
        "/dav/alice/work/c%20d.ics",
        "/dav/alice/work/gone.ics",
        "/dav/alice/work/x.ics",
    ]
    assert answer.responses[0].text(dav_xml.tag(dav_xml.DAV, "getetag")) == '"1"'
    assert answer.responses[2].status == 404
    assert answer.responses[3].props == {}
    assert dav_xml.normalise_href("a@b.ics", BASE) == "/dav/alice/work/a@b.ics"
    assert dav_xml.normalise_href("a%40b.ics", BASE) == "/dav/alice/work/a@b.ics"


def test_request_bodies_escape_what_they_carry() -> None:
    assert "&lt;script&gt;" in dav_xml.uid_query("<script>")
    assert "a&amp;b" in dav_xml.sync_collection("a&b")
    assert "<D:sync-token></D:sync-token>" in dav_xml.sync_collection(None)
    dav_xml.parse(dav_xml.calendar_multiget(["/a&b.ics"]).encode())


# -- a server on scripted replies ------------------------------------------------------------


@dataclass
class ScriptedTransport:
    """Stands in for DavTransport: answers each request with the next scripted reply."""

    replies: list[tuple[int, bytes, dict[str, str]]]
    sent: list[tuple[str, str, dict[str, str], str | bytes | None]] = field(default_factory=list)

    @property
    def requests_sent(self) -> int:
        return len(self.sent)

    def check_url(self, url: str) -> None:
        pass

    def request(
        self,
        method: str,
        url: str,
        *,
        body: str | bytes | None = None,
        headers: dict[str, str] | None = None,
    ) -> DavReply:
        self.sent.append((method, url, dict(headers or {}), body))
        status, answer, answer_headers = self.replies.pop(0)
        return DavReply(status, CaseInsensitiveDict(answer_headers), answer, url)


def _server(*replies: tuple[int, bytes, dict[str, str]] | tuple[int, bytes]) -> CaldavServer:
    script = [(r[0], r[1], r[2] if len(r) == 3 else {}) for r in replies]  # type: ignore[misc]
    return CaldavServer(BASE, ScriptedTransport(script))  # type: ignore[arg-type]


def _sent(server: CaldavServer) -> list[tuple[str, str, dict[str, str], str | bytes | None]]:
    return server._http.sent  # type: ignore[attr-defined,no-any-return]


def _code(call: Callable[[], object]) -> str:
    with pytest.raises(MailServerError) as excinfo:
        call()
    return excinfo.value.problem.code


def test_calendars_read_privileges_colours_and_components() -> None:
    home = "/dav/alice/"
    principal = _ok(
        home,
        f"<D:current-user-principal><D:href>{home}</D:href></D:current-user-principal>"
        f"<C:calendar-home-set><D:href>{home}</D:href></C:calendar-home-set>",
    )
    calendar = "<D:resourcetype><D:collection/><C:calendar/></D:resourcetype>"
    listing = _multistatus(
        _ok(home, "<D:resourcetype><D:collection/></D:resourcetype>"),
        _ok(
            f"{home}work/",
            calendar + "<D:displayname>Work</D:displayname><I:calendar-color>#aabbccff"
            "</I:calendar-color><D:current-user-privilege-set><D:privilege><D:read/>"
            "</D:privilege><D:privilege><D:write-content/></D:privilege>"
            "</D:current-user-privilege-set>",
        ),
        _ok(
            f"{home}team/",
            calendar + "<D:current-user-privilege-set><D:privilege><D:read/></D:privilege>"
            "</D:current-user-privilege-set><C:supported-calendar-component-set>"
            '<C:comp name="VTODO"/></C:supported-calendar-component-set>',
        ),
        _ok(f"{home}old/", calendar + "<I:calendar-color>blue</I:calendar-color>"),
        _ok(f"{home}inbox/", "<D:resourcetype><D:collection/><C:schedule-inbox/></D:resourcetype>"),
    )
    server = _server((207, _multistatus(principal)), (207, listing))
    calendars = {c.name: c for c in server.calendars()}
    assert set(calendars) == {"Work", "team", "old"}
    assert (calendars["Work"].color, calendars["Work"].writable) == ("#AABBCC", True)
    assert calendars["Work"].url == "https://cal.example.com/dav/alice/work/"
    assert calendars["team"].writable is False
    assert calendars["team"].supports_events is False
    # No privilege set: assume writable (a write will say otherwise, in the user's words).
    assert (calendars["old"].color, calendars["old"].writable) == ("blue", True)
    assert [s[2]["Depth"] for s in _sent(server)] == ["0", "1"]


def test_discovery_failures() -> None:
    assert _code(_server((401, b"")).calendars) == "auth_failed"
    assert _code(_server((404, b""), (405, b"")).calendars) == "not_caldav"
    not_a_principal = _multistatus(_ok("/", "<D:resourcetype/>"))
    assert _code(_server((207, not_a_principal), (207, b"<oops")).calendars) == "not_caldav"


def test_truncated_sync_collection_is_followed_to_the_end() -> None:
    etag = "<D:getetag>{}</D:getetag>"
    truncated = (
        "<D:response><D:href>/dav/alice/work/</D:href>"
        "<D:status>HTTP/1.1 507 Insufficient Storage</D:status></D:response>"
    )
    first = _multistatus(
        _ok("/dav/alice/work/a.ics", etag.format('"a1"')),
        _ok("/dav/alice/work/b.ics", etag.format('"b1"')),
        truncated,
        token="t1",
    )
    second = _multistatus(_gone("/dav/alice/work/b.ics"), token="t2")
    data = "BEGIN:VCALENDAR\nUID:a\nEND:VCALENDAR\n"
    multiget = _multistatus(
        _ok(
            "/dav/alice/work/a.ics",
            etag.format('"a1"') + f"<C:calendar-data>{data}</C:calendar-data>",
        )
    )
    server = _server((207, first), (207, second), (207, multiget))
    changes = server.changes(BASE, "t0")
    assert [(e.href, e.etag, e.ics) for e in changes.changed] == [
        ("/dav/alice/work/a.ics", '"a1"', data)
    ]
    assert changes.deleted == ["/dav/alice/work/b.ics"]
    assert changes.sync_token == "t2"
    assert not changes.full_listing
    bodies = [str(s[3]) for s in _sent(server)]
    assert "<D:sync-token>t0</D:sync-token>" in bodies[0]
    assert "<D:sync-token>t1</D:sync-token>" in bodies[1]
    assert "calendar-multiget" in bodies[2]


def test_a_refused_sync_token_starts_over_and_an_event_gone_meanwhile_is_deleted() -> None:
    invalid = b'<D:error xmlns:D="DAV:"><D:valid-sync-token/></D:error>'
    full = _multistatus(
        _ok("/dav/alice/work/a.ics", "<D:getetag>1</D:getetag>"),
        _ok("/dav/alice/work/b.ics", "<D:getetag>2</D:getetag>"),
        token="t9",
    )
    multiget = _multistatus(
        _ok(
            "/dav/alice/work/a.ics", "<D:getetag>1</D:getetag><C:calendar-data>X</C:calendar-data>"
        ),
        _gone("/dav/alice/work/b.ics"),
    )
    server = _server((409, invalid), (207, full), (207, multiget))
    changes = server.changes(BASE, "stale")
    assert changes.token_reset
    assert changes.full_listing
    assert [e.href for e in changes.changed] == ["/dav/alice/work/a.ics"]
    assert changes.deleted == ["/dav/alice/work/b.ics"]


def test_changes_failures() -> None:
    assert _code(lambda: _server((404, b"")).changes(BASE, "t")) == "calendar_missing"
    assert _code(lambda: _server((401, b"")).changes(BASE, "t")) == "auth_failed"
    assert _code(lambda: _server((403, b"")).changes(BASE, "t")) == "permission_denied"
    assert _code(lambda: _server((503, b"")).changes(BASE, "t")) == "server_error"
    assert _code(lambda: _server((207, b"not xml")).changes(BASE, "t")) == "server_error"


def test_put_without_an_etag_in_the_answer_asks_for_it() -> None:
    etag = _multistatus(_ok("/dav/alice/work/a.ics", '<D:getetag>"s2"</D:getetag>'))
    server = _server((204, b""), (207, etag))
    assert server.put(BASE, "a.ics", "BEGIN:VCALENDAR", '"s1"') == ("updated", '"s2"')
    put, propfind = _sent(server)
    assert put[2]["If-Match"] == '"s1"'
    assert "If-None-Match" not in put[2]
    assert put[2]["Content-Type"].startswith("text/calendar")
    assert (propfind[0], propfind[2]["Depth"]) == ("PROPFIND", "0")


def test_put_outcomes_and_problems() -> None:
    created = _server((201, b"", {"ETag": '"n1"'}))
    assert created.put(BASE, "new@x.ics", "ics", None) == ("created", '"n1"')
    method, url, headers, _ = _sent(created)[0]
    assert (method, url, headers["If-None-Match"]) == ("PUT", f"{BASE}new@x.ics", "*")
    assert _server((412, b"")).put(BASE, "a.ics", "ics", None) == ("exists", None)
    assert _server((412, b"")).put(BASE, "a.ics", "ics", '"e"') == ("precondition_failed", None)
    uid_conflict = (
        b'<D:error xmlns:D="DAV:" xmlns:C="urn:ietf:params:xml:ns:caldav">'
        b"<C:no-uid-conflict/></D:error>"
    )
    assert _server((409, uid_conflict)).put(BASE, "a.ics", "ics", None) == ("exists", None)
    assert _code(lambda: _server((403, b"")).put(BASE, "a.ics", "ics", None)) == "permission_denied"
    assert _code(lambda: _server((409, b""), (404, b"")).put(BASE, "a.ics", "i", None)) == (
        "calendar_missing"
    )
    assert _code(lambda: _server((409, b""), (207, b"")).put(BASE, "a.ics", "i", None)) == (
        "server_error"
    )


def test_delete_outcomes() -> None:
    assert _server((204, b"")).delete(BASE, "a.ics", '"e"') == "deleted"
    assert _server((404, b"")).delete(BASE, "a.ics", '"e"') == "gone"
    assert _server((412, b"")).delete(BASE, "a.ics", '"e"') == "precondition_failed"
    unconditional = _server((204, b""))
    unconditional.delete(BASE, "/dav/alice/work/a.ics", None)
    assert "If-Match" not in _sent(unconditional)[0][2]
    assert _code(lambda: _server((403, b"")).delete(BASE, "a.ics", None)) == "permission_denied"


def test_find_uid_checks_the_whole_uid_in_folded_data() -> None:
    folded = "BEGIN:VEVENT\r\nUID:meeting-1\r\n 0\r\nEND:VEVENT\r\n"  # UID:meeting-10
    exact = "BEGIN:VEVENT\r\nUID;X-P=1:meeting-1\r\nEND:VEVENT\r\n"
    answer = _multistatus(
        _ok("/dav/alice/work/10.ics", f"<C:calendar-data>{folded}</C:calendar-data>"),
        _ok("/dav/alice/work/1.ics", f"<C:calendar-data>{exact}</C:calendar-data>"),
    )
    found = _server((207, answer)).find_uid(BASE, "meeting-1")
    assert found is not None
    assert found.href == "/dav/alice/work/1.ics"


# -- transport -------------------------------------------------------------------------------


def _transport(env: str = "local") -> DavTransport:
    return DavTransport(HostGuard(env), "alice", "s3cret", timeout=7.0)  # type: ignore[arg-type]


def _reset() -> requests.RequestException:
    reset = urllib3.exceptions.ProtocolError("Connection aborted.", ConnectionResetError(104, "x"))
    return requests.exceptions.ConnectionError(reset)


def _refused() -> requests.RequestException:
    inner = urllib3.exceptions.NewConnectionError(None, "Failed")  # type: ignore[arg-type]
    inner.__cause__ = ConnectionRefusedError(111, "refused")
    return requests.exceptions.ConnectionError(urllib3.exceptions.MaxRetryError(None, "/", inner))  # type: ignore[arg-type]


def _unreachable() -> requests.RequestException:
    inner = urllib3.exceptions.NewConnectionError(None, "Failed")  # type: ignore[arg-type]
    inner.__cause__ = OSError(113, "No route to host")
    return requests.exceptions.ConnectionError(urllib3.exceptions.MaxRetryError(None, "/", inner))  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("exc", "code", "words"),
    [
        (_reset(), "server_error", "closed the connection unexpectedly"),
        (requests.exceptions.ChunkedEncodingError("IncompleteRead"), "server_error", "closed"),
        (_refused(), "connection_refused", "Nothing answers on cal.example.com"),
        (_unreachable(), "connection_refused", "cannot be reached"),
        (requests.exceptions.ReadTimeout("read timed out"), "timeout", "within 7 s"),
        (
            requests.exceptions.SSLError(ssl.SSLCertVerificationError(1, "bad")),
            "tls_failed",
            "certificate could not be verified",
        ),
    ],
)
def test_network_failures_are_named(exc: requests.RequestException, code: str, words: str) -> None:
    problem = _transport()._network_problem(exc, BASE)
    assert problem.code == code
    assert words in problem.message


def test_urls_the_password_must_not_go_to() -> None:
    assert _code(lambda: _transport("production").check_url("http://cal.example.com/")) == (
        "insecure_not_allowed"
    )
    assert _code(lambda: _transport().check_url("ftp://cal.example.com/")) == "not_caldav"
    _transport().check_url("http://127.0.0.1:5232/")
    _transport("production").check_url(BASE)


def test_opening_sends_nothing_and_drops_credentials_in_the_url() -> None:
    connector = CaldavConnector(HostGuard("production"))
    with connector.open("https://bob:hunter2@cal.example.com/dav/", "bob", "pw") as server:
        assert server.url == "https://cal.example.com/dav/"
        assert server.requests_sent == 0


# -- presets ---------------------------------------------------------------------------------


def test_presets() -> None:
    ids = {p.id for p in all_calendar_presets()}
    assert ids == {"google", "icloud", "fastmail", "nextcloud", "zoho", "yahoo"}
    google = calendar_preset("Google")
    assert google is not None
    assert google.oauth_only
    assert "OAuth" in google.notes
    assert google.url_for() == "https://apidata.googleusercontent.com/caldav/v2/"
    icloud = calendar_preset("icloud")
    assert icloud is not None
    assert icloud.requires_app_password
    assert icloud.url_for() == "https://caldav.icloud.com/"
    nextcloud = calendar_preset("nextcloud")
    assert nextcloud is not None
    assert nextcloud.needs_host
    assert nextcloud.url_for("Cloud.Example.com") == "https://cloud.example.com/remote.php/dav"
    assert nextcloud.url_for("cloud.example.com:8443") == (
        "https://cloud.example.com:8443/remote.php/dav"
    )
    for bad in (None, "", "127.0.0.1", "localhost", "a.example:99999"):
        with pytest.raises(ValidationFailedError):
            nextcloud.url_for(bad)
    assert calendar_preset("nope") is None
    assert all(p.url.startswith("https://") for p in all_calendar_presets())
