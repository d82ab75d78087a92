# ruff: noqa: RUF001  (non-Latin names are what these tests check)
"""Properties of the demo mailbox generator and the calendar seed data."""

from __future__ import annotations

import email
import email.policy
import re
from collections import Counter
from datetime import UTC, date, datetime, timedelta
from email.message import EmailMessage

import pytest
from icalendar import Calendar

from crmsync_local.demo.corpus import DEFAULT_NOW, DemoMailbox, DemoMessage, build_mailbox
from crmsync_local.demo.seed import calendar_events, seed_mailbox

OWNER = "alex@demo.crmsync.test"
RESERVED = (".example", ".test", "example.com", "example.org", "example.net")


def parse(raw: bytes) -> EmailMessage:
    msg = email.message_from_bytes(raw, policy=email.policy.default)
    assert isinstance(msg, EmailMessage)
    return msg


def addr(msg: EmailMessage, name: str = "From") -> str:
    return str(msg[name].addresses[0].addr_spec).lower()


def raw_header(raw: bytes, name: str) -> str:
    """The header as it is on the wire, unfolded but not decoded."""
    head = raw.split(b"\r\n\r\n", 1)[0].decode("ascii")
    match = re.search(rf"^{name}:(.*(?:\r\n[ \t].*)*)", head, re.MULTILINE | re.IGNORECASE)
    assert match, name
    return re.sub(r"\r\n[ \t]", " ", match.group(1)).strip()


@pytest.fixture(scope="module")
def mailbox() -> DemoMailbox:
    return build_mailbox()


@pytest.fixture(scope="module")
def parsed(mailbox: DemoMailbox) -> list[tuple[DemoMessage, EmailMessage]]:
    return [(m, parse(m.raw)) for m in mailbox.messages]


@pytest.fixture(scope="module")
def contact_emails(mailbox: DemoMailbox) -> set[str]:
    return {e.lower() for p in mailbox.people for e in p.emails}


def test_default_size(mailbox: DemoMailbox) -> None:
    assert 300 <= len(mailbox.messages) <= 400
    assert len(mailbox.thread_keys) == 120
    assert mailbox.folders == ("INBOX", "Sent")
    assert len({m.message_id for m in mailbox.messages}) == len(mailbox.messages)


def test_messages_parse_cleanly(parsed: list[tuple[DemoMessage, EmailMessage]]) -> None:
    for m, msg in parsed:
        assert m.raw.count(b"\n") == m.raw.count(b"\r\n"), m.message_id  # CRLF only
        for name in ("From", "To", "Subject", "Date", "Message-ID", "MIME-Version"):
            assert msg[name] is not None, (m.message_id, name)
        assert msg["Message-ID"] == m.message_id
        assert msg["Date"].datetime == m.date
        assert m.date.tzinfo is not None
        assert m.date.utcoffset() == timedelta(0)
        for part in msg.walk():
            assert not part.defects, (m.message_id, part.defects)
            if part.get_content_maintype() == "text":
                assert isinstance(part.get_content(), str)


def test_reply_chains(parsed: list[tuple[DemoMessage, EmailMessage]]) -> None:
    by_id = {m.message_id: m for m, _ in parsed}
    replies = 0
    for m, msg in parsed:
        parent_id = msg["In-Reply-To"]
        if parent_id is None:
            assert msg["References"] is None
            continue
        replies += 1
        parent = by_id[str(parent_id)]
        references = str(msg["References"]).split()
        assert references[-1] == parent_id
        assert all(ref in by_id for ref in references)
        assert m.date > parent.date
        assert m.thread_key == parent.thread_key
    assert replies >= 150


def test_subject_prefixes_forwards_cc_and_alt_addresses(
    mailbox: DemoMailbox, parsed: list[tuple[DemoMessage, EmailMessage]]
) -> None:
    subjects = [str(msg["Subject"]) for _, msg in parsed]
    for prefix in ("Re: ", "AW: ", "Fwd: "):
        assert any(s.startswith(prefix) for s in subjects), prefix
    forwards = [
        msg
        for _, msg in parsed
        if re.match(r"(Fwd|Fw|WG|TR|PD) ?: ", str(msg["Subject"])) and msg["In-Reply-To"] is None
    ]
    assert forwards
    assert any(p.get_content_type() == "message/rfc822" for f in forwards for p in f.walk())
    assert any(re.search(r"^From: .+$", f.get_body(("plain",)).get_content(), re.M)
               for f in forwards)  # fmt: skip
    customers = {e.lower() for p in mailbox.people for e in p.emails}
    assert any(
        msg["Cc"] and {a.addr_spec.lower() for a in msg["Cc"].addresses} & customers
        for _, msg in parsed
    )
    second = {p.emails[1].lower() for p in mailbox.people if len(p.emails) > 1}
    assert len(second) >= 3
    assert any(addr(msg) in second for _, msg in parsed)


def test_mime_shapes(parsed: list[tuple[DemoMessage, EmailMessage]]) -> None:
    types = Counter(p.get_content_type() for _, msg in parsed for p in msg.walk())
    for content_type in ("multipart/alternative", "multipart/mixed", "multipart/related"):
        assert types[content_type] >= 3, content_type

    htmls = [p.get_content() for _, msg in parsed for p in msg.walk()
             if p.get_content_type() == "text/html"]  # fmt: skip
    assert any("<script" in h for h in htmls)
    assert any("<table" in h and "<style>" in h for h in htmls)
    assert any(re.search(r'<img src="https://[^"]+"', h) for h in htmls)

    parts = [p for _, msg in parsed for p in msg.walk()]
    pdfs = [p.get_content() for p in parts if p.get_content_type() == "application/pdf"]
    assert pdfs
    assert all(b.startswith(b"%PDF-") and b.rstrip().endswith(b"%%EOF") for b in pdfs)
    csvs = [p for p in parts if p.get_content_type() == "text/csv" and p.is_attachment()]
    assert csvs
    assert all("," in p.get_content().splitlines()[0] for p in csvs)


def test_inline_cid_images(parsed: list[tuple[DemoMessage, EmailMessage]]) -> None:
    found = 0
    for _, msg in parsed:
        for related in msg.walk():
            if related.get_content_type() != "multipart/related":
                continue
            html = next(p for p in related.iter_parts() if p.get_content_type() == "text/html")
            image = next(p for p in related.iter_parts() if p.get_content_type() == "image/png")
            cid = str(image["Content-ID"]).strip("<>")
            assert f'src="cid:{cid}"' in html.get_content()
            png = image.get_content()
            assert png.startswith(b"\x89PNG\r\n\x1a\n")
            assert png[12:16] == b"IHDR"
            assert png.endswith(b"IEND\xaeB`\x82")
            found += 1
    assert found >= 3


def test_calendar_invites(parsed: list[tuple[DemoMessage, EmailMessage]]) -> None:
    invites = [
        p for _, msg in parsed for p in msg.walk() if p.get_content_type() == "text/calendar"
    ]
    assert invites
    for part in invites:
        assert part.get_param("method") == "REQUEST"
        cal = Calendar.from_ical(part.get_content())
        assert cal["METHOD"] == "REQUEST"
        (event,) = cal.walk("VEVENT")
        assert event["ORGANIZER"]
        assert event.get("ATTENDEE")


def test_charsets(parsed: list[tuple[DemoMessage, EmailMessage]]) -> None:
    charsets = Counter(
        p.get_content_charset() for _, msg in parsed for p in msg.walk()
        if p.get_content_maintype() == "text" and p.get_content_charset()
    )  # fmt: skip
    assert len(charsets) >= 5
    for name in ("utf-8", "iso-8859-1", "iso-8859-2", "koi8-r", "shift_jis"):
        assert charsets[name] > 0, name
    texts = {
        p.get_content_charset(): p.get_content() for _, msg in parsed for p in msg.walk()
        if p.get_content_type() == "text/plain"
    }  # fmt: skip
    assert re.search(r"[äöüßéèàç]", texts["iso-8859-1"])
    assert re.search(r"[łąęśżź]", texts["iso-8859-2"])
    assert re.search(r"[а-я]", texts["koi8-r"])
    assert re.search(r"[\u3040-\u30ff\u4e00-\u9fff]", texts["shift_jis"])


def test_encoded_word_headers(
    mailbox: DemoMailbox, parsed: list[tuple[DemoMessage, EmailMessage]]
) -> None:
    names = {p.name: p.locale for p in mailbox.people}
    decoded_locales = set()
    encodings = set()
    for m, msg in parsed:
        wire = raw_header(m.raw, "From")
        if "=?" not in wire:
            continue
        encodings |= {e.lower() for e in re.findall(r"=\?([^?]+)\?", wire)}
        display = msg["From"].addresses[0].display_name
        assert not display.isascii()
        assert display in names, display
        decoded_locales.add(names[display])
    assert {"de", "fr", "pl", "ja", "ru"} <= decoded_locales
    assert {"utf-8", "iso-8859-1", "iso-8859-2", "koi8-r", "iso-2022-jp"} <= encodings
    emoji = [
        str(msg["Subject"])
        for _, msg in parsed
        if re.search(r"[\U0001F300-\U0001FAFF]", str(msg["Subject"]))
    ]
    assert emoji
    subject_encodings = set()
    for m, msg in parsed:
        wire = raw_header(m.raw, "Subject")
        if "=?" in wire:
            assert not str(msg["Subject"]).isascii()
            subject_encodings |= {e.lower() for e in re.findall(r"=\?([^?]+)\?", wire)}
    assert {"utf-8", "iso-8859-2", "iso-2022-jp"} <= subject_encodings


def test_deterministic_and_seeded(mailbox: DemoMailbox) -> None:
    again = build_mailbox()
    assert [m.raw for m in again.messages] == [m.raw for m in mailbox.messages]
    assert [m.flags for m in again.messages] == [m.flags for m in mailbox.messages]
    other = build_mailbox(seed=8)
    assert [m.raw for m in other.messages] != [m.raw for m in mailbox.messages]


def test_dates_anchor_on_now(mailbox: DemoMailbox) -> None:
    dates = [m.date for m in mailbox.messages]
    assert mailbox.now == DEFAULT_NOW
    assert max(dates) <= DEFAULT_NOW
    assert min(dates) >= DEFAULT_NOW - timedelta(days=430)
    assert max(dates) - min(dates) > timedelta(days=300)
    now = datetime(2031, 3, 15, 12, 0, tzinfo=UTC)
    shifted = build_mailbox(now=now, threads=30)
    assert all(now - timedelta(days=430) <= m.date <= now for m in shifted.messages)
    assert len(shifted.thread_keys) == 30


def test_newsletters_are_not_contacts(
    parsed: list[tuple[DemoMessage, EmailMessage]], contact_emails: set[str]
) -> None:
    bulk = [(m, msg) for m, msg in parsed if addr(msg) not in contact_emails | {OWNER}]
    assert len(bulk) >= 10
    assert any(addr(msg).startswith(("noreply@", "no-reply@")) for _, msg in bulk)
    for m, msg in bulk:
        assert m.folder == "INBOX"
        assert msg["List-Unsubscribe"] is not None
        assert msg["In-Reply-To"] is None
    rest = [msg for m, msg in parsed if m.folder == "INBOX" and msg["List-Unsubscribe"] is None]
    assert all(addr(msg) in contact_emails for msg in rest)


def test_sent_holds_exactly_owner_mail(parsed: list[tuple[DemoMessage, EmailMessage]]) -> None:
    folders = Counter(m.folder for m, _ in parsed)
    assert folders["Sent"] >= 50
    assert folders["INBOX"] >= 50
    for m, msg in parsed:
        assert (m.folder == "Sent") == (addr(msg) == OWNER), m.message_id


def test_flags(parsed: list[tuple[DemoMessage, EmailMessage]]) -> None:
    answered_by_owner = {str(msg["In-Reply-To"]) for m, msg in parsed if m.folder == "Sent"}
    inbox = [m for m, _ in parsed if m.folder == "INBOX"]
    assert all(m.flags == ("\\Seen",) for m, _ in parsed if m.folder == "Sent")
    assert any("\\Answered" in m.flags for m in inbox)
    for m in inbox:
        assert ("\\Answered" in m.flags) == (m.message_id in answered_by_owner), m.message_id
    old = [m for m in inbox if m.date < DEFAULT_NOW - timedelta(days=30)]
    assert sum("\\Seen" in m.flags for m in old) > 0.85 * len(old)


def test_crm_records(mailbox: DemoMailbox) -> None:
    assert len(mailbox.organizations) == 15
    assert all(o.domain.endswith(RESERVED) for o in mailbox.organizations)
    assert all(e.endswith(RESERVED) for p in mailbox.people for e in p.emails)
    assert len(mailbox.people) >= 30
    org_names = {o.name for o in mailbox.organizations}
    assert all(p.organization in org_names for p in mailbox.people)
    emails = {e for p in mailbox.people for e in p.emails}
    assert len(mailbox.deals) >= 15
    assert {d.status for d in mailbox.deals} <= {"open", "won", "lost"}
    assert all(d.person_email in emails and d.value > 0 for d in mailbox.deals)


def test_seed_mailbox_appends_everything(mailbox: DemoMailbox) -> None:
    calls: list[tuple[str, bytes, tuple[str, ...], datetime]] = []

    def append(folder: str, raw: bytes, flags: tuple[str, ...], when: datetime) -> None:
        calls.append((folder, raw, flags, when))

    assert seed_mailbox(append, mailbox) == len(mailbox.messages)
    assert {c[0] for c in calls} == set(mailbox.folders)
    assert sorted(c[1] for c in calls) == sorted(m.raw for m in mailbox.messages)
    assert [c[3] for c in calls] == sorted(c[3] for c in calls)


def test_calendar_events() -> None:
    blobs = calendar_events(DEFAULT_NOW)
    assert len(blobs) == 12
    assert blobs == calendar_events(DEFAULT_NOW)
    events = []
    tzids = set()
    for blob in blobs:
        cal = Calendar.from_ical(blob)
        tzids |= {str(tz["TZID"]) for tz in cal.walk("VTIMEZONE")}
        (event,) = cal.walk("VEVENT")
        events.append(event)
    assert len({str(e["UID"]) for e in events}) == 12
    assert {"Europe/Berlin", "America/New_York"} <= tzids
    starts = [e.decoded("DTSTART") for e in events]
    assert any(type(s) is date for s in starts)
    assert sum(isinstance(s, datetime) and s.tzinfo is not None for s in starts) >= 10
    (weekly,) = [e for e in events if "RRULE" in e]
    assert weekly["RRULE"]["FREQ"] == ["WEEKLY"]
    excluded = weekly["EXDATE"].dts[0].dt
    assert excluded.tzinfo is not None
    assert excluded.weekday() == weekly.decoded("DTSTART").weekday()
    assert excluded > weekly.decoded("DTSTART")
