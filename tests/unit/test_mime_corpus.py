"""Every message of the tricky corpus (tests/fixtures/mime) through the parser.

Each file must parse without raising, deterministically, agreeing with the header-only
parse; and each has its own check of the feature it exists for (a new file without a
check fails `test_every_file_has_a_check`)."""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import pytest

from crmsync.mail.parse import attachment_bytes, header_summary, parse_message
from crmsync.models.parsed import Address, CalendarPart, ParsedMessage

CORPUS = Path(__file__).resolve().parent.parent / "fixtures" / "mime"
FILES = sorted(path.name for path in CORPUS.glob("*.eml"))
SENT = datetime(2025, 3, 11, 8, 15, tzinfo=UTC)

Check = Callable[[ParsedMessage, bytes], None]
CHECKS: dict[str, Check] = {}


def check(name: str) -> Callable[[Check], Check]:
    def register(function: Check) -> Check:
        CHECKS[name] = function
        return function

    return register


def raw_of(name: str) -> bytes:
    return (CORPUS / name).read_bytes()


def test_corpus_is_there_and_small() -> None:
    assert len(FILES) >= 25
    assert sum((CORPUS / name).stat().st_size for name in FILES) < 3_000_000


def test_every_file_has_a_check() -> None:
    assert set(CHECKS) == set(FILES)


@pytest.mark.parametrize("name", FILES)
def test_parses_deterministically_and_agrees_with_header_summary(name: str) -> None:
    raw = raw_of(name)
    parsed = parse_message(raw)
    assert parsed.size == len(raw)
    assert parse_message(raw) == parsed
    assert header_summary(raw).message_id == parsed.message_id
    assert header_summary(raw).subject == parsed.subject
    assert len(parsed.snippet) <= 200
    assert [a.index for a in parsed.attachments] == list(range(len(parsed.attachments)))
    parsed.model_dump_json(by_alias=True)


@pytest.mark.parametrize("name", FILES)
def test_corpus_file(name: str) -> None:
    raw = raw_of(name)
    CHECKS[name](parse_message(raw), raw)


@check("bare_lf.eml")
def _bare_lf(parsed: ParsedMessage, raw: bytes) -> None:
    assert b"\r" not in raw
    assert parsed.text == "Line one\nLine two"
    assert [(a.filename, a.content_type) for a in parsed.attachments] == [
        ("numbers.csv", "text/csv")
    ]
    assert attachment_bytes(raw, 0)[1] == b"a,b\n1,2"
    assert parsed.defects == []


@check("bounce_report.eml")
def _bounce(parsed: ParsedMessage, raw: bytes) -> None:
    assert "could not\nbe delivered" in parsed.text
    assert parsed.from_ == Address(email="mailer-daemon@mx.example.com")
    assert [a.content_type for a in parsed.attachments] == [
        "message/delivery-status",
        "message/rfc822",
    ]
    assert b"Status: 5.1.1" in attachment_bytes(raw, 0)[1]
    original = parse_message(attachment_bytes(raw, 1)[1])
    assert original.message_id == "offer-1@example.com"
    assert original.subject == "Our offer"


@check("calendar_invite.eml")
def _calendar(parsed: ParsedMessage, raw: bytes) -> None:
    ics = attachment_bytes(raw, 0)[1]
    assert parsed.calendar == [
        CalendarPart(
            method="REQUEST",
            uid="7kukuqrfedlm2f9t0vr42q2qv4@google.com",
            summary="Quarterly review, Q1 \u2013 pipeline & forecast with a very long title "
            "that is folded",
            start="20250312T100000",
            size=len(ics),
        )
    ]
    assert [a.content_type for a in parsed.attachments] == ["text/calendar", "application/ics"]
    assert parsed.attachments[1].filename == "invite.ics"
    assert parsed.text == "You have been invited to the following event: Quarterly review"
    assert parsed.html is not None
    assert "<b>Quarterly review</b>" in parsed.html


@check("charset_unknown.eml")
def _charset_unknown(parsed: ParsedMessage, raw: bytes) -> None:
    assert b'charset="x-unknown"' in raw
    assert parsed.text == "Viele Grüße aus Köln"
    assert parsed.defects == ["unknown_charset"]


@check("charset_wrong_declared.eml")
def _charset_wrong(parsed: ParsedMessage, raw: bytes) -> None:
    assert parsed.text == "Le café coûte 5 € \u2013 naïve question"
    assert "undecodable_bytes" in parsed.defects


@check("deeply_nested.eml")
def _deeply_nested(parsed: ParsedMessage, raw: bytes) -> None:
    assert parsed.text == "Deep down at the bottom."
    assert parsed.html == "<p>Deep down at the <b>bottom</b>.</p>"
    assert [a.filename for a in parsed.attachments] == ["level5.pdf"]
    assert attachment_bytes(raw, 0)[1] == b"%PDF-1.4 level 5"
    assert parsed.defects == []


@check("too_deep.eml")
def _too_deep(parsed: ParsedMessage, raw: bytes) -> None:
    assert raw.count(b"multipart/mixed") == 60
    assert parsed.subject == "Too deep"
    assert parsed.text == ""
    assert "too_deep" in parsed.defects


@check("encoded_words.eml")
def _encoded_words(parsed: ParsedMessage, raw: bytes) -> None:
    assert parsed.subject == "Hello Wörld and € plain “quoted”"
    assert parsed.from_ == Address(email="francois@example.com", name="François Müller")
    assert parsed.to == [
        Address(email="joerg@example.com", name="Jörg"),
        Address(email="plain@example.com", name="Plain, Name"),
    ]


@check("forwarded_rfc822.eml")
def _forwarded(parsed: ParsedMessage, raw: bytes) -> None:
    assert parsed.text == "See the forwarded message below."
    [attachment] = parsed.attachments
    assert (attachment.content_type, attachment.filename) == (
        "message/rfc822",
        "Original proposal.eml",
    )
    found, data = attachment_bytes(raw, 0)
    assert found == attachment
    inner = parse_message(data)
    assert inner.message_id == "original@example.net"
    assert inner.text == "The original text."
    assert [a.filename for a in inner.attachments] == ["inner.pdf"]
    assert attachment_bytes(data, 0)[1] == b"%PDF-1.4 inner"


@check("html_dangerous.eml")
def _html_dangerous(parsed: ParsedMessage, raw: bytes) -> None:
    assert parsed.html is not None
    html = parsed.html.lower()
    for needle in (
        *("<script", "alert(", "onerror", "onload", "onclick", "javascript:", "<iframe"),
        *("<object", "<embed", "<form", "<input", "<button", "<style", "style=", "<svg"),
        *("data:text", "<title", "evil.example.net", "inbox title", "iframe fallback"),
    ):
        assert needle not in html, needle
    assert '<img src="cid:banner@example.net">' in parsed.html
    assert '<a href="https://example.net/offer" rel="noopener noreferrer">' in parsed.html
    assert 'src="https://tracker.example.net/pixel.gif"' in parsed.html
    assert "Welcome to our offer" in parsed.text
    assert "Regards, the team" in parsed.text
    assert "alert" not in parsed.text
    assert "Inbox title" not in parsed.text
    assert "iframe fallback text" not in parsed.text


@check("html_only.eml")
def _html_only(parsed: ParsedMessage, raw: bytes) -> None:
    assert b"text/plain" not in raw
    assert parsed.text == (
        "Hello Maria,\n\nPrices & terms for café <machines>:\n\nModel A\nModel B\n\n"
        "Total € 1.200\n\nOn Mon, Maria wrote:\n\n> Can you send prices?"
    )
    assert parsed.snippet == (
        "Hello Maria, Prices & terms for café <machines>: Model A Model B Total € 1.200"
    )
    assert parsed.html is not None
    assert "&lt;machines&gt;" in parsed.html


@check("huge_attachment.eml")
def _huge(parsed: ParsedMessage, raw: bytes) -> None:
    assert len(raw) > 1_400_000
    [attachment] = parsed.attachments
    assert (attachment.filename, attachment.size) == ("data.bin", 1_100_000)
    found, data = attachment_bytes(raw, 0)
    assert found == attachment
    assert hashlib.sha256(data).hexdigest() == attachment.sha256
    started = time.perf_counter()
    parse_message(raw)
    assert time.perf_counter() - started < 1.0


@check("inline_image_cid.eml")
def _inline_image(parsed: ParsedMessage, raw: bytes) -> None:
    [image] = parsed.attachments
    assert (image.content_type, image.content_id, image.inline, image.filename) == (
        "image/png",
        "logo.png@01D9",
        True,
        "logo.png",
    )
    assert parsed.html is not None
    assert '<img src="cid:logo.png@01D9" alt="Logo">' in parsed.html
    assert attachment_bytes(raw, 0)[1].startswith(b"\x89PNG")


@check("invalid_addresses.eml")
def _invalid_addresses(parsed: ParsedMessage, raw: bytes) -> None:
    assert parsed.from_ == Address(email="broken@example.com")
    assert parsed.to == [Address(email="a@b.example")]
    assert [a.email for a in parsed.cc] == ["good.person@example.org"]
    assert parsed.bcc == []
    assert parsed.reply_to == []
    assert "header_defect" in parsed.defects
    assert parsed.text == "Addresses are broken."


@check("iso2022jp.eml")
def _iso2022jp(parsed: ParsedMessage, raw: bytes) -> None:
    assert b"charset=ISO-2022-JP" in raw
    assert parsed.subject == "会議の件"
    assert parsed.from_ == Address(email="yamada@example.jp", name="山田")
    assert parsed.text == "お世話になっております。\n来週の会議についてご連絡します。"
    assert parsed.defects == []


@check("koi8r.eml")
def _koi8r(parsed: ParsedMessage, raw: bytes) -> None:
    assert parsed.subject == "Счёт на оплату"
    assert parsed.thread_subject == "счёт на оплату"
    assert parsed.text == "Здравствуйте! Высылаю счёт."
    assert parsed.defects == []


@check("malformed_date.eml")
def _malformed_date(parsed: ParsedMessage, raw: bytes) -> None:
    assert parsed.date is None
    assert header_summary(raw).date is None
    assert parsed.defects == ["malformed_date"]


@check("mbox_from_idna.eml")
def _mbox_idna(parsed: ParsedMessage, raw: bytes) -> None:
    assert raw.startswith(b"From MAILER@example.com ")
    assert parsed.from_ == Address(email="uenal@xn--bcher-kva.example", name="Ünal")
    assert [a.email for a in parsed.to] == ["info@xn--mnchen-3ya.example", "other@example.org"]
    assert parsed.date == SENT


@check("missing_message_id.eml")
def _missing_message_id(parsed: ParsedMessage, raw: bytes) -> None:
    assert parsed.message_id is None
    assert header_summary(raw).message_id is None
    assert parsed.defects == ["missing_message_id"]


@check("no_date.eml")
def _no_date(parsed: ParsedMessage, raw: bytes) -> None:
    assert parsed.date is None
    assert parsed.defects == ["missing_date"]


@check("no_headers.eml")
def _no_headers(parsed: ParsedMessage, raw: bytes) -> None:
    assert parsed.text == "just some text that is not an email header\nand a second line"
    assert {"no_headers", "missing_message_id"} <= set(parsed.defects)
    assert parsed.subject == ""


@check("raw_latin1_headers.eml")
def _raw_latin1(parsed: ParsedMessage, raw: bytes) -> None:
    assert "Núñez".encode("latin-1") in raw
    assert parsed.subject == "Cotización año 2025"
    assert parsed.from_ == Address(email="jose@example.es", name="José Núñez")
    assert parsed.text == "Buenos días, señor"
    assert parsed.defects == ["undecodable_bytes"]


@check("raw_utf8_headers.eml")
def _raw_utf8(parsed: ParsedMessage, raw: bytes) -> None:
    assert "Lindström".encode() in raw
    assert parsed.subject == "Prisförslag för 2025 ✓"
    assert parsed.from_ == Address(email="asa@example.se", name="Åsa Lindström")
    assert parsed.to == [Address(email="zoe@xn--bcher-kva.example", name="Zoë")]
    assert parsed.defects == []


@check("reply_threading.eml")
def _reply_threading(parsed: ParsedMessage, raw: bytes) -> None:
    assert parsed.message_id == "reply-3@example.com"
    assert parsed.in_reply_to == ["reply-2@example.com"]
    assert parsed.references == ["root@example.com", "reply-1@example.com", "reply-2@example.com"]
    assert parsed.thread_subject == "quote for project x"
    assert parsed.snippet == "Sounds good, let's go ahead."
    assert parsed.to == [Address(email="sales@example.com", name="Sales Team")]
    assert parsed.date == SENT


@check("rfc2231_filename.eml")
def _rfc2231(parsed: ParsedMessage, raw: bytes) -> None:
    assert [a.filename for a in parsed.attachments] == [
        "Angebot für Müller GmbH €.pdf",
        "notes.txt",
    ]
    assert parsed.attachments[1].content_type == "text/plain"
    assert parsed.text == "Two files attached."
    assert attachment_bytes(raw, 1)[1] == b"plain text attachment"


@check("split_body.eml")
def _split_body(parsed: ParsedMessage, raw: bytes) -> None:
    assert parsed.text == "Before the picture.\n\nAfter the picture."
    [image] = parsed.attachments
    assert (image.filename, image.inline, image.content_id) == ("photo.png", False, None)


@check("truncated_multipart.eml")
def _truncated(parsed: ParsedMessage, raw: bytes) -> None:
    assert not raw.rstrip().endswith(b"--cut--")
    assert "truncated" in parsed.defects
    assert parsed.text == "The text part is complete."
    assert [a.filename for a in parsed.attachments] == ["archive.zip"]


@check("windows1252_qp.eml")
def _windows1252(parsed: ParsedMessage, raw: bytes) -> None:
    assert parsed.text == "“Smart quotes” cost 20 € — really…\nDanke schön"
    assert parsed.defects == []


@check("winmail_tnef.eml")
def _winmail(parsed: ParsedMessage, raw: bytes) -> None:
    assert "tnef" in parsed.defects
    [tnef] = parsed.attachments
    assert (tnef.content_type, tnef.filename) == ("application/ms-tnef", "winmail.dat")
    assert attachment_bytes(raw, 0)[1].startswith(b"\x78\x9f\x3e\x22")
    assert parsed.text == "Please see the attached document."
