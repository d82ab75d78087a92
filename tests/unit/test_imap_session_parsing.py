"""The IMAP session's pure helpers on imaplib-shaped data (no server, no sockets)."""

from __future__ import annotations

import datetime as dt

import pytest
from imapclient.exceptions import ProtocolError

from crmsync.mail.imap_session import (
    compress_uids,
    expand_uid_set,
    flag_names,
    gmail_labels,
    imap_date,
    message_from_fetch,
    parse_fetch,
    parse_vanished,
    utc_internaldate,
)

UTC = dt.UTC


# -- UID sets -----------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("text", "uids"),
    [
        ("3:7,9,12:10", [3, 4, 5, 6, 7, 9, 10, 11, 12]),  # a reversed range is the same range
        ("5", [5]),
        (b"1,1,2:3,3", [1, 2, 3]),
        ("", []),
        (" 41,43:45 ", [41, 43, 44, 45]),
    ],
)
def test_expand_uid_set(text: str | bytes, uids: list[int]) -> None:
    assert expand_uid_set(text) == uids


def test_expand_uid_set_caps_huge_ranges() -> None:
    """RFC 7162 lets VANISHED be a superset such as 1:4294967295; the cap keeps it small."""
    assert expand_uid_set("1:4294967295", upper=5) == [1, 2, 3, 4, 5]
    assert expand_uid_set("8:9,2", upper=5) == [2]


@pytest.mark.parametrize("text", ["3:*", "a", "1,,2", "1:2:3", "-1"])
def test_expand_uid_set_rejects_what_is_no_uid_set(text: str) -> None:
    with pytest.raises(ProtocolError):
        expand_uid_set(text)


def test_compress_uids() -> None:
    assert compress_uids([9, 5, 1, 2, 3, 3]) == "1:3,5,9"
    assert compress_uids([7]) == "7"
    assert compress_uids(range(1, 1001)) == "1:1000"
    uids = [1, 2, 4, 5, 6, 10, 12, 13]
    assert expand_uid_set(compress_uids(uids)) == uids
    with pytest.raises(ValueError, match="no UIDs"):
        compress_uids([])


# -- VANISHED and FETCH answers ------------------------------------------------------------------
def test_parse_vanished_reads_earlier_lines_only() -> None:
    lines = [b"(EARLIER) 3:5,7", b"(earlier) 41", b"99"]  # the last one: no (EARLIER)
    assert parse_vanished(lines) == [3, 4, 5, 7, 41]
    assert parse_vanished([b"(EARLIER) 1:100000"], upper=3) == [1, 2, 3]
    assert parse_vanished([]) == []


def test_parse_fetch_keys_by_uid() -> None:
    # What imaplib stores for "* 1 FETCH (UID 7 FLAGS (\Seen) MODSEQ (15))" etc.
    lines = [
        b"1 (UID 7 FLAGS (\\Seen) MODSEQ (15))",
        b"2 (FLAGS () UID 9 MODSEQ (16))",
    ]
    assert parse_fetch(lines) == {
        7: {b"FLAGS": (b"\\Seen",), b"MODSEQ": (15,)},
        9: {b"FLAGS": (), b"MODSEQ": (16,)},
    }


def test_parse_fetch_with_literals() -> None:
    # A literal arrives as (line up to the literal, literal bytes), then the rest of the line.
    lines = [
        (
            b'1 (UID 3 FLAGS (\\Flagged) INTERNALDATE "05-Jan-2026 10:00:00 +0100" BODY[] {6}',
            b"A\r\nB\r\n",
        ),
        b")",
        (b"2 (UID 4 BODY[] {2}", b"hi"),
        b" FLAGS ())",
    ]
    fetched = parse_fetch(lines)
    assert fetched[3][b"BODY[]"] == b"A\r\nB\r\n"
    assert fetched[3][b"INTERNALDATE"] == b"05-Jan-2026 10:00:00 +0100"
    assert fetched[4] == {b"BODY[]": b"hi", b"FLAGS": ()}


def test_parse_fetch_drops_responses_without_uid() -> None:
    """An unsolicited flag update carries a sequence number, not a UID: keying it like a
    UID would put message 3's flags on the message with UID 3."""
    lines = [b"3 (FLAGS (\\Deleted))", b"1 (UID 3 FLAGS ())"]
    assert parse_fetch(lines) == {3: {b"FLAGS": ()}}


def test_parse_fetch_merges_two_responses_for_one_uid() -> None:
    lines = [b"1 (UID 5 FLAGS (\\Seen))", b"1 (UID 5 MODSEQ (20))"]
    assert parse_fetch(lines) == {5: {b"FLAGS": (b"\\Seen",), b"MODSEQ": (20,)}}


@pytest.mark.parametrize("lines", [[], [None]])
def test_parse_fetch_of_nothing(lines: list[object]) -> None:
    assert parse_fetch(lines) == {}


@pytest.mark.parametrize("line", [b"1 (UID 5 FLAGS)", b"1 UID 5", b"1 (UID 5 FLAGS (\\Seen)"])
def test_parse_fetch_rejects_malformed_answers(line: bytes) -> None:
    with pytest.raises(ProtocolError):
        parse_fetch([line])


# -- messages ------------------------------------------------------------------------------------
def test_message_from_fetch_without_gmail() -> None:
    item = {
        b"BODY[]": b"Subject: x\r\n\r\nbody\r\n",
        b"FLAGS": (b"\\Seen", b"$Label1"),
        b"INTERNALDATE": b"05-Jan-2026 10:00:00 +0100",
    }
    message = message_from_fetch(12, item)
    assert message.uid == 12
    assert message.raw == b"Subject: x\r\n\r\nbody\r\n"
    assert message.flags == ["\\Seen", "$Label1"]
    assert message.internaldate == dt.datetime(2026, 1, 5, 9, 0, tzinfo=UTC)
    assert (message.gm_msgid, message.gm_thrid, message.gm_labels) == (None, None, [])


def test_message_from_fetch_with_gmail_items() -> None:
    line = (
        b"1 (X-GM-THRID 1266894439832287888 X-GM-MSGID 1278455344230334865 "
        b'X-GM-LABELS (\\Inbox \\Important "Project X" Kunden/&AMQ-rger 2024) UID 9 '
        b'FLAGS (\\Seen) INTERNALDATE "17-Jul-1996 02:44:25 -0700" BODY[] {4}'
    )
    [(uid, item)] = parse_fetch([(line, b"mail"), b")"]).items()
    message = message_from_fetch(uid, item)
    assert message.uid == 9
    assert message.gm_thrid == 1266894439832287888
    assert message.gm_msgid == 1278455344230334865
    assert message.gm_labels == ["\\Inbox", "\\Important", "Project X", "Kunden/Ärger", "2024"]
    assert message.internaldate == dt.datetime(1996, 7, 17, 9, 44, 25, tzinfo=UTC)


def test_message_from_fetch_needs_a_body() -> None:
    with pytest.raises(ProtocolError, match="UID 4"):
        message_from_fetch(4, {b"FLAGS": ()})


def test_gmail_labels_as_imapclient_returns_them() -> None:
    # bytes atoms and quoted strings, str when already decoded, int for a numeric atom
    assert gmail_labels((b"\\Sent", "Clients", b"&AOk-t&AOk-", 42)) == [
        "\\Sent",
        "Clients",
        "été",
        "42",
    ]
    assert gmail_labels(b"\\Starred") == ["\\Starred"]
    assert gmail_labels(()) == []
    assert gmail_labels(None) == []


def test_flag_names() -> None:
    assert flag_names((b"\\Answered", "$Forwarded")) == ["\\Answered", "$Forwarded"]
    assert flag_names(None) == []
    with pytest.raises(ProtocolError):
        flag_names(b"\\Seen")


# -- dates ---------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (b"05-Jan-2026 10:00:00 +0100", dt.datetime(2026, 1, 5, 9, 0, tzinfo=UTC)),
        (" 5-Jan-2026 23:30:00 -0500", dt.datetime(2026, 1, 6, 4, 30, tzinfo=UTC)),
        (dt.datetime(2026, 1, 5, 10, 0), dt.datetime(2026, 1, 5, 10, 0, tzinfo=UTC)),
        (None, None),
    ],
)
def test_utc_internaldate(value: object, expected: dt.datetime | None) -> None:
    result = utc_internaldate(value)
    assert result == expected
    if result is not None:
        assert result.tzinfo is UTC


def test_utc_internaldate_rejects_garbage() -> None:
    with pytest.raises(ProtocolError):
        utc_internaldate(b"yesterday")


def test_imap_date_ignores_the_locale() -> None:
    assert imap_date(dt.date(2026, 1, 5)) == b"05-Jan-2026"
    assert imap_date(dt.date(2024, 12, 31)) == b"31-Dec-2024"
