"""What a folder is for (SPEC I1, S9): the inbox, sent mail, the archive, the trash…

The RFC 6154 special-use flag decides where the server gives one; otherwise the name does
(INBOX is the inbox on every server, RFC 3501; the other names are the ones mail apps and
providers create when they do not advertise special-use).
"""

from __future__ import annotations

from collections.abc import Iterable

from crmsync.models.mail import FolderRole
from crmsync.ports import FolderInfo

_BY_FLAG: dict[str, FolderRole] = {
    "\\sent": "sent",
    "\\archive": "archive",
    "\\trash": "trash",
    "\\junk": "junk",
    "\\drafts": "drafts",
    "\\all": "all",
}
_BY_NAME: dict[str, FolderRole] = {
    "sent": "sent",
    "sent items": "sent",
    "sent messages": "sent",
    "sent mail": "sent",
    "gesendet": "sent",
    "gesendete elemente": "sent",
    "archive": "archive",
    "archives": "archive",
    "archiv": "archive",
    "trash": "trash",
    "deleted items": "trash",
    "deleted messages": "trash",
    "papierkorb": "trash",
    "junk": "junk",
    "spam": "junk",
    "junk e-mail": "junk",
    "drafts": "drafts",
    "entwürfe": "drafts",
}


def folder_role(folder: FolderInfo) -> FolderRole:
    if folder.name.upper() == "INBOX":
        return "inbox"
    for flag in [folder.special_use, *folder.flags]:
        if flag and flag.lower() in _BY_FLAG:
            return _BY_FLAG[flag.lower()]
    leaf = folder.name.rsplit(folder.delimiter, 1)[-1] if folder.delimiter else folder.name
    return _BY_NAME.get(leaf.strip().lower(), "other")


def folder_roles(folders: Iterable[FolderInfo]) -> dict[str, FolderRole]:
    return {folder.name: folder_role(folder) for folder in folders}
