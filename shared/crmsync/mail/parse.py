"""Raw MIME to `ParsedMessage`: the message processor's parser.

Mail from the wild is often broken, so parsing is total: whatever the bytes, a
`ParsedMessage` comes back and what was wrong is recorded as short codes in `defects`.
`email.policy.default` parses header fields lazily and raises on some malformed ones, so
every field is read through `_Headers`, which turns those errors into defects and falls
back to the raw value. Decoded attachment payloads are hashed and dropped at once.
"""

from __future__ import annotations

import codecs
import hashlib
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email import errors
from email.generator import BytesGenerator
from email.header import decode_header, make_header
from email.headerregistry import BaseHeader, HeaderRegistry, UnstructuredHeader
from email.message import EmailMessage, Message
from email.parser import BytesHeaderParser, BytesParser
from email.policy import default as _DEFAULT_POLICY
from email.utils import parsedate_to_datetime
from functools import lru_cache
from io import BytesIO
from typing import Any

from crmsync.mail.html import html_to_text, sanitise_html, snippet
from crmsync.models.parsed import (
    Address,
    Attachment,
    CalendarPart,
    HeaderSummary,
    ParsedMessage,
)

__all__ = [
    "UnparseableMessage",
    "attachment_bytes",
    "header_summary",
    "normalise_address",
    "parse_message",
    "thread_subject",
]

MAX_DEPTH = 50

# What the stdlib raises on input it does not expect; caught narrowly and recorded.
_LIBRARY_ERRORS: tuple[type[BaseException], ...] = (
    *(ValueError, LookupError, TypeError, AttributeError, IndexError, UnicodeError),
    *(AssertionError, RecursionError, errors.MessageError),
)
_STRUCTURE_FIELDS = frozenset({"content-type", "content-disposition", "content-transfer-encoding"})


class _HeaderRegistry(HeaderRegistry):
    """policy.default's header classes without two stdlib costs: a new class is built for
    every field read, and the feed parser re-parses each part's Content-Type several times.
    Header objects are immutable, so equal short MIME-structure fields share one."""

    def __init__(self) -> None:
        super().__init__()
        self._classes: dict[type[Any], type[BaseHeader]] = {}

    def __getitem__(self, name: str) -> type[BaseHeader]:
        specialised = self.registry.get(name.lower(), self.default_class)
        cls = self._classes.get(specialised)
        if cls is None:
            cls = self._classes[specialised] = super().__getitem__(name)
        return cls

    def __call__(self, name: str, value: Any) -> BaseHeader:
        if isinstance(value, str) and len(value) < 1000 and name.lower() in _STRUCTURE_FIELDS:
            return _structure_header(name, value)
        return self[name](name, value)


@lru_cache(maxsize=1024)
def _structure_header(name: str, value: str) -> BaseHeader:
    return _REGISTRY[name](name, value)


_REGISTRY = _HeaderRegistry()
_POLICY = _DEFAULT_POLICY.clone(header_factory=_REGISTRY)
_GENERATOR_POLICY = _POLICY.clone(refold_source="none", linesep="\r\n")
_BODY_TYPES = frozenset({"text/plain", "text/html"})
_TNEF_TYPES = frozenset({"application/ms-tnef", "application/vnd.ms-tnef"})
_DEFECT_CODES: dict[type[Exception], str] = {
    errors.CloseBoundaryNotFoundDefect: "truncated",
    errors.StartBoundaryNotFoundDefect: "malformed_multipart",
    errors.NoBoundaryInMultipartDefect: "malformed_multipart",
    errors.MultipartInvariantViolationDefect: "malformed_multipart",
    errors.InvalidMultipartContentTransferEncodingDefect: "malformed_multipart",
    errors.MissingHeaderBodySeparatorDefect: "missing_header_separator",
    errors.InvalidBase64PaddingDefect: "bad_base64",
    errors.InvalidBase64CharactersDefect: "bad_base64",
    errors.InvalidBase64LengthDefect: "bad_base64",
    errors.UndecodableBytesDefect: "undecodable_bytes",
    errors.CharsetError: "unknown_charset",
}
_CHARSET_ALIASES = {
    "ks_c_5601-1987": "cp949",
    "windows-874": "cp874",
    "iso-8859-8-i": "iso-8859-8",
    "x-mac-roman": "mac_roman",
    "gb2312": "gb18030",
    "gbk": "gb18030",
    "x-sjis": "shift_jis",
}
_NOT_CHARSETS = frozenset({"idna", "punycode", "unicode-escape", "raw-unicode-escape", "undefined"})
# Declared single-byte Western charsets and how their non-UTF-8 bytes are read (as browsers do).
_WESTERN = {
    "ascii": "cp1252",
    "iso8859-1": "cp1252",
    "cp1252": "cp1252",
    "iso8859-15": "iso8859-15",
}

_SURROGATES = re.compile("[\ud800-\udfff]")
_ESCAPED_BYTES = re.compile("[\udc80-\udcff]+")
_MSGID = re.compile(r"<([^<>]*)>")
_ADDRESS_SPLIT = re.compile(r"[\s<>(),;:\"'\[\]]+")
_DOMAIN = re.compile(r"(?:[a-z0-9_-]+\.)*[a-z0-9_-]+|\[[^\[\]\s]+\]")
_LOCAL_SPECIALS = re.compile(r"[\s<>()\[\],;:\\\"]")
_NAME_PARAM = re.compile(r"(?:^|;)\s*(?:file)?name\s*=\s*\"?([^\";]+)", re.IGNORECASE)
_REPLY_PREFIX = re.compile(
    r"\s*(?:\[[^\[\]]*\]|(?:re|fwd?|fw|aw|wg|sv|vs|antw|doorst|rif|r|tr|réf|ref|enc|odp|pd"
    r"|ynt|vb|rv|res|fs|ris|atb|отв|пересл|回复|回覆|转发|轉寄|答复)\s*(?:\[\d+\]|\(\d+\))?\s*[:\uff1a])",
    re.IGNORECASE,
)
_PATH = re.compile(r"[/\\]")
_ICAL_FOLD = re.compile(r"\r?\n[ \t]")
_ICAL_ESCAPE = re.compile(r"\\([\\;,nN])")


class UnparseableMessage(ValueError):
    """The input is not an email at all: empty or only whitespace, or even its header
    cannot be read by the email package."""


class _Defects:
    """Defect codes in first-seen order, each once, so equal input gives an equal list."""

    def __init__(self) -> None:
        self._codes: dict[str, None] = {}

    def add(self, code: str) -> None:
        self._codes[code] = None

    def record(self, found: list[errors.MessageDefect]) -> None:
        for defect in found:
            code = _DEFECT_CODES.get(type(defect))
            if code is None:
                code = "header_defect" if isinstance(defect, errors.HeaderDefect) else "defect"
            self.add(code)

    def codes(self) -> list[str]:
        return list(self._codes)


def _lenient(data: bytes) -> tuple[str, bool]:
    """Bytes of unknown encoding as text: UTF-8 when valid, else Windows-1252/Latin-1.
    The flag says whether they were valid UTF-8."""
    try:
        return data.decode("utf-8"), True
    except UnicodeDecodeError:
        pass
    try:
        return data.decode("cp1252"), False
    except UnicodeDecodeError:
        return data.decode("latin-1"), False


def _readable(value: str, defects: _Defects) -> str:
    """A string from the email package with its raw 8-bit bytes (held as surrogates)
    decoded, each run on its own: one header may mix UTF-8 and Latin-1 bytes."""
    if not _SURROGATES.search(value):
        return value

    def decode(run: re.Match[str]) -> str:
        text, utf8 = _lenient(run.group().encode("utf-8", "surrogateescape"))
        if not utf8:
            defects.add("undecodable_bytes")
        return text

    return _SURROGATES.sub("\ufffd", _ESCAPED_BYTES.sub(decode, value))


class _Headers:
    """The header fields of one part, read so that no malformed field can raise."""

    def __init__(self, part: Message, defects: _Defects) -> None:
        self._fields: dict[str, list[str]] = {}
        self._defects = defects
        for name, value in part.raw_items():
            self._fields.setdefault(name.lower(), []).append(value)

    def __bool__(self) -> bool:
        return bool(self._fields)

    def all(self, name: str) -> list[str]:
        values = self._fields.get(name, [])
        return [_readable(v.replace("\r", "").replace("\n", ""), self._defects) for v in values]

    def raw(self, name: str) -> str | None:
        values = self.all(name)
        return values[0] if values else None

    def parse(self, name: str, value: str | None) -> Any:
        """The policy's header object for `value`, or None when its parser fails on it."""
        if value is None:
            return None
        try:
            header: BaseHeader = _POLICY.header_factory(name, value)
        except _LIBRARY_ERRORS:
            self._defects.add("header_defect")
            return None
        if any(isinstance(d, errors.CharsetError) for d in header.defects):
            self._defects.add("unknown_charset")
        return header

    def text(self, name: str) -> str:
        """An unstructured field (Subject) with its encoded-words decoded. The policy's own
        header object would turn undecodable words into U+FFFD, so its parser is used."""
        value = self.raw(name)
        if value is None:
            return ""
        try:
            tree = UnstructuredHeader.value_parser(value)
            value = str(tree)
        except _LIBRARY_ERRORS:
            self._defects.add("header_defect")
        else:
            if any(isinstance(d, errors.CharsetError) for d in tree.all_defects):
                self._defects.add("unknown_charset")
        return _readable(value, self._defects).strip()

    def params(self, name: str) -> tuple[str | None, dict[str, str]]:
        """The value and lower-cased parameters of Content-Type or Content-Disposition."""
        header = self.parse(name, self.raw(name))
        if header is None:
            return None, {}
        kind = header.content_type if name == "content-type" else header.content_disposition
        params = {k.lower(): _readable(str(v), self._defects) for k, v in header.params.items()}
        return kind, params

    def filename(self, name: str | None) -> str | None:
        """An attachment's file name, decoded, without any directory part."""
        if name is None:
            match = _NAME_PARAM.search(self.raw("content-disposition") or "")
            match = match or _NAME_PARAM.search(self.raw("content-type") or "")
            name = match.group(1) if match else None
        if name is None:
            return None
        if "=?" in name:
            try:
                name = str(make_header(decode_header(name)))
            except _LIBRARY_ERRORS:
                self._defects.add("header_defect")
        name = _PATH.split(_readable(name, self._defects))[-1].strip()
        return None if name in ("", ".", "..") else name

    def addresses(self, name: str) -> list[Address]:
        found: list[Address] = []
        for value in self.all(name):
            header = self.parse(name, value)
            complete = header is not None and not any(
                isinstance(d, errors.InvalidHeaderDefect) for d in header.defects
            )
            for item in header.addresses if header is not None else ():
                email = normalise_address(item.addr_spec)
                if email is None:
                    complete = False
                    continue
                display = _readable(item.display_name, self._defects).strip()
                found.append(Address(email=email, name=display or None))
            if not complete:
                self._defects.add("header_defect")
                found.extend(_scan_addresses(value, {a.email for a in found}))
        return found


def _scan_addresses(value: str, known: set[str]) -> list[Address]:
    """Addresses picked out of a field the address parser could not read."""
    found: list[Address] = []
    for token in _ADDRESS_SPLIT.split(value):
        email = normalise_address(token) if token.count("@") == 1 else None
        if email is not None and email not in known:
            known.add(email)
            found.append(Address(email=email))
    return found


def normalise_address(value: str) -> str | None:
    """`value` as a comparable address (lower case, IDNA domain), or None if it is none."""
    text = value.strip().removeprefix("<").removesuffix(">").strip()
    local, at, domain = text.rpartition("@")
    if not at or not local or not domain:
        return None
    quoted = len(local) > 1 and local.startswith('"') and local.endswith('"')
    if not quoted and _LOCAL_SPECIALS.search(local):
        return None
    ascii_domain = _idna(domain.rstrip(".").lower())
    if ascii_domain is None:
        return None
    return f"{local.lower()}@{ascii_domain}"


@lru_cache(maxsize=1024)
def _idna(domain: str) -> str | None:
    if not domain.isascii():
        try:
            domain = domain.encode("idna").decode("ascii").lower()
        except UnicodeError:
            return None
    return domain if _DOMAIN.fullmatch(domain) else None


def _message_ids(value: str | None) -> list[str]:
    """Ids of a Message-ID / In-Reply-To / References field, without <> or whitespace."""
    if value is None:
        return []
    found = _MSGID.findall(value)
    if not found:
        found = [token.strip("<>") for token in value.split()]
    return [ident for ident in ("".join(raw.split()) for raw in found) if ident]


def _message_id(headers: _Headers) -> str | None:
    ids = _message_ids(headers.raw("message-id"))
    return ids[0] if ids else None


def _date(headers: _Headers, defects: _Defects) -> datetime | None:
    """The Date field in UTC; a date without a zone ("-0000") is taken as UTC."""
    value = headers.raw("date")
    if value is None or not value.strip():
        defects.add("missing_date")
        return None
    try:
        parsed = parsedate_to_datetime(value.strip())
        if parsed.tzinfo is None:
            return parsed.replace(tzinfo=UTC)
        return parsed.astimezone(UTC)
    except (ValueError, TypeError, IndexError, OverflowError):
        defects.add("malformed_date")
        return None


def thread_subject(subject: str) -> str:
    """The subject as threading compares it: reply/forward prefixes in any number and
    language and leading [list] tags removed, whitespace collapsed, case folded."""
    position = 0
    while match := _REPLY_PREFIX.match(subject, position):
        position = match.end()
    return " ".join(subject[position:].split()).casefold()


@lru_cache(maxsize=256)
def _codec(charset: str) -> str | None:
    """The Python codec for a declared charset, or None when it names no text encoding."""
    name = charset.strip().strip("\"'").lower()
    name = _CHARSET_ALIASES.get(name, name)
    try:
        codec = codecs.lookup(name).name
    except (LookupError, ValueError):
        return None
    return None if codec in _NOT_CHARSETS else codec


def _decode_text(data: bytes, charset: str | None, defects: _Defects) -> str:
    """A text part as str in its declared charset, never raising: a wrong or unknown
    charset falls back to UTF-8, then Windows-1252."""
    codec = _codec(charset) if charset else "ascii"
    if codec in _WESTERN:
        text = data.decode("ascii") if data.isascii() else _western(data, codec, defects)
    else:
        text = _declared(data, codec, defects)
    if _SURROGATES.search(text):
        text = _SURROGATES.sub("\ufffd", text)
    return text.removeprefix("\ufeff").replace("\r\n", "\n").replace("\r", "\n")


def _declared(data: bytes, codec: str | None, defects: _Defects) -> str:
    if codec is not None:
        try:
            return data.decode(codec)
        except LookupError:
            pass  # a codec, but not of text (base64, zlib): no charset at all
        except UnicodeError:
            defects.add("undecodable_bytes")
            return _lenient(data)[0] if codec == "utf-8" else _utf8_or(data, codec)
    defects.add("unknown_charset")
    return _lenient(data)[0]


def _western(data: bytes, codec: str, defects: _Defects) -> str:
    """Latin-1/ASCII declared: UTF-8 content is common and unmistakable, so prefer it."""
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        pass
    if codec == "ascii":
        defects.add("undecodable_bytes")
    try:
        return data.decode(_WESTERN[codec])
    except UnicodeDecodeError:
        return data.decode("latin-1")


def _utf8_or(data: bytes, codec: str) -> str:
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return data.decode(codec, "replace")


@dataclass
class _Walk:
    """What walking the MIME tree collects. With `bodies` off only attachments are listed,
    and the payload of attachment `want` is kept in `found`."""

    defects: _Defects
    bodies: bool = True
    want: int | None = None
    found: bytes | None = None
    plain: list[str] = field(default_factory=list)
    html: list[str] = field(default_factory=list)
    attachments: list[Attachment] = field(default_factory=list)
    calendar: list[CalendarPart] = field(default_factory=list)


@dataclass(frozen=True)
class _Part:
    """What decides how a leaf part is treated, read once from its header."""

    headers: _Headers
    ctype: str
    params: dict[str, str]
    disposition: str | None
    filename: str | None


def _part(part: Message, defects: _Defects) -> _Part:
    headers = _Headers(part, defects)
    ctype, params = headers.params("content-type")
    disposition, disposition_params = headers.params("content-disposition")
    return _Part(
        headers=headers,
        ctype=ctype or part.get_default_type(),
        params=params,
        disposition=disposition,
        filename=headers.filename(disposition_params.get("filename") or params.get("name")),
    )


def _walk(part: Message, walk: _Walk, depth: int, alternative: set[str] | None) -> None:
    """Visit `part` and its children; inside a multipart/alternative only the first plain
    and first HTML rendering count, elsewhere body parts are concatenated (list footers)."""
    if depth > MAX_DEPTH:
        walk.defects.add("too_deep")
        return
    try:
        info = _part(part, walk.defects)
        if not part.is_multipart():
            _leaf(part, info, walk, alternative)
        elif info.ctype.startswith("message/"):
            _add_attachment(info, info.ctype, _serialise(part, walk.defects), walk)
        else:
            inner = set() if info.ctype == "multipart/alternative" else alternative
            for child in part.get_payload():
                if isinstance(child, Message):
                    _walk(child, walk, depth + 1, inner)
    except _LIBRARY_ERRORS:
        walk.defects.add("part_error")
    walk.defects.record(part.defects)


def _leaf(part: Message, info: _Part, walk: _Walk, alternative: set[str] | None) -> None:
    ctype = "text/plain" if info.ctype.startswith("multipart/") else info.ctype
    body = info.disposition != "attachment" and info.filename is None
    if body and ctype in _BODY_TYPES:
        if alternative is not None:
            if ctype in alternative:
                return
            alternative.add(ctype)
        if walk.bodies:
            data = _payload(part, walk.defects)
            text = _decode_text(data, info.params.get("charset"), walk.defects)
            (walk.plain if ctype == "text/plain" else walk.html).append(text)
        return
    if body and alternative is not None and ctype.startswith("text/") and ctype != "text/calendar":
        return
    _add_attachment(info, ctype, _payload(part, walk.defects), walk)


def _add_attachment(info: _Part, ctype: str, data: bytes, walk: _Walk) -> None:
    ids = _message_ids(info.headers.raw("content-id"))
    index = len(walk.attachments)
    walk.attachments.append(
        Attachment(
            index=index,
            filename=info.filename,
            content_type=ctype,
            size=len(data),
            content_id=ids[0] if ids else None,
            inline=bool(ids) and info.disposition != "attachment",
            sha256=hashlib.sha256(data).hexdigest(),
        )
    )
    if ctype in _TNEF_TYPES or (info.filename or "").lower() == "winmail.dat":
        walk.defects.add("tnef")
    if ctype == "text/calendar" and walk.bodies:
        text = _decode_text(data, info.params.get("charset") or "utf-8", walk.defects)
        walk.calendar.append(_calendar(text, info.params.get("method"), len(data)))
    if walk.want == index:
        walk.found = data


def _payload(part: Message, defects: _Defects) -> bytes:
    """The decoded payload (base64, quoted-printable), or b"" when it cannot be decoded."""
    try:
        data = part.get_payload(decode=True)
    except _LIBRARY_ERRORS:
        defects.add("undecodable_payload")
        return b""
    return data if isinstance(data, bytes) else b""


def _serialise(part: Message, defects: _Defects) -> bytes:
    """The body of a message/* part (a forwarded message) as bytes, for download."""
    out = BytesIO()
    generator = BytesGenerator(out, mangle_from_=False, policy=_GENERATOR_POLICY)
    try:
        for inner in part.get_payload():
            if isinstance(inner, EmailMessage):
                generator.flatten(inner)
    except _LIBRARY_ERRORS:
        defects.add("part_error")
    return out.getvalue()


def _calendar(text: str, method: str | None, size: int) -> CalendarPart:
    """METHOD and the first VEVENT's UID, SUMMARY and DTSTART of an iCalendar text."""
    found: dict[str, str] = {}
    stack: list[str] = []
    events = 0
    for line in _ICAL_FOLD.sub("", text).splitlines():
        name, value = _ical_line(line)
        if name == "BEGIN":
            stack.append(value.upper())
            events += stack[-1] == "VEVENT"
        elif name == "END":
            if stack:
                stack.pop()
        elif stack == ["VCALENDAR"] and name == "METHOD":
            found.setdefault("METHOD", value.upper())
        elif stack[-1:] == ["VEVENT"] and events == 1 and name in ("UID", "SUMMARY", "DTSTART"):
            found.setdefault(name, value)
    summary = found.get("SUMMARY")
    if summary is not None:
        summary = _ICAL_ESCAPE.sub(lambda m: "\n" if m[1] in "nN" else m[1], summary)
    return CalendarPart(
        method=found.get("METHOD") or (method.strip().upper() if method else None),
        uid=found.get("UID"),
        summary=summary,
        start=found.get("DTSTART"),
        size=size,
    )


def _ical_line(line: str) -> tuple[str, str]:
    """(NAME, value) of a content line; ':' inside quoted parameter values is not the split."""
    quoted = False
    for position, char in enumerate(line):
        if char == '"':
            quoted = not quoted
        elif char == ":" and not quoted:
            return line[:position].split(";", 1)[0].strip().upper(), line[position + 1 :].strip()
    return "", ""


def _require(raw: bytes) -> bytes:
    data = bytes(raw)
    if not data.strip():
        raise UnparseableMessage("empty message")
    return data


TRACKING_HEADER = "x-crmsync-tracking"
"""Set by the CRM's sender on a message whose opens or clicks it tracks (SPEC T1, T2)."""


def parse_message(raw: bytes) -> ParsedMessage:
    """Parse raw MIME, totally: broken input gives a message with `defects`.

    Raises `UnparseableMessage` only when there is nothing to parse (empty or whitespace
    input) or when even the header-only parse fails. Bytes without any header field are
    still a message: a body, with defect "no_headers"."""
    data = _require(raw)
    walk = _Walk(_Defects())
    try:
        message = _parse(data, headers_only=False)
        _walk(message, walk, 0, None)
    except _LIBRARY_ERRORS:
        walk = _Walk(walk.defects)
        walk.defects.add("parser_error")
        message = _parse(data, headers_only=True)
    return _parsed(message, walk, len(data))


def _parse(data: bytes, *, headers_only: bool) -> Message:
    parser = BytesHeaderParser if headers_only else BytesParser
    try:
        return parser(policy=_POLICY).parsebytes(data)
    except _LIBRARY_ERRORS as exc:
        raise UnparseableMessage("the email parser failed on this input") from exc


def _parsed(message: Message, walk: _Walk, size: int) -> ParsedMessage:
    defects = walk.defects
    headers = _Headers(message, defects)
    if not headers:
        defects.add("no_headers")
    message_id = _message_id(headers)
    if message_id is None:
        defects.add("missing_message_id")
    subject = headers.text("subject")
    senders = headers.addresses("from")
    sender = headers.addresses("sender")
    plain = "\n\n".join(walk.plain)
    html = "".join(walk.html) if walk.html else None
    text = (plain if plain.strip() or html is None else html_to_text(html)).rstrip()
    return ParsedMessage(
        message_id=message_id,
        in_reply_to=_message_ids(headers.raw("in-reply-to")),
        references=list(dict.fromkeys(_message_ids(" ".join(headers.all("references"))))),
        subject=subject,
        thread_subject=thread_subject(subject),
        **{"from": senders[0] if senders else None},
        sender=sender[0] if sender else None,
        reply_to=headers.addresses("reply-to"),
        to=headers.addresses("to"),
        cc=headers.addresses("cc"),
        bcc=headers.addresses("bcc"),
        date=_date(headers, defects),
        text=text,
        html=sanitise_html(html).strip() if html is not None else None,
        snippet=snippet(text),
        attachments=walk.attachments,
        calendar=walk.calendar,
        defects=defects.codes(),
        size=size,
        tracking_id=(headers.raw(TRACKING_HEADER) or "").strip()[:200] or None,
    )


def attachment_bytes(raw: bytes, index: int) -> tuple[Attachment, bytes]:
    """Attachment `index` of a message (as `parse_message` numbered it) and its bytes.

    Raises LookupError when the message has no such attachment."""
    walk = _Walk(_Defects(), bodies=False, want=index)
    try:
        _walk(_parse(_require(raw), headers_only=False), walk, 0, None)
    except _LIBRARY_ERRORS as exc:
        raise LookupError(f"attachment {index}: the message cannot be parsed") from exc
    if walk.found is None or not 0 <= index < len(walk.attachments):
        raise LookupError(f"no attachment {index}")
    return walk.attachments[index], walk.found


def header_summary(raw: bytes) -> HeaderSummary:
    """Message-ID, Date and Subject from the header alone, normalised exactly as
    `parse_message` does (the sync worker's message identity must match the processor's)."""
    message = _parse(_require(raw), headers_only=True)
    defects = _Defects()
    headers = _Headers(message, defects)
    return HeaderSummary(
        message_id=_message_id(headers),
        date=_date(headers, defects),
        subject=headers.text("subject"),
    )
