"""WebDAV/CalDAV XML: request bodies, and multistatus answers parsed safely.

The answers come from a server the user chose, so they are untrusted: any DOCTYPE or entity
declaration is refused before expansion (no billion laughs, no XXE), as for autoconfig.
Hrefs are normalised to one percent-encoded path form, so the same resource reported by two
different REPORTs (one writing `%40`, the other `@`) compares equal.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from typing import NoReturn
from urllib.parse import quote, unquote, urljoin, urlsplit
from xml.parsers import expat
from xml.sax.saxutils import escape

DAV = "DAV:"
CALDAV = "urn:ietf:params:xml:ns:caldav"
ICAL = "http://apple.com/ns/ical/"

_SEPARATOR = "\x01"
_PATH_SAFE = "/:@!$&'()*+,;=-._~"


class DavXmlError(ValueError):
    """The answer is not the XML it should be (malformed, hostile or the wrong shape)."""


def tag(namespace: str, name: str) -> str:
    return f"{{{namespace}}}{name}"


def _refuse_dtd(*_: object) -> NoReturn:
    raise DavXmlError("DOCTYPE and entity declarations are not allowed")


def parse(data: bytes) -> ET.Element:
    """Parse with namespaces and without any DTD processing."""
    builder = ET.TreeBuilder()
    parser = expat.ParserCreate(namespace_separator=_SEPARATOR)
    parser.SetParamEntityParsing(expat.XML_PARAM_ENTITY_PARSING_NEVER)
    parser.StartDoctypeDeclHandler = _refuse_dtd
    parser.EntityDeclHandler = _refuse_dtd
    parser.UnparsedEntityDeclHandler = _refuse_dtd
    parser.ExternalEntityRefHandler = _refuse_dtd
    parser.StartElementHandler = lambda name, attrs: builder.start(_clark(name), attrs)
    parser.EndElementHandler = lambda name: builder.end(_clark(name))
    parser.CharacterDataHandler = builder.data
    try:
        parser.Parse(data, True)
    except expat.ExpatError as exc:
        raise DavXmlError(f"malformed XML: {exc}") from exc
    return builder.close()


def _clark(name: str) -> str:
    namespace, sep, local = name.rpartition(_SEPARATOR)
    return f"{{{namespace}}}{local}" if sep else name


def normalise_href(href: str, base: str) -> str:
    """The absolute path of `href` (relative to `base`), in one percent-encoding."""
    path = urlsplit(urljoin(base, href.strip())).path or "/"
    return quote(unquote(path), safe=_PATH_SAFE)


def same_origin(a: str, b: str) -> bool:
    sa, sb = urlsplit(a), urlsplit(b)
    return (sa.scheme, sa.hostname, sa.port) == (sb.scheme, sb.hostname, sb.port)


@dataclass
class DavResponse:
    """One `DAV:response`: its href, its own status (deletions, 404s) or its found props."""

    href: str
    status: int | None = None
    props: dict[str, ET.Element] = field(default_factory=dict)

    def text(self, name: str) -> str | None:
        element = self.props.get(name)
        if element is None or element.text is None:
            return None
        return element.text.strip() or None

    def hrefs(self, name: str) -> list[str]:
        element = self.props.get(name)
        if element is None:
            return []
        return [h.text.strip() for h in element.iter(tag(DAV, "href")) if h.text and h.text.strip()]

    def children(self, name: str) -> list[ET.Element]:
        element = self.props.get(name)
        return list(element) if element is not None else []


@dataclass
class Multistatus:
    responses: list[DavResponse]
    sync_token: str | None = None


def status_code(line: str | None) -> int | None:
    """200 from "HTTP/1.1 200 OK"."""
    if not line:
        return None
    parts = line.split()
    return int(parts[1]) if len(parts) >= 2 and parts[1].isdigit() else None


def parse_multistatus(data: bytes, base: str) -> Multistatus:
    root = parse(data)
    if root.tag != tag(DAV, "multistatus"):
        raise DavXmlError(f"expected a multistatus answer, got {root.tag}")
    responses: list[DavResponse] = []
    for element in root.findall(tag(DAV, "response")):
        href = element.findtext(tag(DAV, "href"))
        if not href or not href.strip():
            continue
        response = DavResponse(
            href=normalise_href(href, base),
            status=status_code(element.findtext(tag(DAV, "status"))),
        )
        for propstat in element.findall(tag(DAV, "propstat")):
            if status_code(propstat.findtext(tag(DAV, "status"))) != 200:
                continue
            prop = propstat.find(tag(DAV, "prop"))
            for child in prop if prop is not None else ():
                response.props[child.tag] = child
        responses.append(response)
    token = root.findtext(tag(DAV, "sync-token"))
    return Multistatus(responses, token.strip() if token and token.strip() else None)


def has_error(data: bytes, namespace: str, name: str) -> bool:
    """Whether a `DAV:error` answer names this precondition (e.g. DAV:valid-sync-token)."""
    try:
        root = parse(data)
    except DavXmlError:
        return False
    return root.find(f".//{tag(namespace, name)}") is not None


# -- request bodies --------------------------------------------------------------------------

_HEAD = '<?xml version="1.0" encoding="utf-8"?>\n'

PRINCIPAL_PROPFIND = (
    _HEAD + '<D:propfind xmlns:D="DAV:" xmlns:C="urn:ietf:params:xml:ns:caldav"><D:prop>'
    "<D:current-user-principal/><C:calendar-home-set/><D:resourcetype/>"
    "</D:prop></D:propfind>"
)
CALENDARS_PROPFIND = (
    _HEAD + '<D:propfind xmlns:D="DAV:" xmlns:C="urn:ietf:params:xml:ns:caldav" '
    'xmlns:I="http://apple.com/ns/ical/"><D:prop>'
    "<D:resourcetype/><D:displayname/><I:calendar-color/>"
    "<C:supported-calendar-component-set/><D:current-user-privilege-set/>"
    "</D:prop></D:propfind>"
)
ETAG_PROPFIND = (
    _HEAD + '<D:propfind xmlns:D="DAV:"><D:prop><D:getetag/><D:resourcetype/></D:prop></D:propfind>'
)
EVENT_LISTING = (
    _HEAD + '<C:calendar-query xmlns:D="DAV:" xmlns:C="urn:ietf:params:xml:ns:caldav">'
    '<D:prop><D:getetag/></D:prop><C:filter><C:comp-filter name="VCALENDAR">'
    '<C:comp-filter name="VEVENT"/></C:comp-filter></C:filter></C:calendar-query>'
)


def sync_collection(token: str | None) -> str:
    return (
        _HEAD + '<D:sync-collection xmlns:D="DAV:">'
        f"<D:sync-token>{escape(token or '')}</D:sync-token>"
        "<D:sync-level>1</D:sync-level><D:prop><D:getetag/></D:prop></D:sync-collection>"
    )


def calendar_multiget(hrefs: list[str]) -> str:
    listed = "".join(f"<D:href>{escape(href)}</D:href>" for href in hrefs)
    return (
        _HEAD + '<C:calendar-multiget xmlns:D="DAV:" xmlns:C="urn:ietf:params:xml:ns:caldav">'
        f"<D:prop><D:getetag/><C:calendar-data/></D:prop>{listed}</C:calendar-multiget>"
    )


def uid_query(uid: str) -> str:
    return (
        _HEAD + '<C:calendar-query xmlns:D="DAV:" xmlns:C="urn:ietf:params:xml:ns:caldav">'
        "<D:prop><D:getetag/><C:calendar-data/></D:prop>"
        '<C:filter><C:comp-filter name="VCALENDAR"><C:comp-filter name="VEVENT">'
        '<C:prop-filter name="UID">'
        f'<C:text-match collation="i;octet">{escape(uid)}</C:text-match>'
        "</C:prop-filter></C:comp-filter></C:comp-filter></C:filter></C:calendar-query>"
    )
