"""The CRM's mailbox actions done on the mail server (SPEC S9): read, unread, archive,
unarchive and delete a thread's messages where the server has them.

Pure domain code over an ImapSession: the caller loads the action, the messages it names and
the server's folder list, and decides what to do with the result. The UIDs are those the
CRM last synced, so a message moved or deleted on the server meanwhile is not found again:
it counts as missing, never as an error, and applying an action twice changes nothing more.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from crmsync.mail.folders import folder_role
from crmsync.models.actions import ActionResult, MailboxAction
from crmsync.models.imap import ImapSession
from crmsync.models.mail import FolderRole, MessageLocation, StoredMessage
from crmsync.ports import FolderInfo

SEEN = "\\Seen"
GMAIL_INBOX = "\\Inbox"
NO_ARCHIVE = "no archive folder on the server"
NO_TRASH = "no trash folder on the server"
_UNSELECTABLE = {"\\noselect", "\\nonexistent"}
# Where a Gmail message gets its \Inbox label back: its All Mail copy first (the labels live
# there), else any copy outside the trash and spam.
GMAIL_COPIES: tuple[FolderRole, ...] = ("all", "archive", "other", "sent", "drafts")


@dataclass
class _Group:
    """The UIDs of one folder under one UIDVALIDITY: one command on the server."""

    folder: str
    uidvalidity: int
    uids: list[int] = field(default_factory=list)


Command = Callable[[_Group], list[int]]
"""Runs one group's command; returns the UIDs the folder still had."""


class MailboxActionApplier:
    """Applies one MailboxAction with as few commands as possible: per op, one command (or
    one STORE per direction) per folder and UIDVALIDITY, whatever the number of messages."""

    def apply(
        self,
        session: ImapSession,
        action: MailboxAction,
        messages: Sequence[StoredMessage],
        folders: Sequence[FolderInfo],
    ) -> ActionResult:
        """`messages` are the stored messages of `action.message_keys` (others are ignored);
        `folders` the server's folder list. Server failures raise MailServerError."""
        keys = set(action.message_keys)
        chosen = list({m.id: m for m in messages if m.id in keys}.values())
        plan = _Plan(folders, gmail=session.gmail)
        result = ActionResult(action_id=action.id, op=action.op)
        if action.op in ("read", "unread"):
            add, remove = ([SEEN], []) if action.op == "read" else ([], [SEEN])
            targets = {m.id: plan.existing(m.locations) for m in chosen}
            return plan.run(result, targets, lambda g: session.store_flags(*_at(g), add, remove))
        if action.op == "archive":
            return self._archive(session, plan, chosen, result)
        if action.op == "unarchive":
            return self._unarchive(session, plan, chosen, result)
        return self._delete(session, plan, chosen, result)

    def _archive(
        self,
        session: ImapSession,
        plan: _Plan,
        messages: list[StoredMessage],
        result: ActionResult,
    ) -> ActionResult:
        """Out of the inbox: into the archive folder, or on Gmail without the \\Inbox label
        (set on the All Mail copy when the CRM knows it: that is where the labels live)."""
        if plan.gmail:
            targets = {
                m.id: plan.preferred(m.locations, ("all", "inbox"))
                for m in messages
                if plan.in_inbox(m)
            }
            return plan.run(
                result,
                targets,
                lambda g: session.store_gmail_labels(*_at(g), [], [GMAIL_INBOX]),
            )
        archive = plan.folder_for("archive")
        if archive is None:
            return result.model_copy(update={"skipped_reason": NO_ARCHIVE})
        targets = {m.id: plan.with_role(m.locations, "inbox") for m in messages}
        return plan.run(result, targets, lambda g: session.move(*_at(g), archive))

    def _unarchive(
        self,
        session: ImapSession,
        plan: _Plan,
        messages: list[StoredMessage],
        result: ActionResult,
    ) -> ActionResult:
        """Back into the inbox: messages archived and not in the inbox any more. One copy per
        message moves (the archive folder's first), so the inbox never gets two."""
        outside = [m for m in messages if not plan.in_inbox(m)]
        if plan.gmail:
            labelled = {m.id: plan.preferred(m.locations, GMAIL_COPIES) for m in outside}
            return plan.run(
                result,
                labelled,
                lambda g: session.store_gmail_labels(*_at(g), [GMAIL_INBOX], []),
            )
        inbox = plan.folder_for("inbox") or "INBOX"
        archive = plan.folder_for("archive")
        targets: dict[str, list[MessageLocation]] = {}
        for message in outside:
            archived = plan.with_role(message.locations, "archive")
            archived.sort(key=lambda loc: loc.folder != archive)
            targets[message.id] = archived[:1]
        return plan.run(result, targets, lambda g: session.move(*_at(g), inbox))

    def _delete(
        self,
        session: ImapSession,
        plan: _Plan,
        messages: list[StoredMessage],
        result: ActionResult,
    ) -> ActionResult:
        """Into the trash folder from every folder that has the message. On Gmail a move
        from All Mail to the trash removes every label, so that copy alone moves when the CRM
        knows it."""
        trash = plan.folder_for("trash")
        if trash is None:
            return result.model_copy(update={"skipped_reason": NO_TRASH})
        targets: dict[str, list[MessageLocation]] = {}
        for message in messages:
            outside = [loc for loc in plan.existing(message.locations) if plan.role(loc) != "trash"]
            every_label = plan.with_role(outside, "all") if plan.gmail else []
            targets[message.id] = every_label[:1] or outside
        return plan.run(result, targets, lambda g: session.move(*_at(g), trash))


class _Plan:
    """The server's folders and their roles, and which of a message's locations count."""

    def __init__(self, folders: Sequence[FolderInfo], *, gmail: bool) -> None:
        self.gmail = gmail
        self._folders = [f for f in folders if not _unselectable(f)]
        self._roles: dict[str, FolderRole] = {f.name: folder_role(f) for f in self._folders}

    def folder_for(self, role: FolderRole) -> str | None:
        """The folder for this role: flagged with its special use (RFC 6154) first, then
        named for it, in the server's order."""
        found = [f for f in self._folders if self._roles[f.name] == role]
        flagged = [f for f in found if _flagged(f, role)]
        return (flagged or found)[0].name if found else None

    def role(self, location: MessageLocation) -> FolderRole | None:
        """From the server's current folder list; None when the folder is gone."""
        return self._roles.get(location.folder)

    def existing(self, locations: Sequence[MessageLocation]) -> list[MessageLocation]:
        """Locations with a known UIDVALIDITY and UID. A folder that is gone is kept: it has
        no UID to find, so the location counts as missing without a command."""
        return [loc for loc in locations if loc.uid > 0 and loc.uidvalidity > 0]

    def with_role(
        self, locations: Sequence[MessageLocation], role: FolderRole
    ) -> list[MessageLocation]:
        return [loc for loc in self.existing(locations) if self.role(loc) == role]

    def preferred(
        self, locations: Sequence[MessageLocation], roles: Sequence[FolderRole]
    ) -> list[MessageLocation]:
        """The one location of the first role in `roles` the message has (Gmail labels belong
        to the message, so one copy is enough)."""
        for role in roles:
            found = self.with_role(locations, role)
            if found:
                return found[:1]
        return []

    def in_inbox(self, message: StoredMessage) -> bool:
        """In the inbox: a copy in INBOX, or on Gmail the \\Inbox label on the All Mail copy."""
        return any(
            self.role(loc) == "inbox"
            or (self.gmail and self.role(loc) == "all" and GMAIL_INBOX in message.gm_labels)
            for loc in self.existing(message.locations)
        )

    def run(
        self, result: ActionResult, targets: dict[str, list[MessageLocation]], command: Command
    ) -> ActionResult:
        """One command per folder and UIDVALIDITY; then per message: changed when a copy was
        found, missing when none was. A folder the server no longer lists gets no command
        (its copies are missing); a message with nothing to do counts as neither."""
        groups: dict[tuple[str, int], _Group] = {}
        for locations in targets.values():
            for loc in locations:
                if loc.folder in self._roles:
                    key = (loc.folder, loc.uidvalidity)
                    group = groups.setdefault(key, _Group(loc.folder, loc.uidvalidity))
                    group.uids.append(loc.uid)
        found: set[tuple[str, int, int]] = set()
        for (folder, uidvalidity), group in groups.items():
            found.update((folder, uidvalidity, uid) for uid in command(group))
        acted = [locations for locations in targets.values() if locations]
        changed = sum(
            any((loc.folder, loc.uidvalidity, loc.uid) in found for loc in locations)
            for locations in acted
        )
        return result.model_copy(update={"changed": changed, "missing": len(acted) - changed})


def _at(group: _Group) -> tuple[str, int, list[int]]:
    return group.folder, group.uidvalidity, sorted(set(group.uids))


def _flagged(folder: FolderInfo, role: FolderRole) -> bool:
    flags = [folder.special_use, *folder.flags]
    return any(flag is not None and flag.lower() == f"\\{role}" for flag in flags)


def _unselectable(folder: FolderInfo) -> bool:
    return any(flag.lower() in _UNSELECTABLE for flag in folder.flags)
