"""MIME building blocks for the demo mailbox: tiny attachments, HTML bodies, message assembly.

Everything here is a pure function of its arguments so that a seeded corpus yields identical
bytes on every run (the stdlib would otherwise pick random multipart boundaries).
"""

from __future__ import annotations

import html
import struct
import zlib
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from email import policy
from email.header import Header
from email.headerregistry import Address
from email.message import EmailMessage
from email.utils import formataddr
from hashlib import sha256
from zoneinfo import ZoneInfo

from icalendar import Calendar, Event, vCalAddress, vText

# email.policy.default with CRLF line endings: IMAP APPEND wants RFC 5322 wire format.
WIRE_POLICY = policy.default.clone(linesep="\r\n")

Person = tuple[str, str]  # (display name, address)


@dataclass
class Attachment:
    """One attachment; ``message`` set means a forwarded message/rfc822 part."""

    filename: str
    data: bytes = b""
    maintype: str = "application"
    subtype: str = "octet-stream"
    params: dict[str, str] = field(default_factory=dict)
    message: EmailMessage | None = None


@dataclass
class MailSpec:
    """Everything needed to render one message; ``charset`` applies to headers and bodies."""

    sender: Person
    to: list[Person]
    subject: str
    date: datetime
    message_id: str
    text: str
    cc: list[Person] = field(default_factory=list)
    in_reply_to: str | None = None
    references: list[str] = field(default_factory=list)
    html: str | None = None
    inline_png: tuple[str, bytes] | None = None
    attachments: list[Attachment] = field(default_factory=list)
    charset: str = "utf-8"
    cte: str | None = None
    extra_headers: list[tuple[str, str]] = field(default_factory=list)


def make_png(width: int = 16, height: int = 16, rgb: tuple[int, int, int] = (32, 96, 200)) -> bytes:
    """Return a valid solid-colour PNG, so inline images decode in real viewers."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        crc = zlib.crc32(kind + data) & 0xFFFFFFFF
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", crc)

    rows = b"".join(b"\x00" + bytes(rgb) * width for _ in range(height))
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(rows, 9))
        + chunk(b"IEND", b"")
    )


def make_pdf(title: str, lines: list[str]) -> bytes:
    """Return a one-page PDF with a correct xref table (text limited to Latin-1)."""

    def lit(text: str) -> bytes:
        raw = text.encode("latin-1", errors="replace")
        return b"(" + raw.replace(b"\\", b"\\\\").replace(b"(", b"\\(").replace(b")", b"\\)") + b")"

    ops = [b"BT /F1 18 Tf 72 740 Td " + lit(title) + b" Tj ET"]
    ops += [
        b"BT /F1 11 Tf 72 %d Td " % (700 - 18 * i) + lit(line) + b" Tj ET"
        for i, line in enumerate(lines)
    ]
    stream = b"\n".join(ops)
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 4 0 R"
        b" /Resources << /Font << /F1 5 0 R >> >> >>",
        b"<< /Length %d >>\nstream\n" % len(stream) + stream + b"\nendstream",
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
        b"<< /Title " + lit(title) + b" /Producer (crmsync demo) >>",
    ]
    out = bytearray(b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n")
    offsets = []
    for number, body in enumerate(objects, start=1):
        offsets.append(len(out))
        out += b"%d 0 obj\n" % number + body + b"\nendobj\n"
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    out += b"".join(b"%010d 00000 n \n" % offset for offset in offsets)
    out += b"trailer\n<< /Size %d /Root 1 0 R /Info 6 0 R >>\n" % (len(objects) + 1)
    out += b"startxref\n%d\n%%%%EOF\n" % xref
    return bytes(out)


def make_csv(header: list[str], rows: list[list[str]]) -> bytes:
    """Return UTF-8 CSV with CRLF rows (what spreadsheet exports look like)."""
    lines = [header, *rows]
    quoted = (",".join(f'"{c}"' if "," in c else c for c in line) for line in lines)
    return ("\r\n".join(quoted) + "\r\n").encode("utf-8")


def make_invite(
    *,
    uid: str,
    summary: str,
    organizer: Person,
    attendees: list[Person],
    start: datetime,
    minutes: int,
    stamp: datetime,
    location: str,
) -> bytes:
    """Return an iTIP METHOD:REQUEST invitation, as mail clients attach to invites."""
    cal = Calendar()
    cal.add("prodid", "-//crmsync//demo mailbox//EN")
    cal.add("version", "2.0")
    cal.add("method", "REQUEST")
    event = Event()
    event.add("uid", uid)
    event.add("dtstamp", stamp)
    event.add("dtstart", start)
    event.add("dtend", start + timedelta(minutes=minutes))
    event.add("summary", summary)
    event.add("location", location)
    event.add("sequence", 0)
    event.add("status", "CONFIRMED")
    event.add("organizer", _cal_address(organizer, organizer=True))
    for person in attendees:
        event.add("attendee", _cal_address(person))
    cal.add_component(event)
    if isinstance(start.tzinfo, ZoneInfo):
        cal.add_missing_timezones(date(start.year - 1, 1, 1), date(start.year + 2, 1, 1))
    return bytes(cal.to_ical())


def _cal_address(person: Person, *, organizer: bool = False) -> vCalAddress:
    address = vCalAddress(f"mailto:{person[1]}")
    address.params["cn"] = vText(person[0])
    if not organizer:
        address.params["role"] = vText("REQ-PARTICIPANT")
        address.params["partstat"] = vText("NEEDS-ACTION")
        address.params["rsvp"] = vText("TRUE")
    return address


STYLE = (
    "body{font-family:Arial,Helvetica,sans-serif;font-size:14px;color:#222}"
    "table.data{border-collapse:collapse;margin:12px 0}"
    "table.data th,table.data td{border:1px solid #ccc;padding:4px 8px}"
    "table.sig td{padding:2px 8px;color:#555;font-size:12px}"
)


def render_html(
    paragraphs: list[str],
    signature: list[str],
    *,
    charset: str,
    table: list[list[str]] | None = None,
    logo_cid: str | None = None,
    tracking_url: str | None = None,
    script: bool = False,
    quoted: str | None = None,
) -> str:
    """Render an HTML body with the hostile bits (remote pixel, script) a sanitiser must handle."""
    out = [
        f'<!DOCTYPE html><html><head><meta http-equiv="Content-Type" '
        f'content="text/html; charset={charset}"><style>{STYLE}</style>'
    ]
    if script:
        out.append(
            '<script type="text/javascript">document.write(\'<img src="https://t.pixel.example/'
            "js?ts=' + Date.now() + '\">');</script>"
        )
    out.append("</head><body>")
    out += [f"<p>{html.escape(p).replace(chr(10), '<br>')}</p>" for p in paragraphs]
    if table:
        head, *rows = table
        out.append('<table class="data"><tr>')
        out += [f"<th>{html.escape(c)}</th>" for c in head]
        out.append("</tr>")
        for row in rows:
            out.append("<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in row) + "</tr>")
        out.append("</table>")
    out.append('<table class="sig"><tr>')
    if logo_cid:
        out.append(f'<td><img src="cid:{logo_cid}" width="16" height="16" alt="logo"></td>')
    out.append("<td>" + "<br>".join(html.escape(s) for s in signature) + "</td></tr></table>")
    if quoted:
        out.append(
            '<blockquote style="border-left:2px solid #ccc;margin:0;padding-left:8px">'
            + html.escape(quoted).replace("\n", "<br>")
            + "</blockquote>"
        )
    if tracking_url:
        out.append(f'<img src="{tracking_url}" width="1" height="1" alt="" style="display:none">')
    out.append("</body></html>")
    return "\n".join(out)


def text_table(table: list[list[str]]) -> str:
    """Plain-text rendering of the HTML table, so both alternatives carry the same facts."""
    widths = [max(len(row[i]) for row in table) for i in range(len(table[0]))]
    return "\n".join(
        "  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip() for row in table
    )


def _address(person: Person) -> Address:
    local, _, domain = person[1].partition("@")
    return Address(display_name=person[0], username=local, domain=domain)


def build_message(spec: MailSpec) -> tuple[EmailMessage, bytes]:
    """Build the message; return it plus pre-encoded header lines for legacy charsets.

    ``email.policy.default`` always re-encodes headers as UTF-8, but real Outlook/Thunderbird
    mail in German, Polish or Japanese often carries ISO-8859-x / ISO-2022-JP encoded-words,
    so those lines are produced with :class:`email.header.Header` and prepended verbatim.
    """
    msg = EmailMessage(policy=WIRE_POLICY)
    prefix = b""
    if spec.charset in ("utf-8", "us-ascii"):
        msg["From"] = _address(spec.sender)
        msg["Subject"] = spec.subject
    else:
        sender = formataddr(spec.sender, charset=spec.charset)
        subject = spec.subject
        if not subject.isascii():
            subject = Header(subject, spec.charset, header_name="Subject").encode(linesep="\r\n")
        prefix = f"From: {sender}\r\nSubject: {subject}\r\n".encode("ascii")
    msg["To"] = [_address(p) for p in spec.to]
    if spec.cc:
        msg["Cc"] = [_address(p) for p in spec.cc]
    msg["Date"] = spec.date
    msg["Message-ID"] = spec.message_id
    if spec.in_reply_to:
        msg["In-Reply-To"] = spec.in_reply_to
    if spec.references:
        msg["References"] = " ".join(spec.references)
    for name, value in spec.extra_headers:
        msg[name] = value
    msg.set_content(spec.text, charset=spec.charset, cte=spec.cte)
    if spec.html is not None:
        msg.add_alternative(spec.html, subtype="html", charset=spec.charset, cte=spec.cte)
        if spec.inline_png:
            cid, png = spec.inline_png
            html_part = msg.get_body(("html",))
            if html_part is None:  # pragma: no cover - add_alternative just created it
                raise RuntimeError("HTML alternative missing")
            html_part.add_related(
                png, "image", "png", cid=f"<{cid}>", disposition="inline", filename="logo.png"
            )
    for att in spec.attachments:
        if att.message is not None:
            msg.add_attachment(att.message, filename=att.filename)
        else:
            msg.add_attachment(
                att.data, att.maintype, att.subtype, filename=att.filename, params=att.params
            )
    return msg, prefix


def normalise(msg: EmailMessage, salt: str) -> None:
    """Derive boundaries from ``salt`` (the stdlib picks random ones) and drop the
    MIME-Version headers the stdlib leaves on body parts (only message roots carry one)."""
    token = sha256(salt.encode()).hexdigest()[:16]
    roots = {id(msg)}
    count = 0
    for part in msg.walk():  # walk() also descends into forwarded message/rfc822 parts
        if part.get_content_type() == "message/rfc822":
            roots.update(id(inner) for inner in part.get_payload())
        if id(part) not in roots:
            del part["MIME-Version"]
        if part.get_content_maintype() == "multipart":
            count += 1
            part.set_boundary(f"----=_Part_{token}_{count}")


def render(spec: MailSpec) -> bytes:
    """Return the RFC 5322 bytes (CRLF) for ``spec``."""
    msg, prefix = build_message(spec)
    normalise(msg, spec.message_id)
    return prefix + msg.as_bytes(policy=WIRE_POLICY)
