"""Mozilla autoconfig (config-v1.1.xml) parsing, safe against hostile documents.

The XML comes from a server chosen by whoever owns the e-mail domain, so it is untrusted:
the size is bounded by the fetcher, and here any DOCTYPE, entity declaration or external
entity is refused before expansion (no billion laughs, no XXE). expat feeds an ElementTree
builder directly, so no extra dependency is needed for that guarantee.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from typing import NoReturn
from xml.parsers import expat

from pydantic import BaseModel, ValidationError

from crmsync.mail.hostnames import normalise_hostname
from crmsync.mail.preset_model import UsernameFormat
from crmsync.models.servers import Security, ServerEndpoint

_SOCKET_TYPES: dict[str, Security] = {"ssl": "ssl", "starttls": "starttls", "plain": "none"}
_PREFERENCE: dict[Security, int] = {"ssl": 0, "starttls": 1, "none": 2}
_USERNAMES: dict[str, UsernameFormat] = {
    "%EMAILADDRESS%": "email",
    "%EMAILLOCALPART%": "local_part",
}


class AutoconfigError(ValueError):
    """The document is not a usable autoconfig file (malformed, hostile or incomplete)."""


class AutoconfigServers(BaseModel):
    """The IMAP and SMTP servers an autoconfig document offers, best security first."""

    provider_name: str | None = None
    imap: ServerEndpoint | None = None
    smtp: ServerEndpoint | None = None
    username: UsernameFormat = "email"
    notes: list[str] = []


def _refuse_dtd(*_: object) -> NoReturn:
    raise AutoconfigError("DOCTYPE and entity declarations are not allowed")


def parse_xml_safely(data: bytes) -> ET.Element:
    """Parse XML without any DTD processing; hostile constructs raise AutoconfigError."""
    builder = ET.TreeBuilder()
    parser = expat.ParserCreate()
    parser.SetParamEntityParsing(expat.XML_PARAM_ENTITY_PARSING_NEVER)
    parser.StartDoctypeDeclHandler = _refuse_dtd
    parser.EntityDeclHandler = _refuse_dtd
    parser.UnparsedEntityDeclHandler = _refuse_dtd
    parser.ExternalEntityRefHandler = _refuse_dtd
    parser.StartElementHandler = builder.start
    parser.EndElementHandler = builder.end
    parser.CharacterDataHandler = builder.data
    try:
        parser.Parse(data, True)
    except expat.ExpatError as exc:
        raise AutoconfigError(f"malformed XML: {exc}") from exc
    return builder.close()


def _text(element: ET.Element, tag: str) -> str:
    child = element.find(tag)
    return (child.text or "").strip() if child is not None else ""


def _server(element: ET.Element, domain: str) -> tuple[ServerEndpoint, str] | None:
    """One incoming/outgoing server as an endpoint plus its raw username template."""
    security = _SOCKET_TYPES.get(_text(element, "socketType").lower())
    host = normalise_hostname(_text(element, "hostname").replace("%EMAILDOMAIN%", domain))
    port = _text(element, "port")
    if security is None or host is None or not port.isdigit():
        return None
    try:
        endpoint = ServerEndpoint(host=host, port=int(port), security=security)
    except ValidationError:
        return None
    return endpoint, _text(element, "username")


def _best(
    provider: ET.Element, tag: str, kind: str, domain: str
) -> tuple[ServerEndpoint, str] | None:
    candidates = [
        server
        for element in provider.findall(tag)
        if element.get("type") == kind and (server := _server(element, domain)) is not None
    ]
    candidates.sort(key=lambda server: _PREFERENCE[server[0].security])
    return candidates[0] if candidates else None


def parse_autoconfig(data: bytes, domain: str) -> AutoconfigServers:
    """The IMAP/SMTP servers of a config-v1.1.xml document (POP3-only providers give none)."""
    root = parse_xml_safely(data)
    if root.tag != "clientConfig":
        raise AutoconfigError(f"root element is <{root.tag[:40]}>, not <clientConfig>")
    provider = root.find("emailProvider")
    if provider is None:
        raise AutoconfigError("no <emailProvider> element")
    incoming = _best(provider, "incomingServer", "imap", domain)
    outgoing = _best(provider, "outgoingServer", "smtp", domain)
    notes: list[str] = []
    username: UsernameFormat = "email"
    if incoming is not None:
        template = incoming[1]
        if template in _USERNAMES:
            username = _USERNAMES[template]
        elif template:
            notes.append(f"The provider's configuration gives the username as {template[:80]!r}.")
    for found in (incoming, outgoing):
        if found is not None and found[0].security == "none":
            notes.append(f"{found[0].host} is offered without encryption only.")
    display = _text(provider, "displayName")[:120] or None
    return AutoconfigServers(
        provider_name=display,
        imap=incoming[0] if incoming else None,
        smtp=outgoing[0] if outgoing else None,
        username=username,
        notes=notes,
    )
