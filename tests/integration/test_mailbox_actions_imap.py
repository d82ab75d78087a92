"""Mailbox actions (SPEC S9) on the real private Dovecot 2.3: MailboxActionApplier over the
sync's ImapClientSession, checked by reading the mailbox back over another connection.

Dovecot has MOVE, UIDPLUS and QRESYNC, and special-use Drafts/Sent/Trash/Archive/Junk.
Command counts are exact: per folder an action costs SELECT, UID SEARCH and one change
(plus ENABLE QRESYNC before the session's first SELECT).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator, Sequence

import pytest

from crmsync.mail.connect import ImapConnector, SmtpConnector
from crmsync.mail.folders import folder_roles
from crmsync.mail.imap_session import ImapClientSession
from crmsync.mail.mailbox import ImapMailbox
from crmsync.models.accounts import MailAccount
from crmsync.models.actions import ActionOp, ActionResult, MailboxAction
from crmsync.models.imap import ImapSession
from crmsync.models.mail import MessageLocation, StoredMessage, folder_id
from crmsync.models.servers import MailServerError, ServerEndpoint
from crmsync.security.network import HostGuard
from crmsync.services.mailbox_actions import MailboxActionApplier
from crmsync_local.testservers.dovecot import DovecotServer, MailUser

pytestmark = pytest.mark.integration

UTC = dt.UTC
SEEN = "\\Seen"
ENABLE = 1  # ENABLE QRESYNC, once per session, before its first SELECT or EXAMINE
PER_FOLDER = 3  # SELECT, UID SEARCH, the change (STORE or MOVE)


def _message(n: int) -> bytes:
    return (
        f"From: Carol <carol@example.org>\r\nTo: someone@example.test\r\nSubject: Deal {n}\r\n"
        f"Date: Mon, 05 Jan 2026 10:00:00 +0000\r\nMessage-ID: <m{n}@crmsync.test>\r\n\r\n"
        f"Hello {n}.\r\n"
    ).encode()


@pytest.fixture
def mailbox(dovecot: DovecotServer) -> ImapMailbox:
    guard = HostGuard("local")
    return ImapMailbox(ImapConnector(guard, timeout=5), SmtpConnector(guard), str(dovecot.cafile))


@pytest.fixture
def account(dovecot: DovecotServer, mail_user: MailUser) -> MailAccount:
    return MailAccount(
        id="acc-1",
        company_id="co-1",
        user_id="user-1",
        email=mail_user.email,
        username=mail_user.username,
        imap=ServerEndpoint(host=dovecot.host, port=dovecot.ssl_port, security="ssl"),
        created_at=dt.datetime(2026, 1, 1, tzinfo=UTC),
    )


@pytest.fixture
def open_session(
    mailbox: ImapMailbox, account: MailAccount, mail_user: MailUser
) -> Iterator[ImapSession]:
    with mailbox.open_session(account, mail_user.password) as session:
        yield session


class Mailbox:
    """The test user's mailbox: appends, the CRM's view of a message, and reading back."""

    def __init__(self, dovecot: DovecotServer, user: MailUser) -> None:
        self.dovecot = dovecot
        self.user = user

    def append(self, folder: str, n: int, flags: Sequence[str] = ()) -> int:
        return self.dovecot.append(self.user, folder, _message(n), flags=flags)

    def stored(self, n: int, where: dict[str, int]) -> StoredMessage:
        """Message n as the sync stored it: real folders, UIDVALIDITYs, UIDs and roles."""
        client = self.dovecot.connect(self.user)
        try:
            validity = {
                name: int(client.folder_status(name, [b"UIDVALIDITY"])[b"UIDVALIDITY"])
                for name in where
            }
        finally:
            client.logout()
        return StoredMessage(
            id=f"k{n}",
            thread_id="t1",
            account_id="acc-1",
            company_id="co-1",
            owner_user_id="user-1",
            date=dt.datetime(2026, 1, 5, 10, tzinfo=UTC),
            raw_key=f"raw/k{n}",
            locations=[
                MessageLocation(
                    folder=name, folder_id=folder_id(name), uidvalidity=validity[name], uid=uid
                )
                for name, uid in where.items()
            ],
        )

    def contents(self, folder: str) -> dict[str, set[str]]:
        """Message-ID -> flags (without \\Recent) of every message in the folder."""
        client = self.dovecot.connect(self.user)
        try:
            client.select_folder(folder, readonly=True)
            uids = client.search("ALL")
            if not uids:
                return {}
            fetched = client.fetch(uids, ["FLAGS", "ENVELOPE"])
            return {
                item[b"ENVELOPE"].message_id.decode(): {
                    flag.decode() for flag in item[b"FLAGS"] if flag != b"\\Recent"
                }
                for item in fetched.values()
            }
        finally:
            client.logout()

    def count(self, folder: str) -> int:
        client = self.dovecot.connect(self.user)
        try:
            return int(client.folder_status(folder, [b"MESSAGES"])[b"MESSAGES"])
        finally:
            client.logout()

    def expunge(self, folder: str, uid: int) -> None:
        """Another mail client deletes the message for good."""
        client = self.dovecot.connect(self.user)
        try:
            client.select_folder(folder)
            client.delete_messages([uid])
            client.uid_expunge([uid])
        finally:
            client.logout()


@pytest.fixture
def box(dovecot: DovecotServer, mail_user: MailUser) -> Mailbox:
    return Mailbox(dovecot, mail_user)


def apply(
    session: ImapSession, op: ActionOp, messages: Sequence[StoredMessage]
) -> tuple[ActionResult, int]:
    """Apply with the folder list the locations' roles come from: (result, commands sent)."""
    folders = session.list_folders()
    roles = folder_roles(folders)
    for message in messages:  # the roles the sync gave the locations
        message.locations = [
            loc.model_copy(update={"role": roles.get(loc.folder)}) for loc in message.locations
        ]
    action = MailboxAction(
        id=f"act-{op}",
        company_id="co-1",
        account_id="acc-1",
        thread_id="t1",
        op=op,
        message_keys=[m.id for m in messages],
        created_at=dt.datetime(2026, 1, 6, tzinfo=UTC),
    )
    before = session.commands_sent
    result = MailboxActionApplier().apply(session, action, messages, folders)
    return result, session.commands_sent - before


def ids(*numbers: int) -> set[str]:
    return {f"<m{n}@crmsync.test>" for n in numbers}


# -- archive / unarchive ---------------------------------------------------------------------
def test_archive_moves_inbox_messages_into_archive(box: Mailbox, open_session: ImapSession) -> None:
    uids = [box.append("INBOX", n) for n in (1, 2)]
    messages = [box.stored(n, {"INBOX": uid}) for n, uid in zip((1, 2), uids, strict=True)]

    result, commands = apply(open_session, "archive", messages)

    assert (result.changed, result.missing, result.skipped_reason) == (2, 0, None)
    assert commands == ENABLE + PER_FOLDER  # one UID MOVE for both
    assert box.contents("INBOX") == {}
    assert set(box.contents("Archive")) == ids(1, 2)


def test_archiving_twice_is_harmless(
    box: Mailbox, mailbox: ImapMailbox, account: MailAccount, mail_user: MailUser
) -> None:
    uid = box.append("INBOX", 1)
    message = box.stored(1, {"INBOX": uid})  # the CRM has not synced the move yet
    with mailbox.open_session(account, mail_user.password) as session:
        apply(session, "archive", [message])
    with mailbox.open_session(account, mail_user.password) as session:
        again, commands = apply(session, "archive", [message])

    assert (again.changed, again.missing) == (0, 1)
    assert commands == ENABLE + 1  # SELECT: the inbox is empty, nothing to search or move
    assert box.contents("INBOX") == {}
    assert set(box.contents("Archive")) == ids(1)


def test_unarchive_moves_archived_messages_back_to_the_inbox(
    box: Mailbox, open_session: ImapSession
) -> None:
    archived = box.append("Archive", 1)
    in_both = (box.append("INBOX", 2), box.append("Archive", 2))
    messages = [
        box.stored(1, {"Archive": archived}),
        box.stored(2, {"INBOX": in_both[0], "Archive": in_both[1]}),
    ]

    result, commands = apply(open_session, "unarchive", messages)

    assert (result.changed, result.missing) == (1, 0)  # message 2 is in the inbox already
    assert commands == ENABLE + PER_FOLDER
    assert set(box.contents("INBOX")) == ids(1, 2)
    assert set(box.contents("Archive")) == ids(2)


# -- delete ----------------------------------------------------------------------------------
def test_delete_moves_every_copy_into_trash(
    box: Mailbox, mailbox: ImapMailbox, account: MailAccount, mail_user: MailUser
) -> None:
    both = (box.append("INBOX", 1), box.append("Archive", 1))
    message = box.stored(1, {"INBOX": both[0], "Archive": both[1]})

    with mailbox.open_session(account, mail_user.password) as session:
        result, commands = apply(session, "delete", [message])
    assert (result.changed, result.missing) == (1, 0)
    assert commands == ENABLE + 2 * PER_FOLDER
    assert box.contents("INBOX") == {} == box.contents("Archive")
    assert set(box.contents("Trash")) == ids(1)
    assert box.count("Trash") == 2  # a copy from each folder

    with mailbox.open_session(account, mail_user.password) as session:
        again, _ = apply(session, "delete", [message])
    assert (again.changed, again.missing) == (0, 1)


# -- read / unread ---------------------------------------------------------------------------
def test_read_and_unread_set_and_clear_seen(
    box: Mailbox, mailbox: ImapMailbox, account: MailAccount, mail_user: MailUser
) -> None:
    uid = box.append("INBOX", 1, flags=["$Customer"])
    message = box.stored(1, {"INBOX": uid})

    with mailbox.open_session(account, mail_user.password) as session:
        read, commands = apply(session, "read", [message])
        assert (read.changed, read.missing) == (1, 0)
        assert commands == ENABLE + PER_FOLDER
        assert box.contents("INBOX") == {"<m1@crmsync.test>": {SEEN, "$Customer"}}

        again, commands = apply(session, "read", [message])  # no second ENABLE
        assert (again.changed, again.missing) == (1, 0)
        assert commands == PER_FOLDER
        assert box.contents("INBOX") == {"<m1@crmsync.test>": {SEEN, "$Customer"}}

        unread, _ = apply(session, "unread", [message])
        assert (unread.changed, unread.missing) == (1, 0)
        assert box.contents("INBOX") == {"<m1@crmsync.test>": {"$Customer"}}


# -- UIDs that are gone ----------------------------------------------------------------------
def test_a_uid_expunged_meanwhile_counts_as_missing(
    box: Mailbox, open_session: ImapSession
) -> None:
    gone, kept = box.append("INBOX", 1), box.append("INBOX", 2)
    messages = [box.stored(1, {"INBOX": gone}), box.stored(2, {"INBOX": kept})]
    box.expunge("INBOX", gone)

    result, _ = apply(open_session, "archive", messages)

    assert (result.changed, result.missing) == (1, 1)
    assert set(box.contents("Archive")) == ids(2)


def test_uids_of_another_uidvalidity_change_nothing(
    box: Mailbox, open_session: ImapSession
) -> None:
    uid = box.append("INBOX", 1)
    message = box.stored(1, {"INBOX": uid})
    stale = message.locations[0].model_copy(update={"uidvalidity": 1})
    message.locations = [stale]  # synced before the server renumbered the folder

    result, commands = apply(open_session, "delete", [message])

    assert (result.changed, result.missing) == (0, 1)
    assert commands == ENABLE + 1  # the SELECT shows the new UIDVALIDITY: no SEARCH
    assert set(box.contents("INBOX")) == ids(1)
    assert box.contents("Trash") == {}


# -- the session after a write ---------------------------------------------------------------
def test_select_after_a_write_is_read_only_again(box: Mailbox, open_session: ImapSession) -> None:
    """A read-write SELECT claims \\Recent (RFC 3501); the EXAMINE after a write must not:
    another client still sees \\Recent on mail that arrived after the write."""
    uid = box.append("INBOX", 1)
    apply(open_session, "read", [box.stored(1, {"INBOX": uid})])
    arrived = box.append("INBOX", 2)

    open_session.select("INBOX")
    [fetched] = open_session.fetch_messages([arrived])

    assert "\\Recent" in fetched.flags
    client = box.dovecot.connect(box.user)
    try:
        client.select_folder("INBOX", readonly=True)
        assert b"\\Recent" in client.get_flags([arrived])[arrived]
    finally:
        client.logout()


def test_moves_into_a_folder_with_a_non_ascii_name(
    box: Mailbox, dovecot: DovecotServer, mail_user: MailUser, open_session: ImapSession
) -> None:
    target = "Kunden & Partner/Müller"
    dovecot.create_folder(mail_user, target)
    uid = box.append("INBOX", 1)
    validity = box.stored(1, {"INBOX": uid}).locations[0].uidvalidity

    assert open_session.move("INBOX", validity, [uid, 999], target) == [uid]
    assert set(box.contents(target)) == ids(1)


def test_without_move_copy_store_and_uid_expunge_touch_only_these_uids(
    box: Mailbox, open_session: ImapSession
) -> None:
    assert isinstance(open_session, ImapClientSession)
    open_session._capabilities = open_session.capabilities - {"MOVE"}
    uid = box.append("INBOX", 1)
    box.append("INBOX", 2, flags=["\\Deleted"])  # the user's: no expunge of ours removes it
    validity = box.stored(1, {"INBOX": uid}).locations[0].uidvalidity
    before = open_session.commands_sent

    assert open_session.move("INBOX", validity, [uid], "Archive") == [uid]

    assert open_session.commands_sent - before == ENABLE + 2 + 3  # COPY, STORE, UID EXPUNGE
    assert box.contents("INBOX") == {"<m2@crmsync.test>": {"\\Deleted"}}
    assert set(box.contents("Archive")) == ids(1)


def test_without_move_or_uidplus_the_original_stays_flagged_deleted(
    box: Mailbox, open_session: ImapSession
) -> None:
    assert isinstance(open_session, ImapClientSession)
    open_session._capabilities = open_session.capabilities - {"MOVE", "UIDPLUS"}
    uid = box.append("INBOX", 1)
    validity = box.stored(1, {"INBOX": uid}).locations[0].uidvalidity

    assert open_session.move("INBOX", validity, [uid], "Trash") == [uid]

    assert box.contents("INBOX") == {"<m1@crmsync.test>": {"\\Deleted"}}
    assert set(box.contents("Trash")) == ids(1)


def test_a_missing_target_folder_is_a_mail_server_error(
    box: Mailbox, mailbox: ImapMailbox, account: MailAccount, mail_user: MailUser
) -> None:
    uid = box.append("INBOX", 1)
    validity = box.stored(1, {"INBOX": uid}).locations[0].uidvalidity
    with (
        pytest.raises(MailServerError) as caught,
        mailbox.open_session(account, mail_user.password) as session,
    ):
        session.move("INBOX", validity, [uid], "No Such Folder")
    assert caught.value.problem.code == "server_error"
    assert set(box.contents("INBOX")) == ids(1)
