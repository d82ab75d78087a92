"""Properties of the parser on generated MIME messages and on random damage to them.

Generated messages (random headers with unicode subjects and names, nested multiparts,
charsets, transfer encodings, attachments) must come back faithfully; any bytes at all,
including mutations of those messages, must parse without raising and to safe output."""

from __future__ import annotations

import base64
import quopri
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from email.header import Header
from email.utils import format_datetime, formataddr
from urllib.parse import quote

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from crmsync.mail.parse import UnparseableMessage, header_summary, parse_message
from crmsync.models.parsed import ParsedMessage

SETTINGS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
CHARSETS = [
    *("utf-8", "iso-8859-1", "windows-1252", "koi8-r", "iso-2022-jp", "shift_jis"),
    *("gb2312", "utf-16", "us-ascii", "x-unknown"),
]
TRANSFER_ENCODINGS = ["base64", "quoted-printable", "8bit"]
ATTACHMENT_TYPES = ["application/pdf", "image/png", "application/octet-stream", "text/plain"]
DANGEROUS = [
    "<script>alert(1)</script>",
    '<img src="x.png" onerror="alert(1)">',
    "<a href=\"javascript:alert('x')\">link</a>",
    '<a href="JaVaScRiPt&#58;alert(1)">link</a>',
    '<iframe src="https://evil.example"></iframe>',
    "<style>p { color: red }</style>",
    '<div onclick="steal()">div</div>',
    "<svg onload=alert(1)><script>alert(2)</script></svg>",
    '<form action="https://evil.example"><input name="pw"></form>',
]
TAG = re.compile(r"<[^>]*>")
EVENT_ATTRIBUTE = re.compile(r"\son[a-z]+\s*=", re.IGNORECASE)

TEXT = st.characters(
    codec="utf-8", exclude_categories=("Cc", "Cs", "Co", "Cn", "Zl", "Zp"), exclude_characters="="
)
LINE = st.text(TEXT, max_size=60)
BODY = st.lists(LINE, max_size=6).map("\r\n".join)
ADDRESS = st.from_regex(
    r"[A-Za-z0-9]{1,8}(\.[A-Za-z0-9]{1,5})?@[A-Za-z0-9]{1,10}\.(com|ORG|De)", fullmatch=True
)
MESSAGE_ID = st.from_regex(r"[A-Za-z0-9.$_-]{1,20}@[A-Za-z0-9.-]{1,15}", fullmatch=True)
FILENAME = st.text(TEXT, min_size=1, max_size=20).filter(
    lambda name: name.strip() not in ("", ".", "..") and not set(name) & set("/\\")
)


@dataclass(frozen=True)
class Text:
    subtype: str
    body: str
    charset: str
    encoding: str


@dataclass(frozen=True)
class File:
    content_type: str
    filename: str
    data: bytes


@dataclass(frozen=True)
class Multipart:
    subtype: str
    children: tuple[Node, ...]


Node = Text | File | Multipart


@dataclass(frozen=True)
class Generated:
    raw: bytes
    subject: str
    message_id: str | None
    to: list[str]
    filenames: list[str]


@st.composite
def texts(draw: st.DrawFn) -> Text:
    subtype = draw(st.sampled_from(["plain", "html"]))
    body = draw(BODY)
    if subtype == "html":
        body = f"<p>{body.replace('&', '&amp;').replace('<', '&lt;')}</p>"
        body += "".join(draw(st.lists(st.sampled_from(DANGEROUS), max_size=3)))
    return Text(
        subtype, body, draw(st.sampled_from(CHARSETS)), draw(st.sampled_from(TRANSFER_ENCODINGS))
    )


files = st.builds(File, st.sampled_from(ATTACHMENT_TYPES), FILENAME, st.binary(max_size=2000))
nodes: st.SearchStrategy[Node] = st.recursive(
    st.one_of(texts(), files),
    lambda children: st.builds(
        Multipart,
        st.sampled_from(["mixed", "alternative", "related"]),
        st.lists(children, min_size=1, max_size=4).map(tuple),
    ),
    max_leaves=8,
)


def encode_body(data: bytes, encoding: str) -> bytes:
    if encoding == "base64":
        return base64.encodebytes(data).replace(b"\n", b"\r\n")
    if encoding == "quoted-printable":
        return quopri.encodestring(data).replace(b"\n", b"\r\n")
    return data


def render(node: Node, path: str) -> bytes:
    if isinstance(node, Multipart):
        boundary = f"b-{path}-boundary".encode()
        parts = [render(child, f"{path}.{i}") for i, child in enumerate(node.children)]
        body = b"".join(b"--" + boundary + b"\r\n" + part + b"\r\n" for part in parts)
        head = f'Content-Type: multipart/{node.subtype}; boundary="{boundary.decode()}"\r\n\r\n'
        return head.encode() + body + b"--" + boundary + b"--\r\n"
    if isinstance(node, File):
        head = (
            f'Content-Type: {node.content_type}; name="file"\r\n'
            f"Content-Disposition: attachment; filename*=utf-8''{quote(node.filename)}\r\n"
            "Content-Transfer-Encoding: base64\r\n\r\n"
        )
        return head.encode() + encode_body(node.data, "base64")
    codec = "utf-8" if node.charset == "x-unknown" else node.charset
    data = node.body.encode(codec, "replace")
    encoding = "base64" if node.charset == "utf-16" else node.encoding
    head = (
        f"Content-Type: text/{node.subtype}; charset={node.charset}\r\n"
        f"Content-Transfer-Encoding: {encoding}\r\n\r\n"
    )
    return head.encode() + encode_body(data, encoding)


def attachment_names(node: Node) -> list[str]:
    if isinstance(node, Multipart):
        return [name for child in node.children for name in attachment_names(child)]
    return [node.filename.strip()] if isinstance(node, File) else []


@st.composite
def messages(draw: st.DrawFn) -> Generated:
    subject = draw(st.text(TEXT, max_size=80))
    message_id = draw(st.none() | MESSAGE_ID)
    sender = formataddr((draw(st.text(TEXT, max_size=20)), draw(ADDRESS)), charset="utf-8")
    to = draw(st.lists(ADDRESS, min_size=1, max_size=3))
    if draw(st.booleans()):
        subject_field = Header(subject, "utf-8", header_name="Subject").encode(linesep="\r\n")
    else:
        subject_field = " ".join(subject.split())
    lines = [
        f"From: {sender}",
        f"To: {', '.join(to)}",
        f"Subject: {subject_field}",
        "MIME-Version: 1.0",
    ]
    if message_id is not None:
        lines.append(f"Message-ID: <{message_id}>")
    when = draw(st.datetimes(datetime(1990, 1, 1), datetime(2100, 1, 1), timezones=st.just(UTC)))
    lines.append(f"Date: {format_datetime(when)}")
    body = draw(nodes)
    raw = "\r\n".join(lines).encode() + b"\r\n" + render(body, "0")
    return Generated(raw, subject, message_id, [a.lower() for a in to], attachment_names(body))


def assert_invariants(raw: bytes) -> ParsedMessage | None:
    """What holds for any input: only UnparseableMessage escapes, and only together with
    the header-only parse; the output is safe, normalised, serialisable and deterministic."""
    try:
        parsed = parse_message(raw)
    except UnparseableMessage:
        try:
            header_summary(raw)
        except UnparseableMessage:
            return None
        raise AssertionError("parse_message gave up where header_summary did not") from None
    assert len(parsed.snippet) <= 200
    if parsed.html is not None:
        assert "<script" not in parsed.html.lower()
        for tag in TAG.findall(parsed.html):
            assert not EVENT_ATTRIBUTE.search(tag), tag
            assert "javascript:" not in tag.lower(), tag
    senders = [a for a in (parsed.from_, parsed.sender) if a is not None]
    for address in [*senders, *parsed.to, *parsed.cc, *parsed.bcc, *parsed.reply_to]:
        assert "@" in address.email
        assert address.email == address.email.lower()
    assert parse_message(raw) == parsed
    assert header_summary(raw).message_id == parsed.message_id
    assert parsed.date is None or parsed.date.utcoffset() is not None
    parsed.model_dump_json(by_alias=True)
    return parsed


@SETTINGS
@given(messages())
def test_generated_messages_parse_faithfully(message: Generated) -> None:
    parsed = assert_invariants(message.raw)
    assert parsed is not None
    assert " ".join(parsed.subject.split()) == " ".join(message.subject.split())
    assert parsed.message_id == message.message_id
    assert [a.email for a in parsed.to] == message.to
    assert [a.filename for a in parsed.attachments] == message.filenames
    assert parsed.date is not None


@st.composite
def mutated(draw: st.DrawFn) -> bytes:
    raw = bytearray(draw(messages()).raw)
    for _ in range(draw(st.integers(1, 6))):
        position = draw(st.integers(0, len(raw)))
        operation = draw(st.sampled_from(["flip", "delete", "insert", "truncate", "repeat"]))
        if operation == "flip" and position < len(raw):
            raw[position] = draw(st.integers(0, 255))
        elif operation == "delete":
            del raw[position : position + draw(st.integers(1, 40))]
        elif operation == "insert":
            junk = draw(
                st.sampled_from([b"\r\n", b"\n\n", b"--", b"=?", b"?=", b"<", b":", b"\xff"])
            )
            raw[position:position] = junk if draw(st.booleans()) else draw(st.binary(max_size=8))
        elif operation == "truncate":
            del raw[position:]
        elif operation == "repeat":
            raw[position:position] = raw[position : position + draw(st.integers(1, 200))]
    return bytes(raw)


@SETTINGS
@given(mutated())
def test_mutated_messages_never_break_the_parser(raw: bytes) -> None:
    assert_invariants(raw)


@SETTINGS
@given(st.binary(max_size=400))
def test_arbitrary_bytes_never_break_the_parser(raw: bytes) -> None:
    assert_invariants(raw)


HEADER_NAMES = ["Subject", "From", "To", "Cc", "Date", "Message-ID", "References", "Content-Type"]


@SETTINGS
@given(
    st.lists(
        st.tuples(st.sampled_from(HEADER_NAMES), st.binary(max_size=60)), min_size=1, max_size=8
    ),
    st.binary(max_size=100),
)
def test_random_header_fields_never_break_the_parser(
    fields: list[tuple[str, bytes]], body: bytes
) -> None:
    head = b"\r\n".join(name.encode() + b": " + value for name, value in fields)
    assert_invariants(head + b"\r\n\r\n" + body)
