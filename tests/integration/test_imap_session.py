"""The sync's IMAP session (ImapMailbox.open_session) against the real private Dovecot 2.3.

Command counts are exact on purpose: the sync promises that an idle poll costs the login
plus one STATUS per folder, and these tests pin what each session call sends.
"""

from __future__ import annotations

import datetime as dt
import imaplib
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
from imapclient import IMAPClient, imap_utf7

from crmsync.mail.connect import ImapConnector, SmtpConnector
from crmsync.mail.mailbox import ImapMailbox
from crmsync.models.accounts import MailAccount
from crmsync.models.imap import ImapSession, KnownFolderState
from crmsync.models.servers import MailServerError, Security, ServerEndpoint
from crmsync.security.network import HostGuard
from crmsync_local.testservers.dovecot import DovecotServer, MailUser
from crmsync_local.testservers.hangup_proxy import HangupProxy

pytestmark = pytest.mark.integration

UTC = dt.UTC
# Before any command of the session: imaplib's CAPABILITY right after the greeting + LOGIN
# (Dovecot answers LOGIN with [CAPABILITY ...], so no second CAPABILITY is sent after it),
# and STARTTLS in between when the account uses it.
LOGIN_COST: dict[Security, int] = {"ssl": 2, "none": 2, "starttls": 3}
FUTURE_DATE = "Tue, 01 Jan 2030 12:00:00 +0000"
PAST_DATE = "Sat, 01 Jan 2000 12:00:00 +0000"


def _message(
    subject: str, body: str = "Hello.", date: str = "Mon, 05 Jan 2026 10:00:00 +0000"
) -> bytes:
    return (
        f"From: Carol <carol@example.org>\r\nTo: someone@example.test\r\nSubject: {subject}\r\n"
        f"Date: {date}\r\nMessage-ID: <{subject.replace(' ', '-')}@crmsync.test>\r\n\r\n{body}\r\n"
    ).encode()


def _account(user: MailUser, endpoint: ServerEndpoint) -> MailAccount:
    return MailAccount(
        id="acc-1",
        company_id="co-1",
        user_id="user-1",
        email=user.email,
        username=user.username,
        imap=endpoint,
        created_at=dt.datetime(2026, 1, 1, tzinfo=UTC),
    )


def _endpoint(dovecot: DovecotServer, security: Security) -> ServerEndpoint:
    port = dovecot.ssl_port if security == "ssl" else dovecot.port
    return ServerEndpoint(host=dovecot.host, port=port, security=security)


@pytest.fixture
def mailbox(dovecot: DovecotServer) -> ImapMailbox:
    guard = HostGuard("local")
    return ImapMailbox(ImapConnector(guard, timeout=5), SmtpConnector(guard), str(dovecot.cafile))


@pytest.fixture
def account(dovecot: DovecotServer, mail_user: MailUser) -> MailAccount:
    return _account(mail_user, _endpoint(dovecot, "ssl"))


@pytest.fixture
def open_session(
    mailbox: ImapMailbox, account: MailAccount, mail_user: MailUser
) -> Iterator[ImapSession]:
    with mailbox.open_session(account, mail_user.password) as session:
        yield session


@contextmanager
def _other_connection(dovecot: DovecotServer, user: MailUser) -> Iterator[IMAPClient]:
    """Another mail client of the same user, read-write (it changes flags and expunges)."""
    client = dovecot.connect(user)
    try:
        yield client
    finally:
        client.logout()


def _flags_elsewhere(dovecot: DovecotServer, user: MailUser, folder: str) -> dict[int, set[bytes]]:
    with _other_connection(dovecot, user) as client:
        client.select_folder(folder, readonly=True)
        return {uid: set(item[b"FLAGS"]) for uid, item in client.fetch("1:*", ["FLAGS"]).items()}


# -- capabilities and command counts -------------------------------------------------------------
def test_capabilities(open_session: ImapSession) -> None:
    assert {"IMAP4REV1", "CONDSTORE", "QRESYNC", "ENABLE"} <= open_session.capabilities
    assert open_session.condstore
    assert open_session.qresync
    assert not open_session.gmail


@pytest.mark.parametrize("security", ["ssl", "starttls", "none"])
def test_idle_poll_costs_login_list_and_one_status_per_folder(
    mailbox: ImapMailbox, dovecot: DovecotServer, mail_user: MailUser, security: Security
) -> None:
    account = _account(mail_user, _endpoint(dovecot, security))
    with mailbox.open_session(account, mail_user.password) as session:
        login = LOGIN_COST[security]
        assert session.commands_sent == login
        folders = [f.name for f in session.list_folders()]  # LIST
        assert session.commands_sent == login + 1
        for name in folders:
            session.status(name)  # one STATUS each
        assert session.commands_sent == login + 1 + len(folders)


def test_commands_of_a_folder_sync(
    dovecot: DovecotServer, mail_user: MailUser, open_session: ImapSession
) -> None:
    dovecot.create_folder(mail_user, "Empty")
    dovecot.append(mail_user, "INBOX", _message("one"))
    session = open_session
    base = session.commands_sent
    assert base == LOGIN_COST["ssl"]
    status = session.status("INBOX")
    assert session.commands_sent == base + 1
    # The first select of a session sends ENABLE QRESYNC (legal only before any select),
    # then the EXAMINE, QRESYNC parameter included, as one command.
    known = KnownFolderState(
        uidvalidity=status.uidvalidity, highestmodseq=status.highestmodseq or 1
    )
    session.select("INBOX", known)
    assert session.commands_sent == base + 3
    session.search_uids(min_uid=1)
    session.fetch_messages([1])
    session.changed_flags(1)
    session.all_flags()
    assert session.commands_sent == base + 7  # one command each
    session.select("Empty", known)  # no second ENABLE
    assert session.commands_sent == base + 8
    assert session.all_flags() == {}
    assert session.changed_flags(1) == {}
    assert session.commands_sent == base + 8  # an empty folder needs no FETCH 1:*


# -- STATUS and SELECT ---------------------------------------------------------------------------
def test_status_follows_appends(
    dovecot: DovecotServer, mail_user: MailUser, open_session: ImapSession
) -> None:
    before = open_session.status("INBOX")
    assert (before.messages, before.uidnext) == (0, 1)
    assert before.highestmodseq is not None

    uid = dovecot.append(mail_user, "INBOX", _message("first"))
    after = open_session.status("INBOX")

    assert after.name == "INBOX"
    assert after.uidvalidity == before.uidvalidity
    assert after.messages == 1
    assert after.uidnext == uid + 1
    assert after.highestmodseq is not None
    assert after.highestmodseq > before.highestmodseq


def test_select_reports_the_folder(
    dovecot: DovecotServer, mail_user: MailUser, open_session: ImapSession
) -> None:
    uids = [dovecot.append(mail_user, "INBOX", _message(f"m{i}")) for i in range(3)]
    status = open_session.status("INBOX")

    selected = open_session.select("INBOX")

    assert selected.name == "INBOX"
    assert selected.uidvalidity == status.uidvalidity
    assert selected.uidnext == uids[-1] + 1 == status.uidnext
    assert selected.exists == 3
    assert selected.highestmodseq == status.highestmodseq
    assert (selected.vanished, selected.changed_flags) == ([], {})


def test_qresync_select_returns_expunges_and_flag_changes(
    dovecot: DovecotServer, mail_user: MailUser, mailbox: ImapMailbox, account: MailAccount
) -> None:
    dovecot.create_folder(mail_user, "Other")
    uids = [dovecot.append(mail_user, "INBOX", _message(f"m{i}")) for i in range(6)]
    with mailbox.open_session(account, mail_user.password) as session:
        last_sync = session.select("INBOX")  # as the first sync does (see the quirk below)
    assert last_sync.highestmodseq is not None

    with _other_connection(dovecot, mail_user) as other:
        other.select_folder("INBOX")
        other.add_flags([uids[1]], [rb"\Seen"])
        other.add_flags([uids[4]], [rb"\Flagged"])
        other.delete_messages([uids[2], uids[3], uids[5]])
        other.uid_expunge([uids[2], uids[3], uids[5]])

    known = KnownFolderState(
        uidvalidity=last_sync.uidvalidity, highestmodseq=last_sync.highestmodseq
    )
    with mailbox.open_session(account, mail_user.password) as session:
        # Another folder first: the INBOX answer then follows an "OK [CLOSED]" (RFC 7162).
        session.select("Other")
        before = session.commands_sent
        selected = session.select("INBOX", known)
        assert session.commands_sent == before + 1
        assert selected.uidvalidity == last_sync.uidvalidity
        assert selected.exists == 3
        assert selected.highestmodseq is not None
        assert selected.highestmodseq > last_sync.highestmodseq
        assert selected.vanished == [uids[2], uids[3], uids[5]]
        assert selected.changed_flags == {uids[1]: ["\\Seen"], uids[4]: ["\\Flagged"]}

        # known_uids narrows VANISHED to the UIDs the client still has.
        narrowed = known.model_copy(update={"known_uids": f"{uids[0]}:{uids[2]}"})
        assert session.select("INBOX", narrowed).vanished == [uids[2]]

        # Up to date: nothing vanished, nothing changed.
        current = KnownFolderState(
            uidvalidity=selected.uidvalidity, highestmodseq=selected.highestmodseq
        )
        again = session.select("INBOX", current)
        assert (again.vanished, again.changed_flags) == ([], {})


def test_qresync_select_with_another_uidvalidity_reports_nothing(
    dovecot: DovecotServer, mail_user: MailUser, open_session: ImapSession
) -> None:
    uids = [dovecot.append(mail_user, "INBOX", _message(f"m{i}")) for i in range(2)]
    status = open_session.status("INBOX")
    with _other_connection(dovecot, mail_user) as other:
        other.select_folder("INBOX")
        other.delete_messages([uids[0]])
        other.uid_expunge([uids[0]])

    stale = KnownFolderState(uidvalidity=status.uidvalidity - 1, highestmodseq=1)
    selected = open_session.select("INBOX", stale)

    assert selected.uidvalidity == status.uidvalidity  # the new one: the caller reseeds
    assert (selected.vanished, selected.changed_flags) == ([], {})


def test_folder_never_opened_with_condstore_reports_every_message_changed(
    dovecot: DovecotServer, mail_user: MailUser, mailbox: ImapMailbox, account: MailAccount
) -> None:
    """Dovecot quirk: it tracks per-message mod-sequences only once a client opened the
    folder with CONDSTORE/QRESYNC on (our select does; STATUS does not). Until then the first
    change gives every message its mod-sequence, so `changed_flags` is a superset once; each
    entry still carries the message's real flags."""
    uids = [dovecot.append(mail_user, "INBOX", _message(f"m{i}")) for i in range(3)]
    with mailbox.open_session(account, mail_user.password) as session:
        last_sync = session.status("INBOX")  # STATUS only: the folder is never opened
    assert last_sync.highestmodseq is not None
    with _other_connection(dovecot, mail_user) as other:
        other.select_folder("INBOX")
        other.add_flags([uids[1]], [b"$Customer"])

    known = KnownFolderState(
        uidvalidity=last_sync.uidvalidity, highestmodseq=last_sync.highestmodseq
    )
    with mailbox.open_session(account, mail_user.password) as session:
        changed = session.select("INBOX", known).changed_flags
        assert changed == {uids[0]: [], uids[1]: ["$Customer"], uids[2]: []}
        assert session.changed_flags(last_sync.highestmodseq) == changed


# -- FETCH ---------------------------------------------------------------------------------------
def test_fetch_returns_the_message_as_appended(
    dovecot: DovecotServer, mail_user: MailUser, open_session: ImapSession
) -> None:
    raw = _message("Quarterly review", body="Line one.\r\nLine two, 8-bit: \u00e9t\u00e9 \u20ac")
    received = dt.datetime(2025, 3, 1, 23, 30, tzinfo=dt.timezone(dt.timedelta(hours=-5)))
    first = dovecot.append(
        mail_user, "INBOX", raw, flags=[r"\Flagged", "$Customer"], msg_time=received
    )
    second = dovecot.append(mail_user, "INBOX", _message("second"))
    open_session.select("INBOX")

    fetched = open_session.fetch_messages([second, 999, first])  # 999 does not exist

    assert [m.uid for m in fetched] == [first, second]
    message = fetched[0]
    assert message.raw == raw  # CRLF in, byte-identical out
    # \\Recent: no read-write session has opened the folder since the APPEND (Dovecot
    # reports it in EXAMINE too; the sync ignores it).
    assert sorted(message.flags) == ["$Customer", "\\Flagged", "\\Recent"]
    assert message.internaldate == dt.datetime(2025, 3, 2, 4, 30, tzinfo=UTC)
    assert message.internaldate is not None
    assert message.internaldate.utcoffset() == dt.timedelta(0)
    assert (message.gm_msgid, message.gm_thrid, message.gm_labels) == (None, None, [])


def test_fetch_gives_crlf_for_messages_stored_with_bare_lf(
    dovecot: DovecotServer, mail_user: MailUser, open_session: ImapSession
) -> None:
    """Dovecot's maildir stores LF and serves CRLF: a message delivered with bare LF (as an
    MTA does) comes back with CRLF line ends; bare CRs and a missing final newline stay."""
    lf = b"From: a@example.org\nSubject: unix\n\nline\rwith a bare CR\nlast line"
    dovecot.deliver(mail_user, lf)
    open_session.select("INBOX")

    [message] = open_session.fetch_messages([1])

    assert message.raw == lf.replace(b"\n", b"\r\n")


def test_fetch_in_examine_mode_sets_no_seen(
    dovecot: DovecotServer, mail_user: MailUser, open_session: ImapSession
) -> None:
    uid = dovecot.append(mail_user, "INBOX", _message("unread"))
    open_session.select("INBOX")
    [message] = open_session.fetch_messages([uid])
    assert "\\Seen" not in message.flags
    assert _flags_elsewhere(dovecot, mail_user, "INBOX") == {uid: {rb"\Recent"}}


def test_search_uids_by_range_and_internal_date(
    dovecot: DovecotServer, mail_user: MailUser, open_session: ImapSession
) -> None:
    # The Date header says the opposite of the internal date: SEARCH SINCE must follow the
    # internal date (when the server received the message).
    uids = [
        dovecot.append(
            mail_user,
            "INBOX",
            _message(f"m{month}", date=FUTURE_DATE if month == 1 else PAST_DATE),
            msg_time=dt.datetime(2024, month, 10, 12, 0, tzinfo=UTC),
        )
        for month in (1, 3, 6, 9)
    ]
    session = open_session
    session.select("INBOX")

    assert session.search_uids() == uids
    assert session.search_uids(since=dt.date(2024, 3, 1)) == uids[1:]  # by Date: [uids[0]]
    assert session.search_uids(since=dt.date(2024, 3, 10)) == uids[1:]  # SINCE is inclusive
    assert session.search_uids(since=dt.date(2024, 3, 11)) == uids[2:]
    assert session.search_uids(min_uid=uids[1], max_uid=uids[2]) == uids[1:3]
    assert session.search_uids(min_uid=uids[1], since=dt.date(2024, 6, 1)) == uids[2:]
    assert session.search_uids(max_uid=uids[0]) == uids[:1]
    assert session.search_uids(min_uid=uids[2], max_uid=uids[1]) == []
    assert session.search_uids(min_uid=uids[-1]) == uids[-1:]


def test_search_above_the_last_uid_finds_nothing(
    dovecot: DovecotServer, mail_user: MailUser, open_session: ImapSession
) -> None:
    uids = [dovecot.append(mail_user, "INBOX", _message(f"m{i}")) for i in range(3)]
    with _other_connection(dovecot, mail_user) as raw:
        raw.select_folder("INBOX", readonly=True)
        # The quirk itself: "*" is the highest UID, so 500:* is 3:500 and matches UID 3.
        assert raw.search(["UID", "500:*"]) == [uids[-1]]

    open_session.select("INBOX")
    assert open_session.search_uids(min_uid=500) == []
    assert open_session.search_uids(min_uid=uids[-1] + 1) == []


def test_changed_flags_since_a_modseq(
    dovecot: DovecotServer, mail_user: MailUser, mailbox: ImapMailbox, account: MailAccount
) -> None:
    uids = [dovecot.append(mail_user, "INBOX", _message(f"m{i}")) for i in range(3)]
    with mailbox.open_session(account, mail_user.password) as session:
        last_sync = session.select("INBOX").highestmodseq
    assert last_sync is not None
    with _other_connection(dovecot, mail_user) as other:
        other.select_folder("INBOX")
        other.add_flags([uids[0]], [rb"\Answered"])
        other.add_flags([uids[2]], [rb"\Seen", rb"\Flagged"])

    with mailbox.open_session(account, mail_user.password) as session:
        now = session.select("INBOX").highestmodseq
        assert now is not None
        changed = session.changed_flags(last_sync)
        assert {uid: sorted(flags) for uid, flags in changed.items()} == {
            uids[0]: ["\\Answered"],
            uids[2]: ["\\Flagged", "\\Seen"],
        }
        assert session.changed_flags(now) == {}


def test_all_flags(dovecot: DovecotServer, mail_user: MailUser, open_session: ImapSession) -> None:
    open_session.select("INBOX")
    assert open_session.all_flags() == {}

    uids = [dovecot.append(mail_user, "INBOX", _message(f"m{i}")) for i in range(3)]
    with _other_connection(dovecot, mail_user) as other:
        other.select_folder("INBOX")
        other.add_flags([uids[1]], [rb"\Seen"])
    open_session.select("INBOX")
    assert open_session.all_flags() == {uids[0]: [], uids[1]: ["\\Seen"], uids[2]: []}


def test_searching_before_selecting_is_a_programming_error(open_session: ImapSession) -> None:
    with pytest.raises(RuntimeError, match="select"):
        open_session.search_uids()


# -- failures ------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("security", "reset", "raised"),
    [
        ("none", True, ConnectionResetError),
        ("none", False, imaplib.IMAP4.abort),  # EOF inside the literal
        # ssl's suppress_ragged_eofs turns the reset under TLS into an EOF as well.
        ("ssl", True, imaplib.IMAP4.abort),
    ],
    ids=["plain-rst", "plain-fin", "tls-rst"],
)
def test_server_hanging_up_mid_fetch(
    dovecot: DovecotServer,
    mail_user: MailUser,
    mailbox: ImapMailbox,
    security: Security,
    reset: bool,
    raised: type[Exception],
) -> None:
    """Whatever the library raises for the hang-up, the session ends in MailServerError."""
    bodies = [_message(f"big {i}", body="x" * 20_000) for i in range(3)]
    uids = [dovecot.append(mail_user, "INBOX", raw) for raw in bodies]
    target = dovecot.ssl_port if security == "ssl" else dovecot.port
    with HangupProxy(dovecot.host, target) as proxy:
        # The test certificate names 127.0.0.1, so TLS through the proxy verifies as usual.
        account = _account(
            mail_user, ServerEndpoint(host=proxy.host, port=proxy.port, security=security)
        )

        def fetch_while_armed() -> None:
            with mailbox.open_session(account, mail_user.password) as session:
                session.select("INBOX")
                # Cut 2000 bytes into the answer: inside the first message's literal. In TLS
                # the command is not readable, but it is the client's next write.
                if security == "ssl":
                    proxy.arm(client_writes=1, server_bytes=2000, reset=reset)
                else:
                    proxy.arm(trigger=b"FETCH", server_bytes=2000, reset=reset)
                session.fetch_messages(uids)

        # The connector translates on the way out of its block: the whole session is inside.
        with pytest.raises(MailServerError) as caught:
            fetch_while_armed()
        cause = caught.value.__cause__
        assert isinstance(cause, raised)
        assert proxy.cuts == 1
        assert caught.value.problem.code == "server_error"
        assert "closed the connection unexpectedly" in caught.value.problem.message
        assert mail_user.password not in str(caught.value)

        with mailbox.open_session(account, mail_user.password) as session:  # disarmed now
            session.select("INBOX")
            assert [m.raw for m in session.fetch_messages(uids)] == bodies
        assert proxy.connections == 2


def test_wrong_password(mailbox: ImapMailbox, account: MailAccount, mail_user: MailUser) -> None:
    with pytest.raises(MailServerError) as caught, mailbox.open_session(account, "wrong"):
        pass
    assert caught.value.problem.code == "auth_failed"


# -- folder names --------------------------------------------------------------------------------
def test_folder_name_with_spaces_and_non_ascii(
    dovecot: DovecotServer, mail_user: MailUser, open_session: ImapSession
) -> None:
    name = "Kunden & Partner/Müller Straße"
    # What goes over the wire: modified UTF-7 ("&" itself becomes "&-").
    assert imap_utf7.encode(name) == b"Kunden &- Partner/M&APw-ller Stra&AN8-e"
    dovecot.create_folder(mail_user, name)
    raw = _message("in a folder with umlauts")
    uid = dovecot.append(mail_user, name, raw)

    assert name in [f.name for f in open_session.list_folders()]
    status = open_session.status(name)
    assert (status.name, status.messages, status.uidnext) == (name, 1, uid + 1)
    selected = open_session.select(name)
    assert (selected.name, selected.exists) == (name, 1)
    assert [m.raw for m in open_session.fetch_messages([uid])] == [raw]


def test_list_status_gives_every_folder_and_its_status_in_one_command(
    dovecot: DovecotServer, mail_user: MailUser, open_session: ImapSession
) -> None:
    name = "Kunden & Partner/Müller Straße"
    dovecot.create_folder(mail_user, name)
    dovecot.append(mail_user, name, _message("umlauts"))
    dovecot.append(mail_user, "INBOX", _message("one"))
    dovecot.append(mail_user, "INBOX", _message("two"))
    assert "LIST-STATUS" in open_session.capabilities
    before = open_session.commands_sent
    combined = open_session.list_status()
    assert open_session.commands_sent == before + 1
    assert combined is not None
    by_name = {folder.name: (folder, status) for folder, status in combined}
    assert set(by_name) == {f.name for f in open_session.list_folders()}
    assert by_name["Sent"][0].special_use == "\\Sent"
    for folder_name in ("INBOX", name, "Sent"):
        status = by_name[folder_name][1]
        assert status == open_session.status(folder_name)
    inbox = by_name["INBOX"][1]
    assert inbox is not None
    assert inbox.messages == 2
    assert inbox.highestmodseq is not None
