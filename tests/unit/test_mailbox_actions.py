"""MailboxActionApplier (SPEC S9) over the fake IMAP server: every op, Gmail's labels, UIDs
that are gone or of another UIDVALIDITY, missing folders, and applying an action twice."""

from __future__ import annotations

from collections.abc import Sequence

import pytest

from crmsync.mail.folders import folder_roles
from crmsync.mail.imap_session import flag_list, label_list
from crmsync.models.actions import ActionOp, MailboxAction
from crmsync.models.mail import MessageLocation, StoredMessage, folder_id
from crmsync.models.servers import MailServerError
from crmsync.services.mailbox_actions import NO_ARCHIVE, NO_TRASH, MailboxActionApplier
from tests.unit.fakes_mail import DEFAULT_DATE, FakeImapServer, FakeImapSession, mime

SEEN = "\\Seen"
ALL_MAIL = "[Gmail]/All Mail"
GMAIL_TRASH = "[Gmail]/Trash"


def server(*, archive: bool = True, trash: bool = True, **options: bool) -> FakeImapServer:
    box = FakeImapServer(**options)
    box.add_folder("Sent", special_use="\\Sent")
    if archive:
        box.add_folder("Archive", special_use="\\Archive")
    if trash:
        box.add_folder("Trash", special_use="\\Trash")
    return box


def gmail_server() -> FakeImapServer:
    box = FakeImapServer(gmail=True)
    box.add_folder(ALL_MAIL, special_use="\\All")
    box.add_folder("[Gmail]/Sent Mail", special_use="\\Sent")
    box.add_folder(GMAIL_TRASH, special_use="\\Trash")
    return box


def deliver(box: FakeImapServer, n: int, *folders: str, flags: Sequence[str] = ()) -> list[int]:
    """The same message in each folder (a copy per folder, as on a non-Gmail server)."""
    raw = mime(message_id=f"m{n}@example.com", subject=f"Hello {n}")
    return [box.append(folder, raw, flags=flags) for folder in folders]


def deliver_gmail(box: FakeImapServer, n: int, labels: Sequence[str]) -> dict[str, int]:
    """A Gmail message: always in All Mail, in INBOX when labelled \\Inbox."""
    raw = mime(message_id=f"m{n}@example.com", subject=f"Hello {n}")
    folders = [ALL_MAIL, *(["INBOX"] if "\\Inbox" in labels else [])]
    return {
        folder: box.append(folder, raw, gm_msgid=1000 + n, gm_thrid=77, gm_labels=labels)
        for folder in folders
    }


def stored(
    box: FakeImapServer, key: str, where: dict[str, int], gm_labels: Sequence[str] = ()
) -> StoredMessage:
    """The message as the CRM synced it: a location per folder with today's UIDVALIDITY."""
    roles = folder_roles(f.info() for f in box.folders.values())
    locations = [
        MessageLocation(
            folder=name,
            folder_id=folder_id(name),
            uidvalidity=box.folders[name].uidvalidity,
            uid=uid,
            role=roles[name],
        )
        for name, uid in where.items()
    ]
    return StoredMessage(
        id=key,
        thread_id="t1",
        account_id="a1",
        company_id="c1",
        owner_user_id="u1",
        date=DEFAULT_DATE,
        raw_key=f"raw/{key}",
        locations=locations,
        gm_labels=list(gm_labels),
    )


def action(op: ActionOp, messages: Sequence[StoredMessage]) -> MailboxAction:
    return MailboxAction(
        id=f"act-{op}",
        company_id="c1",
        account_id="a1",
        thread_id="t1",
        op=op,
        message_keys=[m.id for m in messages],
        created_at=DEFAULT_DATE,
    )


def apply(
    box: FakeImapServer, op: ActionOp, messages: Sequence[StoredMessage]
) -> tuple[FakeImapSession, int, int, str | None]:
    """Apply on a fresh session: (session, changed, missing, skipped_reason)."""
    session = FakeImapSession(box)
    folders = [f.info() for f in box.folders.values()]
    result = MailboxActionApplier().apply(session, action(op, messages), messages, folders)
    assert (result.action_id, result.op) == (f"act-{op}", op)
    return session, result.changed, result.missing, result.skipped_reason


def flags(box: FakeImapServer, folder: str) -> dict[int, list[str]]:
    return {uid: sorted(m.flags) for uid, m in box.folders[folder].messages.items()}


def message_ids(box: FakeImapServer, folder: str) -> list[str]:
    """The Message-IDs in a folder, "m1" for <m1@example.com>, sorted."""
    return sorted(
        line.split(b"<")[1].split(b"@")[0].decode()
        for m in box.folders[folder].messages.values()
        for line in m.raw.split(b"\r\n")
        if line.startswith(b"Message-ID:")
    )


# -- read / unread ---------------------------------------------------------------------------
def test_read_sets_seen_on_every_copy_with_one_store_per_folder() -> None:
    box = server()
    first = deliver(box, 1, "INBOX", "Archive")
    second = deliver(box, 2, "INBOX", flags=["\\Flagged"])
    messages = [
        stored(box, "k1", {"INBOX": first[0], "Archive": first[1]}),
        stored(box, "k2", {"INBOX": second[0]}),
    ]

    session, changed, missing, skipped = apply(box, "read", messages)

    assert (changed, missing, skipped) == (2, 0, None)
    assert flags(box, "INBOX") == {first[0]: [SEEN], second[0]: ["\\Flagged", SEEN]}
    assert flags(box, "Archive") == {first[1]: [SEEN]}
    # QRESYNC server: ENABLE before the first SELECT, then per folder SELECT+SEARCH+STORE.
    assert session.calls == [
        "ENABLE",
        "SELECT",
        "SEARCH",
        "STORE +FLAGS",
        "SELECT",
        "SEARCH",
        "STORE +FLAGS",
    ]
    assert session.commands_sent == 2 + 7


def test_unread_clears_seen_and_keeps_other_flags() -> None:
    box = server(qresync=False)
    [uid] = deliver(box, 1, "INBOX", flags=[SEEN, "$Customer"])
    modseq = box.folders["INBOX"].messages[uid].modseq

    session, changed, missing, _ = apply(box, "unread", [stored(box, "k1", {"INBOX": uid})])

    assert (changed, missing) == (1, 0)
    assert flags(box, "INBOX") == {uid: ["$Customer"]}
    assert box.folders["INBOX"].messages[uid].modseq > modseq  # CONDSTORE sees the change
    assert session.calls == ["SELECT", "SEARCH", "STORE -FLAGS"]


def test_reading_twice_changes_nothing_the_second_time() -> None:
    box = server()
    [uid] = deliver(box, 1, "INBOX")
    message = stored(box, "k1", {"INBOX": uid})
    apply(box, "read", [message])
    modseq = box.folders["INBOX"].highestmodseq

    _, changed, missing, _ = apply(box, "read", [message])

    assert (changed, missing) == (1, 0)  # still there: the STORE is sent again, harmless
    assert flags(box, "INBOX") == {uid: [SEEN]}
    assert box.folders["INBOX"].highestmodseq == modseq


# -- archive / unarchive ---------------------------------------------------------------------
def test_archive_moves_inbox_copies_into_the_archive_folder() -> None:
    box = server()
    [one] = deliver(box, 1, "INBOX")
    [two] = deliver(box, 2, "INBOX")
    [sent] = deliver(box, 3, "Sent")
    messages = [
        stored(box, "k1", {"INBOX": one}),
        stored(box, "k2", {"INBOX": two}),
        stored(box, "k3", {"Sent": sent}),
    ]

    session, changed, missing, skipped = apply(box, "archive", messages)

    assert (changed, missing, skipped) == (2, 0, None)  # the sent message has nothing to do
    assert box.folders["INBOX"].messages == {}
    assert [uid for _, uid in box.folders["INBOX"].expunged] == [one, two]
    assert message_ids(box, "Archive") == ["m1", "m2"]
    assert sorted(box.folders["Archive"].messages) == [1, 2]  # new UIDs at UIDNEXT
    assert list(box.folders["Sent"].messages) == [sent]
    assert session.calls == ["ENABLE", "SELECT", "SEARCH", "MOVE"]


def test_archive_prefers_the_special_use_folder_over_a_name() -> None:
    box = server(archive=False)
    box.add_folder("Archives")  # an archive by its name only
    box.add_folder("Old/Archived", special_use="\\Archive")
    [uid] = deliver(box, 1, "INBOX")

    apply(box, "archive", [stored(box, "k1", {"INBOX": uid})])

    assert box.folders["Archives"].messages == {}
    assert len(box.folders["Old/Archived"].messages) == 1


def test_archive_by_folder_name_when_the_server_has_no_special_use() -> None:
    box = server(archive=False)
    box.add_folder("Archiv")
    [uid] = deliver(box, 1, "INBOX")

    _, changed, _, _ = apply(box, "archive", [stored(box, "k1", {"INBOX": uid})])

    assert changed == 1
    assert len(box.folders["Archiv"].messages) == 1


def test_archive_without_an_archive_folder_is_skipped() -> None:
    box = server(archive=False)
    [uid] = deliver(box, 1, "INBOX")

    session, changed, missing, skipped = apply(box, "archive", [stored(box, "k1", {"INBOX": uid})])

    assert skipped == NO_ARCHIVE
    assert (changed, missing) == (0, 0)
    assert list(box.folders["INBOX"].messages) == [uid]
    assert session.calls == []


def test_archiving_twice_finds_the_inbox_copy_gone_and_moves_nothing_more() -> None:
    box = server()
    [uid] = deliver(box, 1, "INBOX")
    message = stored(box, "k1", {"INBOX": uid})  # the CRM has not synced the move yet
    apply(box, "archive", [message])

    session, changed, missing, _ = apply(box, "archive", [message])

    assert (changed, missing) == (0, 1)
    assert len(box.folders["Archive"].messages) == 1
    assert "MOVE" not in session.calls


def test_unarchive_moves_archived_messages_back_to_the_inbox() -> None:
    box = server()
    [archived] = deliver(box, 1, "Archive")
    in_both = deliver(box, 2, "INBOX", "Archive")
    messages = [
        stored(box, "k1", {"Archive": archived}),
        stored(box, "k2", {"INBOX": in_both[0], "Archive": in_both[1]}),
    ]

    session, changed, missing, _ = apply(box, "unarchive", messages)

    assert (changed, missing) == (1, 0)  # k2 is in the inbox already
    assert message_ids(box, "INBOX") == ["m1", "m2"]
    assert list(box.folders["Archive"].messages) == [in_both[1]]
    assert session.calls == ["ENABLE", "SELECT", "SEARCH", "MOVE"]


def test_unarchive_moves_one_copy_the_special_use_folders_first() -> None:
    box = server()
    box.add_folder("Archives")
    uids = deliver(box, 1, "Archives", "Archive")
    message = stored(box, "k1", {"Archives": uids[0], "Archive": uids[1]})

    _, changed, _, _ = apply(box, "unarchive", [message])

    assert changed == 1
    assert len(box.folders["INBOX"].messages) == 1
    assert box.folders["Archive"].messages == {}
    assert list(box.folders["Archives"].messages) == [uids[0]]


# -- delete ----------------------------------------------------------------------------------
def test_delete_moves_every_copy_outside_the_trash_into_it() -> None:
    box = server()
    both = deliver(box, 1, "INBOX", "Archive")
    [trashed] = deliver(box, 2, "Trash")
    messages = [
        stored(box, "k1", {"INBOX": both[0], "Archive": both[1]}),
        stored(box, "k2", {"Trash": trashed}),
    ]

    session, changed, missing, _ = apply(box, "delete", messages)

    assert (changed, missing) == (1, 0)
    assert box.folders["INBOX"].messages == {}
    assert box.folders["Archive"].messages == {}
    assert message_ids(box, "Trash") == ["m1", "m1", "m2"]
    assert session.calls.count("MOVE") == 2  # one per folder


def test_delete_without_a_trash_folder_is_skipped() -> None:
    box = server(trash=False)
    [uid] = deliver(box, 1, "INBOX")

    session, changed, missing, skipped = apply(box, "delete", [stored(box, "k1", {"INBOX": uid})])

    assert skipped == NO_TRASH
    assert (changed, missing) == (0, 0)
    assert list(box.folders["INBOX"].messages) == [uid]
    assert session.calls == []


def test_deleting_twice_is_harmless() -> None:
    box = server()
    [uid] = deliver(box, 1, "INBOX")
    message = stored(box, "k1", {"INBOX": uid})
    apply(box, "delete", [message])

    _, changed, missing, _ = apply(box, "delete", [message])

    assert (changed, missing) == (0, 1)
    assert len(box.folders["Trash"].messages) == 1


# -- UIDs that are gone ----------------------------------------------------------------------
def test_expunged_uids_count_as_missing_and_the_rest_is_changed() -> None:
    box = server()
    [gone] = deliver(box, 1, "INBOX")
    [kept] = deliver(box, 2, "INBOX")
    messages = [stored(box, "k1", {"INBOX": gone}), stored(box, "k2", {"INBOX": kept})]
    box.expunge("INBOX", gone)  # another mail client deleted it meanwhile

    _, changed, missing, _ = apply(box, "archive", messages)

    assert (changed, missing) == (1, 1)
    assert message_ids(box, "Archive") == ["m2"]


def test_a_message_counts_as_changed_when_one_of_its_copies_is_found() -> None:
    box = server()
    both = deliver(box, 1, "INBOX", "Archive")
    message = stored(box, "k1", {"INBOX": both[0], "Archive": both[1]})
    box.expunge("Archive", both[1])

    _, changed, missing, _ = apply(box, "read", [message])

    assert (changed, missing) == (1, 0)


def test_when_nothing_is_left_no_store_is_sent() -> None:
    box = server()
    [one, two] = [deliver(box, n, "INBOX")[0] for n in (1, 2)]
    message = stored(box, "k1", {"INBOX": one})
    box.expunge("INBOX", one)

    session, changed, missing, _ = apply(box, "read", [message])

    assert (changed, missing) == (0, 1)
    assert session.calls == ["ENABLE", "SELECT", "SEARCH"]
    assert flags(box, "INBOX") == {two: []}


def test_uids_of_another_uidvalidity_are_left_alone() -> None:
    box = server()
    [uid] = deliver(box, 1, "INBOX")
    message = stored(box, "k1", {"INBOX": uid})
    box.reset_uidvalidity("INBOX")  # the same UID now may name another message

    session, changed, missing, _ = apply(box, "delete", [message])

    assert (changed, missing) == (0, 1)
    assert len(box.folders["INBOX"].messages) == 1
    assert box.folders["Trash"].messages == {}
    assert session.calls == ["ENABLE", "SELECT"]  # no SEARCH for a stale generation


def test_a_folder_the_server_no_longer_lists_gets_no_command() -> None:
    box = server()
    box.add_folder("Projects")
    [uid] = deliver(box, 1, "Projects")
    message = stored(box, "k1", {"Projects": uid})
    del box.folders["Projects"]

    session, changed, missing, _ = apply(box, "read", [message])

    assert (changed, missing) == (0, 1)
    assert session.calls == []


def test_locations_without_a_known_uid_are_ignored() -> None:
    box = server()
    [uid] = deliver(box, 1, "INBOX")
    message = stored(box, "k1", {"INBOX": uid})
    message.locations = [message.locations[0].model_copy(update={"uid": 0})]

    session, changed, missing, _ = apply(box, "read", [message])

    assert (changed, missing) == (0, 0)
    assert session.calls == []


def test_messages_not_named_by_the_action_are_not_touched() -> None:
    box = server()
    [one] = deliver(box, 1, "INBOX")
    [later] = deliver(box, 2, "INBOX")  # arrived after the user clicked
    named = stored(box, "k1", {"INBOX": one})
    session = FakeImapSession(box)
    folders = [f.info() for f in box.folders.values()]

    result = MailboxActionApplier().apply(
        session, action("archive", [named]), [named, stored(box, "k2", {"INBOX": later})], folders
    )

    assert (result.changed, result.missing) == (1, 0)
    assert list(box.folders["INBOX"].messages) == [later]


# -- servers without MOVE ---------------------------------------------------------------------
def test_without_move_copy_flag_and_expunge_exactly_these_uids() -> None:
    box = server(has_move=False)
    [uid] = deliver(box, 1, "INBOX")
    [other] = deliver(box, 2, "INBOX", flags=["\\Deleted"])  # the user's, not ours to expunge

    session, changed, _, _ = apply(box, "archive", [stored(box, "k1", {"INBOX": uid})])

    assert changed == 1
    assert list(box.folders["INBOX"].messages) == [other]
    assert message_ids(box, "Archive") == ["m1"]
    assert session.calls == ["ENABLE", "SELECT", "SEARCH", "COPY", "STORE +FLAGS", "EXPUNGE"]


def test_without_move_and_uidplus_the_original_stays_flagged_deleted() -> None:
    box = server(has_move=False, uidplus=False)
    [uid] = deliver(box, 1, "INBOX")

    session, changed, _, _ = apply(box, "delete", [stored(box, "k1", {"INBOX": uid})])

    assert changed == 1
    assert flags(box, "INBOX") == {uid: ["\\Deleted"]}
    assert len(box.folders["Trash"].messages) == 1
    assert "EXPUNGE" not in session.calls


# -- Gmail -----------------------------------------------------------------------------------
def test_gmail_archive_removes_the_inbox_label_on_the_all_mail_copy() -> None:
    box = gmail_server()
    where = deliver_gmail(box, 1, ["\\Inbox", "Customers"])
    message = stored(box, "k1", where, gm_labels=["\\Inbox", "Customers"])

    session, changed, missing, skipped = apply(box, "archive", [message])

    assert (changed, missing, skipped) == (1, 0, None)
    [copy] = box.folders[ALL_MAIL].messages.values()
    assert copy.gm_labels == ["Customers"]
    assert box.folders["INBOX"].messages == {}  # Gmail takes it out of INBOX
    assert session.calls == ["ENABLE", "SELECT", "SEARCH", "STORE -X-GM-LABELS"]


def test_gmail_archive_with_only_the_inbox_synced_uses_the_inbox_copy() -> None:
    box = gmail_server()
    where = deliver_gmail(box, 1, ["\\Inbox"])
    message = stored(box, "k1", {"INBOX": where["INBOX"]})

    _, changed, _, _ = apply(box, "archive", [message])

    assert changed == 1
    assert box.folders["INBOX"].messages == {}
    assert [m.gm_labels for m in box.folders[ALL_MAIL].messages.values()] == [[]]


def test_gmail_archive_needs_no_archive_folder_and_skips_archived_mail() -> None:
    box = gmail_server()
    where = deliver_gmail(box, 1, ["Customers"])
    message = stored(box, "k1", where, gm_labels=["Customers"])

    session, changed, missing, skipped = apply(box, "archive", [message])

    assert (changed, missing, skipped) == (0, 0, None)
    assert session.calls == []


def test_gmail_unarchive_adds_the_inbox_label() -> None:
    box = gmail_server()
    where = deliver_gmail(box, 1, ["Customers"])
    message = stored(box, "k1", where, gm_labels=["Customers"])

    session, changed, _, _ = apply(box, "unarchive", [message])

    assert changed == 1
    [copy] = box.folders[ALL_MAIL].messages.values()
    assert copy.gm_labels == ["Customers", "\\Inbox"]
    assert len(box.folders["INBOX"].messages) == 1
    assert session.calls == ["ENABLE", "SELECT", "SEARCH", "STORE +X-GM-LABELS"]


def test_gmail_delete_moves_the_all_mail_copy_alone() -> None:
    box = gmail_server()
    where = deliver_gmail(box, 1, ["\\Inbox"])
    message = stored(box, "k1", where, gm_labels=["\\Inbox"])

    session, changed, missing, _ = apply(box, "delete", [message])

    assert (changed, missing) == (1, 0)
    assert session.calls.count("MOVE") == 1
    assert box.folders["INBOX"].messages == {}
    assert box.folders[ALL_MAIL].messages == {}
    assert len(box.folders[GMAIL_TRASH].messages) == 1


def test_gmail_archive_twice_is_harmless() -> None:
    box = gmail_server()
    where = deliver_gmail(box, 1, ["\\Inbox"])
    message = stored(box, "k1", where, gm_labels=["\\Inbox"])
    apply(box, "archive", [message])
    modseq = box.folders[ALL_MAIL].highestmodseq

    _, changed, missing, _ = apply(box, "archive", [message])

    assert (changed, missing) == (1, 0)  # All Mail still has it: the label is simply absent
    assert box.folders[ALL_MAIL].highestmodseq == modseq
    assert box.folders["INBOX"].messages == {}


# -- the session ------------------------------------------------------------------------------
def test_writes_leave_no_folder_selected_for_reads() -> None:
    box = server()
    [uid] = deliver(box, 1, "INBOX")
    session = FakeImapSession(box)
    session.select("INBOX")
    uidvalidity = box.folders["INBOX"].uidvalidity

    assert session.store_flags("INBOX", uidvalidity, [uid], [SEEN], []) == [uid]

    with pytest.raises(RuntimeError, match="select"):
        session.fetch_messages([uid])
    session.select("INBOX")
    assert session.calls[-1] == "EXAMINE"
    assert [m.flags for m in session.fetch_messages([uid])] == [[SEEN]]


def test_gmail_labels_on_another_server_are_a_programming_error() -> None:
    box = server()
    with pytest.raises(RuntimeError, match="X-GM-EXT-1"):
        FakeImapSession(box).store_gmail_labels("INBOX", 1, [1], ["\\Inbox"], [])


def test_a_server_failure_propagates() -> None:
    box = server()
    [uid] = deliver(box, 1, "INBOX")
    session = FakeImapSession(box)
    session.hung_up = True
    folders = [f.info() for f in box.folders.values()]
    message = stored(box, "k1", {"INBOX": uid})

    with pytest.raises(MailServerError):
        MailboxActionApplier().apply(session, action("read", [message]), [message], folders)


# -- what the real session sends ---------------------------------------------------------------
def test_flags_go_out_as_atoms_and_anything_else_is_refused() -> None:
    assert flag_list([SEEN, "$Customer", "\\Deleted"]) == "(\\Seen $Customer \\Deleted)"
    for bad in ["", "two words", "a)b", "\\", 'q"uote', "wild*", "line\r\n", "Müller"]:
        with pytest.raises(ValueError, match="not an IMAP flag"):
            flag_list([bad])


def test_gmail_labels_go_out_as_system_atoms_or_quoted_modified_utf7() -> None:
    labels = ["\\Inbox", "Kunden/Müller", 'say "hi"', "back\\slash"]
    assert label_list(labels) == '(\\Inbox "Kunden/M&APw-ller" "say \\"hi\\"" "back\\\\slash")'
    with pytest.raises(ValueError, match="not a Gmail label"):
        label_list(["line\r\nbreak"])
