"""The MIME parser, one feature at a time, on messages built with `EmailMessage`."""

from __future__ import annotations

from datetime import UTC, datetime
from email.message import EmailMessage

import pytest

from crmsync.mail.html import html_to_text, sanitise_html, snippet
from crmsync.mail.parse import (
    UnparseableMessage,
    attachment_bytes,
    header_summary,
    normalise_address,
    parse_message,
    thread_subject,
)
from crmsync.models.parsed import Address


def message(body: str = "Hello.", **headers: str) -> EmailMessage:
    built = EmailMessage()
    built["Message-ID"] = "<m1@example.com>"
    built["Date"] = "Tue, 11 Mar 2025 09:15:00 +0100"
    for name, value in headers.items():
        built[name.replace("_", "-")] = value
    built.set_content(body)
    return built


def header_block(*lines: str, body: bytes = b"body\r\n") -> bytes:
    return "\r\n".join(lines).encode() + b"\r\n\r\n" + body


# --- threading headers -------------------------------------------------------------------


def test_threading_headers_are_ids_without_brackets_in_order_and_deduplicated() -> None:
    raw = header_block(
        "Message-ID:   < abc@example.com >  (a comment)",
        "In-Reply-To: <p2@example.com> (Bob's message of Monday)",
        "References: <root@example.com>\r\n\t<p1@example.com> <root@example.com>",
        "References: <p2@example.com> <p1@example.com>",
    )
    parsed = parse_message(raw)
    assert parsed.message_id == "abc@example.com"
    assert parsed.in_reply_to == ["p2@example.com"]
    assert parsed.references == ["root@example.com", "p1@example.com", "p2@example.com"]


@pytest.mark.parametrize(
    ("field", "expected"),
    [
        ("Message-ID: bare-id@example.com", "bare-id@example.com"),
        ("Message-ID: <>", None),
        ("Message-ID:    ", None),
        ("Message-ID: <unclosed@example.com", "unclosed@example.com"),
        ("Message-ID: <first@x> <second@x>", "first@x"),
        ("X-Other: <not-an-id@x>", None),
    ],
)
def test_message_id_normalisation(field: str, expected: str | None) -> None:
    raw = header_block("Subject: s", field)
    parsed = parse_message(raw)
    assert parsed.message_id == expected
    assert header_summary(raw).message_id == expected
    assert ("missing_message_id" in parsed.defects) == (expected is None)


# --- subjects ----------------------------------------------------------------------------

REPLY_PREFIXES = [
    ("Re: Hello", "hello"),
    ("RE: re: Fwd: FW: Fw: Hello", "hello"),
    ("AW: WG: Angebot", "angebot"),
    ("SV: VS: Tarjous", "tarjous"),
    ("Antw: Doorst: Offerte", "offerte"),
    ("RIF: R: Offerta", "offerta"),
    ("TR: Réf: Devis", "devis"),
    ("Enc: Proposta", "proposta"),
    ("Odp: Oferta", "oferta"),
    ("Re[2]: Hi", "hi"),
    ("Re(3): Hi", "hi"),
    ("Re [4] : Hi", "hi"),
    ("[crm-list] Re: Hi", "hi"),
    ("Re: [crm-list] Fwd: [ext]  Hi", "hi"),
    ("  Hello \t  World  ", "hello world"),
    ("Reply needed", "reply needed"),
    ("Return: policy", "return: policy"),
    ("Regarding: Re: x", "regarding: re: x"),
    ("Re:", ""),
    ("Fwd: Re: AW: Straße", "strasse"),
    ("回复\uff1a会议", "会议"),
    ("[unclosed Re: x", "[unclosed re: x"),
]


@pytest.mark.parametrize(("subject", "expected"), REPLY_PREFIXES)
def test_thread_subject_strips_reply_prefixes(subject: str, expected: str) -> None:
    assert thread_subject(subject) == expected


def test_thread_subject_is_linear_in_the_number_of_prefixes() -> None:
    assert thread_subject("Re: " * 20_000 + "x") == "x"


def test_encoded_word_subject_in_unknown_charset_is_readable() -> None:
    raw = header_block(
        "Subject: =?x-bogus?q?caf=E9?= =?utf-8?q?_na=C3=AFve?= =?utf-8?b?w6k=?=",
        "Message-ID: <s@x>",
    )
    parsed = parse_message(raw)
    assert parsed.subject == "café naïveé"
    assert "unknown_charset" in parsed.defects


def test_missing_subject_is_empty() -> None:
    parsed = parse_message(header_block("Message-ID: <s@x>"))
    assert (parsed.subject, parsed.thread_subject) == ("", "")


# --- addresses ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("User@Example.COM", "user@example.com"),
        ("<a@b.example>", "a@b.example"),
        ("  x@y.example  ", "x@y.example"),
        ("Jürgen@Bücher.DE", "jürgen@xn--bcher-kva.de"),
        ("info@MÜNCHEN.example.", "info@xn--mnchen-3ya.example"),
        ('"John Doe"@example.com', '"john doe"@example.com'),
        ("user@[192.0.2.1]", "user@[192.0.2.1]"),
        ("not an address", None),
        ("@example.com", None),
        ("user@", None),
        ("a b@c.example", None),
        ("user@exa mple.com", None),
        ("user@bad..example", None),
        ("", None),
    ],
)
def test_normalise_address(value: str, expected: str | None) -> None:
    assert normalise_address(value) == expected


def test_address_headers_are_normalised_and_names_decoded() -> None:
    raw = header_block(
        "From: =?utf-8?q?Ren=C3=A9e?= <Renee@Example.COM>",
        "Sender: Assistant <ASSIST@example.com>",
        "To: Zoë <ZOE@Bücher.example>, other@EXAMPLE.org",
        "Cc: Team: one@example.com, two@example.com;",
        "Bcc: hidden@example.com",
        "Reply-To: Replies <replies@example.com>",
        "Message-ID: <a@x>",
    )
    parsed = parse_message(raw)
    assert parsed.from_ == Address(email="renee@example.com", name="Renée")
    assert parsed.sender == Address(email="assist@example.com", name="Assistant")
    assert parsed.to == [
        Address(email="zoe@xn--bcher-kva.example", name="Zoë"),
        Address(email="other@example.org"),
    ]
    assert [a.email for a in parsed.cc] == ["one@example.com", "two@example.com"]
    assert [a.email for a in parsed.bcc] == ["hidden@example.com"]
    assert parsed.reply_to == [Address(email="replies@example.com", name="Replies")]
    assert parsed.defects == ["missing_date"]
    assert parsed.model_dump(by_alias=True)["from"] == {
        "email": "renee@example.com",
        "name": "Renée",
    }


def test_unparseable_address_list_falls_back_to_the_addresses_in_it() -> None:
    parsed = parse_message(header_block('To: "unclosed <a@b.example', "Message-ID: <a@x>"))
    assert parsed.to == [Address(email="a@b.example")]
    assert "header_defect" in parsed.defects


# --- dates -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("Tue, 11 Mar 2025 09:15:00 +0100", datetime(2025, 3, 11, 8, 15, tzinfo=UTC)),
        ("Tue, 11 Mar 2025 09:15:00 -0000", datetime(2025, 3, 11, 9, 15, tzinfo=UTC)),
        ("11 Mar 2025 09:15:00", datetime(2025, 3, 11, 9, 15, tzinfo=UTC)),
        ("Tue, 11 Mar 2025 09:15:00 PST", datetime(2025, 3, 11, 17, 15, tzinfo=UTC)),
    ],
)
def test_dates_are_aware_utc(value: str, expected: datetime) -> None:
    raw = header_block(f"Date: {value}", "Message-ID: <d@x>")
    parsed = parse_message(raw)
    assert parsed.date == expected
    assert parsed.date is not None
    assert parsed.date.utcoffset() is not None
    assert header_summary(raw).date == expected


@pytest.mark.parametrize(
    "value", ["yesterday", "Tue, 11 Mar 99999 09:15:00 +0000", "Tue, 32 Foo 2025 25:00 +0000"]
)
def test_malformed_dates_are_none_with_a_defect(value: str) -> None:
    parsed = parse_message(header_block(f"Date: {value}", "Message-ID: <d@x>"))
    assert parsed.date is None
    assert parsed.defects == ["malformed_date"]


# --- bodies ------------------------------------------------------------------------------


def test_alternative_prefers_the_plain_text_and_keeps_sanitised_html() -> None:
    built = message("Plain version.")
    built.add_alternative("<p onclick='x()'>HTML <b>version</b></p>", subtype="html")
    parsed = parse_message(built.as_bytes())
    assert parsed.text == "Plain version."
    assert parsed.html == "<p>HTML <b>version</b></p>"


def test_only_the_first_plain_and_html_of_an_alternative_count() -> None:
    raw = header_block(
        "Message-ID: <alt@x>",
        'Content-Type: multipart/alternative; boundary="a"',
        body=(
            b"--a\r\nContent-Type: text/plain\r\n\r\nFirst plain.\r\n"
            b"--a\r\nContent-Type: text/enriched\r\n\r\n<bold>Enriched</bold>\r\n"
            b"--a\r\nContent-Type: text/watch-html\r\n\r\n<b>Watch</b>\r\n"
            b"--a\r\nContent-Type: text/plain\r\n\r\nSecond plain.\r\n"
            b"--a\r\nContent-Type: text/html\r\n\r\n<p>First html</p>\r\n"
            b"--a\r\nContent-Type: text/html\r\n\r\n<p>Second html</p>\r\n"
            b"--a--\r\n"
        ),
    )
    parsed = parse_message(raw)
    assert (parsed.text, parsed.html) == ("First plain.", "<p>First html</p>")
    assert parsed.attachments == []


def test_html_only_message_gets_text_from_the_html() -> None:
    built = message()
    built.set_content("<p>Hi&nbsp;there &amp; welcome</p><p>Line<br>break</p>", subtype="html")
    parsed = parse_message(built.as_bytes())
    assert parsed.text == "Hi there & welcome\n\nLine\nbreak"
    assert parsed.snippet == "Hi there & welcome Line break"


def test_an_empty_plain_alternative_gives_way_to_the_html() -> None:
    built = message("   \n")
    built.add_alternative("<p>Only the HTML has words</p>", subtype="html")
    assert parse_message(built.as_bytes()).text == "Only the HTML has words"


def test_text_attachments_are_not_body() -> None:
    built = message("The body.")
    built.add_attachment("notes in a file", filename="notes.txt")
    built.add_attachment("<p>page</p>", subtype="html", filename="page.html")
    parsed = parse_message(built.as_bytes())
    assert parsed.text == "The body."
    assert parsed.html is None
    assert [a.filename for a in parsed.attachments] == ["notes.txt", "page.html"]


@pytest.mark.parametrize(
    ("charset", "body", "defect"),
    [
        ("koi8-r", "Привет".encode("koi8-r"), None),
        ("windows-1252", "“quoted” €".encode("cp1252"), None),
        ("iso-8859-15", "€uro".encode("iso-8859-15"), None),
        ("iso-8859-1", "déjà vu".encode(), None),
        ("us-ascii", "naïve".encode("cp1252"), "undecodable_bytes"),
        ("utf-8", "naïve".encode("cp1252"), "undecodable_bytes"),
        ("x-unknown", "naïve".encode(), "unknown_charset"),
        ("base64", b"plain", "unknown_charset"),
        ("ks_c_5601-1987", "안녕".encode("cp949"), None),
    ],
)
def test_body_charsets(charset: str, body: bytes, defect: str | None) -> None:
    raw = header_block(
        "Message-ID: <c@x>",
        "Date: Tue, 11 Mar 2025 09:15:00 +0100",
        f"Content-Type: text/plain; charset={charset}",
        "Content-Transfer-Encoding: 8bit",
        body=body,
    )
    parsed = parse_message(raw)
    expected = {
        "koi8-r": "Привет",
        "windows-1252": "“quoted” €",
        "iso-8859-15": "€uro",
        "iso-8859-1": "déjà vu",
        "base64": "plain",
        "ks_c_5601-1987": "안녕",
    }.get(charset, "naïve")
    assert parsed.text == expected
    assert parsed.defects == ([defect] if defect else [])


def test_latin1_header_bytes_are_readable() -> None:
    raw = b"Subject: Cotizaci\xf3n\r\nFrom: Jos\xe9 <jose@example.es>\r\nMessage-ID: <l@x>\r\n\r\nx"
    parsed = parse_message(raw)
    assert parsed.subject == "Cotización"
    assert parsed.from_ == Address(email="jose@example.es", name="José")
    assert "undecodable_bytes" in parsed.defects


# --- html --------------------------------------------------------------------------------


def test_html_to_text() -> None:
    html = (
        "<html><head><title>T</title><style>p{color:red}</style></head><body>"
        "<p>Hello&nbsp;<b>World</b> &amp; friends &lt;3</p><div>line   one\ncontinues</div>"
        "Third<br>Fourth<table><tr><td>a</td><td>b</td></tr></table>"
        "<blockquote><p>quoted</p><blockquote>deeper</blockquote></blockquote>"
        "<script>alert(1)</script>end</body></html>"
    )
    assert html_to_text(html) == (
        "Hello World & friends <3\n\nline one continues\nThird\nFourth\n\na b\n\n"
        "> quoted\n\n> > deeper\n\nend"
    )


DANGEROUS = [
    ("<script>alert(1)</script><p>x</p>", "<script"),
    ('<img src="https://x.example/a.png" onerror="alert(1)">', "onerror"),
    ("<p onclick=\"alert('x')\">x</p>", "onclick"),
    ('<body onload="x()"><p>x</p></body>', "onload"),
    ("<a href=\"javascript:alert('x')\">x</a>", "javascript:"),
    ('<a href="JaVaScRiPt&#58;alert(1)">x</a>', "alert"),
    ('<a href="vbscript:msgbox(1)">x</a>', "vbscript"),
    ('<a href="data:text/html;base64,PHNjcmlwdD4=">x</a>', "data:"),
    ('<img src="data:image/svg+xml;base64,PHN2Zz4=">', "data:"),
    ('<iframe src="https://evil.example"></iframe>', "iframe"),
    ('<object data="x.swf">fallback</object>', "object"),
    ('<embed src="x.swf">', "embed"),
    ('<form action="https://evil.example"><input name="pw"></form>', "form"),
    ("<style>body { background: red }</style><p>x</p>", "background"),
    ('<p style="position: fixed">x</p>', "style"),
    ("<svg><script>alert(1)</script></svg>", "alert"),
    ('<meta http-equiv="refresh" content="0;url=https://evil.example">', "refresh"),
    ('<link rel="stylesheet" href="https://evil.example/x.css">', "stylesheet"),
    ('<base href="https://evil.example/">', "base"),
    ('<img src="https://x.example/a.png" srcset="javascript:alert(1)">', "srcset"),
]


@pytest.mark.parametrize(("html", "forbidden"), DANGEROUS)
def test_sanitiser_removes_dangerous_constructs(html: str, forbidden: str) -> None:
    assert forbidden not in sanitise_html(html).lower()


def test_sanitiser_keeps_what_mail_needs() -> None:
    html = (
        '<table border="1"><tr><td colspan="2">cell</td></tr></table>'
        '<img src="cid:logo@x" alt="logo"><img src="data:image/png;base64,iVBORw0=">'
        '<a href="https://example.com/a">web</a><a href="mailto:ann@example.com">mail</a>'
    )
    assert sanitise_html(html) == (
        '<table border="1"><tbody><tr><td colspan="2">cell</td></tr></tbody></table>'
        '<img src="cid:logo@x" alt="logo"><img src="data:image/png;base64,iVBORw0=">'
        '<a href="https://example.com/a" rel="noopener noreferrer">web</a>'
        '<a href="mailto:ann@example.com" rel="noopener noreferrer">mail</a>'
    )


def test_inline_images_keep_their_cid_in_html_and_are_inline_attachments() -> None:
    built = message("See the logo.")
    built.add_alternative('<p><img src="cid:logo@example.com"> See the logo.</p>', subtype="html")
    html_part = list(built.iter_parts())[1]
    assert isinstance(html_part, EmailMessage)
    html_part.add_related(b"\x89PNG fake", "image", "png", cid="<logo@example.com>")
    parsed = parse_message(built.as_bytes())
    assert parsed.html == '<p><img src="cid:logo@example.com"> See the logo.</p>'
    [image] = parsed.attachments
    assert (image.content_id, image.inline, image.content_type) == (
        "logo@example.com",
        True,
        "image/png",
    )


# --- snippet -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("  Hello\n\n  world\t again  ", "Hello world again"),
        ("Thanks!\n\nOn Mon, Ann wrote:\n> old\n> older", "Thanks!"),
        ("Top\n> quoted\nBottom", "Top Bottom"),
        ("> only\n> quotes", "> only > quotes"),
        ("x" * 300, "x" * 200),
        ("", ""),
    ],
)
def test_snippet(text: str, expected: str) -> None:
    assert snippet(text) == expected


def test_snippet_of_a_parsed_reply_skips_the_quote() -> None:
    built = message("Yes, agreed.\n\nOn Mon, 10 Mar 2025, Bob wrote:\n> Shall we?\n")
    assert parse_message(built.as_bytes()).snippet == "Yes, agreed."


def test_snippet_is_at_most_200_characters_of_collapsed_text() -> None:
    words = " ".join(f"word{i}" for i in range(200))
    parsed = parse_message(message(words.replace(" ", "\n  ")).as_bytes())
    assert parsed.snippet == words[:200]


# --- attachments -------------------------------------------------------------------------


def test_attachment_bytes_round_trip() -> None:
    built = message("Files.")
    payloads = [bytes(range(256)) * 40, b"%PDF-1.4", b""]
    built.add_attachment(payloads[0], "application", "octet-stream", filename="a.bin")
    built.add_attachment(payloads[1], "application", "pdf", filename="dir/../b.pdf")
    built.add_attachment(payloads[2], "application", "x-empty", filename="c")
    raw = built.as_bytes()
    parsed = parse_message(raw)
    assert [a.filename for a in parsed.attachments] == ["a.bin", "b.pdf", "c"]
    for attachment, payload in zip(parsed.attachments, payloads, strict=True):
        assert attachment_bytes(raw, attachment.index) == (attachment, payload)
        assert attachment.size == len(payload)
    for missing in (3, -1):
        with pytest.raises(LookupError):
            attachment_bytes(raw, missing)


def test_rfc2231_and_encoded_word_filenames() -> None:
    raw = header_block(
        "Message-ID: <f@x>",
        'Content-Type: multipart/mixed; boundary="b"',
        body=(
            b"--b\r\nContent-Type: application/pdf\r\n"
            b"Content-Disposition: attachment; filename*=utf-8''%C3%BCber%20uns.pdf\r\n\r\nx\r\n"
            b"--b\r\nContent-Type: application/pdf; name==?utf-8?B?w6kucGRm?=\r\n"
            b"Content-Disposition: attachment\r\n\r\ny\r\n"
            b"--b\r\nContent-Type: application/pdf\r\n"
            b'Content-Disposition: attachment; filename="C:\\\\tmp\\\\z.pdf"\r\n\r\nz\r\n'
            b"--b--\r\n"
        ),
    )
    parsed = parse_message(raw)
    assert [a.filename for a in parsed.attachments] == ["über uns.pdf", "é.pdf", "z.pdf"]


def test_calendar_part_fields_and_method_from_content_type() -> None:
    ics = (
        "BEGIN:VCALENDAR\r\nBEGIN:VEVENT\r\nUID:evt-1\r\nSUMMARY:Call\\nwith Ann\\; ok\r\n"
        "DTSTART;VALUE=DATE:20250401\r\nEND:VEVENT\r\nBEGIN:VEVENT\r\nUID:evt-2\r\n"
        "END:VEVENT\r\nEND:VCALENDAR\r\n"
    )
    built = message("Cancelled.")
    built.add_attachment(ics, subtype="calendar", params={"method": "cancel"})
    parsed = parse_message(built.as_bytes())
    [calendar] = parsed.calendar
    assert (calendar.method, calendar.uid, calendar.summary, calendar.start) == (
        "CANCEL",
        "evt-1",
        "Call\nwith Ann; ok",
        "20250401",
    )
    assert [a.content_type for a in parsed.attachments] == ["text/calendar"]


def test_calendar_method_comes_from_the_calendar_first() -> None:
    ics = "BEGIN:VCALENDAR\r\nMETHOD:reply\r\nBEGIN:VEVENT\r\nUID:e\r\nEND:VEVENT\r\nEND:VCALENDAR"
    built = message("Accepted.")
    built.add_alternative(ics, subtype="calendar", params={"method": "REQUEST"})
    [calendar] = parse_message(built.as_bytes()).calendar
    assert (calendar.method, calendar.uid) == ("REPLY", "e")


# --- totality ----------------------------------------------------------------------------


@pytest.mark.parametrize("raw", [b"", b"   \r\n\r\n", b"\n"])
def test_nothing_to_parse_is_unparseable(raw: bytes) -> None:
    with pytest.raises(UnparseableMessage):
        parse_message(raw)
    with pytest.raises(UnparseableMessage):
        header_summary(raw)


def test_unparseable_message_is_a_value_error() -> None:
    assert issubclass(UnparseableMessage, ValueError)


@pytest.mark.parametrize(
    "raw",
    [
        b"\x00\xff\xfe garbage \x80",
        b"Content-Type: multipart/mixed\r\n\r\nno boundary at all",
        b'Content-Type: multipart/mixed; boundary="x"\r\n\r\n--x\r\n--x--',
        b"Content-Type: text/plain; charset=\x00\r\n\r\nbody",
        b"Content-Transfer-Encoding: base64\r\n\r\n!!!not base64!!!",
        b"Content-Type: message/rfc822\r\n\r\n",
        b"Date: \xff\xfe\r\nTo: \xc3(\r\nSubject: =?utf-8?b?###?=\r\n\r\n",
        b":\r\n: :\r\n\r\n",
    ],
)
def test_garbage_parses_with_defects(raw: bytes) -> None:
    parsed = parse_message(raw)
    assert parsed.defects
    assert parse_message(raw) == parsed
    assert header_summary(raw).message_id == parsed.message_id
    parsed.model_dump_json()


def test_header_summary_agrees_with_the_full_parse() -> None:
    raw = message(Subject="=?utf-8?q?Gr=C3=BC=C3=9Fe?= aus Köln").as_bytes()
    summary = header_summary(raw)
    parsed = parse_message(raw)
    assert summary.model_dump() == {
        "message_id": parsed.message_id,
        "date": parsed.date,
        "subject": parsed.subject,
    }
    assert summary.subject == "Grüße aus Köln"
