"""The sync's IMAP session over one logged-in imapclient connection (models.imap.ImapSession).

Everything here runs inside ImapConnector.session's block, which turns library and socket
failures into MailServerError; so malformed answers raise imapclient's ProtocolError (an
imaplib error) and never a bare ValueError that would escape that translation.

Counting commands: `commands_sent` is imaplib's tag counter, which every tagged command on
the connection advances (imaplib's own commands and imapclient's raw ones draw their tags
from the same `_new_tag`). It includes what the connector sent before the session existed:
the CAPABILITY imaplib sends right after the greeting, STARTTLS when configured, and LOGIN.
Servers that put `[CAPABILITY ...]` in the LOGIN answer (Dovecot, Gmail, most others) cost
no second CAPABILITY; a server that does not gets one, and it is counted.

Some of imapclient's API cannot express what the sync needs, so a few methods talk to its
imaplib object directly (`_imap`): QRESYNC's EXAMINE parameter, and FETCH answers parsed
by UID only (imapclient keys unsolicited FETCH responses without a UID by sequence number,
which would mix another message's flags into a UID's entry).

Writes (the CRM's mailbox actions, SPEC S9) SELECT their folder read-write and leave no
folder selected for reads: search and fetch need a select() again, which EXAMINEs, so the
sync never reads from a read-write folder (where a fetch could set \\Seen or claim \\Recent).
"""

from __future__ import annotations

import imaplib
import re
from collections.abc import Iterable
from datetime import UTC, date, datetime
from typing import Any

from imapclient import IMAPClient, imap_utf7
from imapclient.datetime_util import parse_to_datetime
from imapclient.exceptions import ProtocolError
from imapclient.response_parser import gen_parsed_response, parse_message_list

from crmsync.mail.connect import folder_info
from crmsync.models.imap import FetchedMessage, FolderStatus, KnownFolderState, SelectedFolder
from crmsync.ports import FolderInfo

STATUS_ITEMS = ("MESSAGES", "UIDNEXT", "UIDVALIDITY")
MESSAGE_ITEMS = ("UID", "BODY.PEEK[]", "FLAGS", "INTERNALDATE")
GMAIL_ITEMS = ("X-GM-MSGID", "X-GM-THRID", "X-GM-LABELS")
_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
_SEQUENCE_SET = re.compile(r"\d+(?::\d+)?(?:,\d+(?::\d+)?)*")
_APPENDUID = re.compile(r"\[APPENDUID (\d+) (\d+)\]", re.IGNORECASE)
_EARLIER = re.compile(rb"\(EARLIER\)\s*", re.IGNORECASE)
# A flag is an atom (RFC 3501 ATOM-CHAR: printable ASCII but SP ( ) { % * " \ ]), with a
# backslash only as a system flag's prefix.
_FLAG = re.compile(r"\\?[!#$&\'+,\-./0-9:;<=>?@A-Z\[^_`a-z|}~]+")
_SYSTEM_LABEL = re.compile(r"\\[A-Za-z]+")


class ImapClientSession:
    """ImapSession on a logged-in IMAPClient; owns the connection's selected-folder state."""

    def __init__(self, client: IMAPClient) -> None:
        self._client = client
        # From LOGIN's [CAPABILITY ...] answer when the server sent one (then no command).
        self._capabilities = frozenset(_text(c).upper() for c in client.capabilities())
        # QRESYNC needs ENABLE (RFC 7162), which is only legal before a folder is selected.
        self._qresync_usable = "QRESYNC" in self._capabilities and "ENABLE" in self._capabilities
        self._qresync_enabled = False
        self._selected: SelectedFolder | None = None

    # -- what the server offers -------------------------------------------------------------
    @property
    def capabilities(self) -> frozenset[str]:
        return self._capabilities

    @property
    def condstore(self) -> bool:
        return not self._capabilities.isdisjoint({"CONDSTORE", "QRESYNC"})  # QRESYNC implies it

    @property
    def qresync(self) -> bool:
        """Advertised, and not refused by ENABLE (then select reports no VANISHED either)."""
        return self._qresync_usable

    @property
    def gmail(self) -> bool:
        return "X-GM-EXT-1" in self._capabilities

    @property
    def commands_sent(self) -> int:
        """Tagged commands on this connection so far, the connector's CAPABILITY, STARTTLS
        and LOGIN included (imaplib's tag counter; see the module docstring)."""
        return int(self._imap.tagnum)

    @property
    def _imap(self) -> Any:
        return self._client._imap

    # -- folders -----------------------------------------------------------------------------
    def list_folders(self) -> list[FolderInfo]:
        return [folder_info(*entry) for entry in self._client.list_folders()]

    def list_status(self) -> list[tuple[FolderInfo, FolderStatus | None]] | None:
        """Every folder and its status in ONE command (RFC 5819 LIST-STATUS), or None when
        the server lacks the extension. Folders that cannot be selected have no status."""
        if "LIST-STATUS" not in self.capabilities:
            return None
        items = (*STATUS_ITEMS, "HIGHESTMODSEQ") if self.condstore else STATUS_ITEMS
        imap = self._imap
        imap.untagged_responses.pop("LIST", None)
        imap.untagged_responses.pop("STATUS", None)
        typ, data = imap._simple_command(
            "LIST", '""', '"*"', "RETURN", f"(SPECIAL-USE STATUS ({' '.join(items)}))"
        )
        if typ != "OK":
            raise imaplib.IMAP4.error(f"LIST-STATUS failed: {data!r}")
        listed = imap.untagged_responses.pop("LIST", [])
        statuses: dict[str, FolderStatus] = {}
        for line in imap.untagged_responses.pop("STATUS", []):
            if not line:
                continue
            name_raw, values_raw = gen_parsed_response_pair(line)
            name = imap_utf7.decode(name_raw) if isinstance(name_raw, bytes) else str(name_raw)
            values = {_text(key).upper(): value for key, value in _pairs(values_raw)}
            modseq = values.get("HIGHESTMODSEQ")
            statuses[name] = FolderStatus(
                name=name,
                uidvalidity=_required_int(values, "UIDVALIDITY"),
                uidnext=_required_int(values, "UIDNEXT"),
                messages=_required_int(values, "MESSAGES"),
                highestmodseq=int(modseq) if modseq is not None and self.condstore else None,
            )
        folders = [folder_info(*entry) for entry in self._client._proc_folder_list(listed)]
        return [(folder, statuses.get(folder.name)) for folder in folders]

    def status(self, folder: str) -> FolderStatus:
        """One STATUS; HIGHESTMODSEQ only where CONDSTORE makes it a valid item."""
        items = (*STATUS_ITEMS, "HIGHESTMODSEQ") if self.condstore else STATUS_ITEMS
        answer = self._client.folder_status(folder, items)
        values = {_text(key).upper(): value for key, value in answer.items()}
        modseq = values.get("HIGHESTMODSEQ")
        return FolderStatus(
            name=folder,
            uidvalidity=_required_int(values, "UIDVALIDITY"),
            uidnext=_required_int(values, "UIDNEXT"),
            messages=_required_int(values, "MESSAGES"),
            highestmodseq=int(modseq) if modseq is not None and self.condstore else None,
        )

    def select(self, folder: str, known: KnownFolderState | None = None) -> SelectedFolder:
        """EXAMINE, with QRESYNC's (uidvalidity modseq [uids]) parameter when `known` is
        given and the server has QRESYNC: one command that also returns what changed.
        Without QRESYNC `known` is ignored and both lists stay empty."""
        if self._qresync_usable and not self._qresync_enabled:
            self._enable_qresync()  # first select of the session: still in the AUTH state
        parameter = None
        if known is not None and self._qresync_usable:
            parameter = _qresync_parameter(known)
        responses = self._open_folder("EXAMINE", self._client._normalise_folder(folder), parameter)
        uidnext = _last_int(responses, "UIDNEXT")
        vanished: list[int] = []
        changed: dict[int, list[str]] = {}
        if parameter is not None:
            # After a UIDVALIDITY change the server ignores the parameter and sends neither.
            vanished = parse_vanished(responses.get("VANISHED", []), upper=uidnext - 1)
            changed = _flags(parse_fetch(responses.get("FETCH", [])))
        self._selected = SelectedFolder(
            name=folder,
            uidvalidity=_last_int(responses, "UIDVALIDITY"),
            uidnext=uidnext,
            exists=_last_int(responses, "EXISTS"),
            highestmodseq=_optional_int(responses, "HIGHESTMODSEQ"),
            vanished=vanished,
            changed_flags=changed,
        )
        return self._selected

    def _enable_qresync(self) -> None:
        enabled = {_text(name).upper() for name in self._client.enable("QRESYNC")}
        self._qresync_enabled = True
        self._qresync_usable = "QRESYNC" in enabled

    def _open_folder(
        self, command: str, quoted_folder: bytes, parameter: str | None = None
    ) -> dict[str, list[Any]]:
        """EXAMINE (or SELECT) as imaplib's select() does it, plus a parameter, reading the
        answer line by line: untagged data before `[CLOSED]` (RFC 7162) still belongs to
        the folder selected before, so it is dropped instead of mixed into this one's."""
        imap = self._imap
        self._selected = None  # a failed SELECT/EXAMINE leaves no folder selected (RFC 3501)
        imap.untagged_responses = {}
        # imaplib refuses later commands after [READ-ONLY] unless it asked for read-only.
        imap.is_readonly = command == "EXAMINE"
        tag = imap._command(command, quoted_folder, parameter)
        while imap.tagged_commands[tag] is None:
            imap._get_response()
            if "CLOSED" in imap.untagged_responses:
                imap.untagged_responses = {}
        typ, data = imap._command_complete(command, tag)
        if typ != "OK":
            imap.state = "AUTH"
            raise imaplib.IMAP4.error(f"{command} failed: {_text(data[0])}")
        imap.state = "SELECTED"
        responses: dict[str, list[Any]] = imap.untagged_responses
        imap.untagged_responses = {}
        if not imap.is_readonly and "READ-ONLY" in responses:
            imap.is_readonly = True
            raise imaplib.IMAP4.error(f"{command} opened the folder read-only: no changes allowed")
        return responses

    # -- messages ----------------------------------------------------------------------------
    def search_uids(
        self, *, min_uid: int = 1, max_uid: int | None = None, since: date | None = None
    ) -> list[int]:
        """UID SEARCH UID lo:hi [SINCE]; `lo:*` matches the last message even when its UID
        is below lo (`*` is the highest UID), so results are filtered to the range."""
        self._require_selected()
        low = max(min_uid, 1)
        if max_uid is not None and max_uid < low:
            return []
        criteria = [b"UID", f"{low}:{max_uid if max_uid is not None else '*'}".encode()]
        if since is not None:
            criteria += [b"SINCE", imap_date(since)]
        answer = self._client._raw_command_untagged(b"SEARCH", criteria, uid=True)
        try:
            found = [int(uid) for uid in parse_message_list(answer)]
        except ValueError as exc:
            raise ProtocolError(f"malformed SEARCH response: {answer!r:.80}") from exc
        top = max_uid if max_uid is not None else max(found, default=0)
        return sorted({uid for uid in found if low <= uid <= top})

    def fetch_messages(self, uids: list[int]) -> list[FetchedMessage]:
        """BODY.PEEK[] (no \\Seen), FLAGS, INTERNALDATE (+ Gmail's items), in UID order."""
        self._require_selected()
        wanted = sorted({uid for uid in uids if uid > 0})
        if not wanted:
            return []
        items = (*MESSAGE_ITEMS, *GMAIL_ITEMS) if self.gmail else MESSAGE_ITEMS
        fetched = self._uid_fetch(compress_uids(wanted), items)
        requested = set(wanted)
        return [
            message_from_fetch(uid, fetched[uid])
            for uid in sorted(fetched)
            if uid in requested and b"BODY[]" in fetched[uid]
        ]

    def changed_flags(self, since_modseq: int) -> dict[int, list[str]]:
        """UID FETCH 1:* (FLAGS) (CHANGEDSINCE n); nothing sent for an empty folder."""
        self._require_selected()
        if self._exists() == 0:
            return {}
        return _flags(self._uid_fetch("1:*", ("UID", "FLAGS"), f"(CHANGEDSINCE {since_modseq})"))

    def all_flags(self) -> dict[int, list[str]]:
        """UID FETCH 1:* (FLAGS); nothing sent for an empty folder (`1:*` is an error there
        on some servers)."""
        self._require_selected()
        if self._exists() == 0:
            return {}
        return _flags(self._uid_fetch("1:*", ("UID", "FLAGS")))

    # -- writes (SPEC S9) --------------------------------------------------------------------
    def store_flags(
        self, folder: str, uidvalidity: int, uids: list[int], add: list[str], remove: list[str]
    ) -> list[int]:
        """SELECT, UID SEARCH for the UIDs still there, one UID STORE per direction."""
        found = self._select_for_write(folder, uidvalidity, uids)
        if found:
            uid_set = compress_uids(found)
            if add:
                self._uid_command("STORE", uid_set, "+FLAGS.SILENT", flag_list(add))
            if remove:
                self._uid_command("STORE", uid_set, "-FLAGS.SILENT", flag_list(remove))
        return found

    def move(self, folder: str, uidvalidity: int, uids: list[int], target: str) -> list[int]:
        """SELECT, UID SEARCH, then UID MOVE; without MOVE: UID COPY, +FLAGS.SILENT
        (\\Deleted) and, with UIDPLUS, UID EXPUNGE of exactly these UIDs (a plain EXPUNGE
        would also remove what the user flagged \\Deleted elsewhere in the folder)."""
        found = self._select_for_write(folder, uidvalidity, uids)
        if not found:
            return []
        uid_set = compress_uids(found)
        quoted_target = self._client._normalise_folder(target)
        if "MOVE" in self._capabilities:
            self._uid_command("MOVE", uid_set, quoted_target)
            return found
        self._uid_command("COPY", uid_set, quoted_target)
        self._uid_command("STORE", uid_set, "+FLAGS.SILENT", "(\\Deleted)")
        if "UIDPLUS" in self._capabilities:
            self._uid_command("EXPUNGE", uid_set)
        return found

    def append_message(
        self, folder: str, raw: bytes, flags: list[str], internaldate: datetime
    ) -> tuple[int, int] | None:
        """APPEND; the answer's `[APPENDUID uidvalidity uid]` says where it went."""
        answer = self._client.append(folder, raw, flags=tuple(flags), msg_time=internaldate)
        text = answer.decode("ascii", "replace") if isinstance(answer, bytes) else str(answer)
        found = _APPENDUID.search(text)
        return (int(found.group(1)), int(found.group(2))) if found else None

    def store_gmail_labels(
        self, folder: str, uidvalidity: int, uids: list[int], add: list[str], remove: list[str]
    ) -> list[int]:
        """SELECT, UID SEARCH, one UID STORE [+-]X-GM-LABELS.SILENT per direction."""
        if not self.gmail:
            raise RuntimeError("X-GM-LABELS needs a server with X-GM-EXT-1 (Gmail)")
        found = self._select_for_write(folder, uidvalidity, uids)
        if found:
            uid_set = compress_uids(found)
            if add:
                self._uid_command("STORE", uid_set, "+X-GM-LABELS.SILENT", label_list(add))
            if remove:
                self._uid_command("STORE", uid_set, "-X-GM-LABELS.SILENT", label_list(remove))
        return found

    def _select_for_write(self, folder: str, uidvalidity: int, uids: list[int]) -> list[int]:
        """SELECT the folder read-write and return which of `uids` it has: none when its
        UIDVALIDITY changed (the UIDs then name other messages) or when it is empty. Leaves
        no folder selected for reads, so fetching needs a select() (an EXAMINE) again."""
        wanted = sorted({uid for uid in uids if uid > 0})
        if not wanted:
            return []
        if self._qresync_usable and not self._qresync_enabled:
            self._enable_qresync()  # legal only before the session's first SELECT/EXAMINE
        responses = self._open_folder("SELECT", self._client._normalise_folder(folder))
        if _last_int(responses, "UIDVALIDITY") != uidvalidity:
            return []
        if _last_int(responses, "EXISTS") == 0:
            return []
        criteria = [b"UID", compress_uids(wanted).encode()]
        answer = self._client._raw_command_untagged(b"SEARCH", criteria, uid=True)
        try:
            found = {int(uid) for uid in parse_message_list(answer)}
        except ValueError as exc:
            raise ProtocolError(f"malformed SEARCH response: {answer!r:.80}") from exc
        return sorted(found.intersection(wanted))

    def _uid_command(self, command: str, *args: str | bytes) -> None:
        imap = self._imap
        tag = imap._command("UID", command, *args)
        typ, data = imap._command_complete(command, tag)
        if typ != "OK":
            raise imaplib.IMAP4.error(f"UID {command} failed: {_text(data[0])}")

    def _uid_fetch(
        self, uid_set: str, items: Iterable[str], modifier: str | None = None
    ) -> dict[int, dict[bytes, Any]]:
        imap = self._imap
        imap.untagged_responses.pop("FETCH", None)  # stale unsolicited updates, not answers
        tag = imap._command("UID", "FETCH", uid_set, f"({' '.join(items)})", modifier)
        typ, data = imap._command_complete("FETCH", tag)
        if typ != "OK":
            raise imaplib.IMAP4.error(f"FETCH failed: {_text(data[0])}")
        return parse_fetch(imap.untagged_responses.pop("FETCH", []))

    def _require_selected(self) -> None:
        if self._selected is None:
            raise RuntimeError("select() a folder before searching or fetching in it")

    def _exists(self) -> int:
        """EXISTS as the server last reported it: new mail during the session updates it."""
        assert self._selected is not None
        latest = self._imap.untagged_responses.get("EXISTS")
        if latest:
            self._selected.exists = _int(latest[-1])
        return self._selected.exists


# -- pure helpers (unit-tested without a server) ----------------------------------------------
def gen_parsed_response_pair(line: bytes) -> tuple[Any, Any]:
    """A STATUS line `"name" (ITEM value ...)` as (name, items)."""
    parsed = list(gen_parsed_response([line]))
    if len(parsed) != 2:
        raise ProtocolError(f"unexpected STATUS response: {line!r}")
    return parsed[0], parsed[1]


def _pairs(values: Any) -> list[tuple[Any, Any]]:
    items = list(values)
    return [(items[i], items[i + 1]) for i in range(0, len(items) - 1, 2)]


def expand_uid_set(text: str | bytes, upper: int | None = None) -> list[int]:
    """Expand a UID set: "3:7,9,12:10" -> [3, 4, 5, 6, 7, 9, 10, 11, 12], sorted, unique.

    `upper` caps ranges: servers may answer VANISHED with a superset such as 1:4294967295
    (RFC 7162 allows it), which must not turn into billions of ints."""
    raw = _text(text).strip()
    if not raw:
        return []
    if not _SEQUENCE_SET.fullmatch(raw):
        raise ProtocolError(f"not a UID set: {raw[:80]!r}")
    uids: set[int] = set()
    for part in raw.split(","):
        first, _, last = part.partition(":")
        low, high = sorted((int(first), int(last or first)))
        if upper is not None:
            high = min(high, upper)
        uids.update(range(max(low, 1), high + 1))
    return sorted(uids)


def compress_uids(uids: Iterable[int]) -> str:
    """[1, 2, 3, 5] -> "1:3,5": FETCH command lines stay short for runs of UIDs."""
    ordered = sorted(set(uids))
    if not ordered:
        raise ValueError("no UIDs")
    parts: list[str] = []
    start = prev = ordered[0]
    for uid in [*ordered[1:], None]:
        if uid is not None and uid == prev + 1:
            prev = uid
            continue
        parts.append(str(start) if start == prev else f"{start}:{prev}")
        if uid is not None:
            start = prev = uid
    return ",".join(parts)


def parse_vanished(lines: Iterable[bytes | str], upper: int | None = None) -> list[int]:
    """UIDs of `* VANISHED (EARLIER) <set>` lines as imaplib stores them (b"(EARLIER) 3:5").

    Lines without (EARLIER) report expunges of a session's open folder, not of the past, and
    cannot be part of a SELECT's answer; they are ignored."""
    uids: set[int] = set()
    for line in lines:
        raw = line.encode() if isinstance(line, str) else line
        match = _EARLIER.match(raw.strip())
        if match is not None:
            uids.update(expand_uid_set(raw.strip()[match.end() :], upper))
    return sorted(uids)


def parse_fetch(lines: list[Any]) -> dict[int, dict[bytes, Any]]:
    """imaplib's raw FETCH data -> {uid: {ITEM: value}} with upper-case item names.

    Responses without a UID (unsolicited flag updates on servers without QRESYNC) are
    dropped: their number is a sequence number and would land on the wrong message."""
    if not lines or lines == [None]:
        return {}
    parts = iter(gen_parsed_response(lines))
    out: dict[int, dict[bytes, Any]] = {}
    for _seq in parts:
        attributes = next(parts, None)
        if not isinstance(attributes, tuple) or len(attributes) % 2:
            raise ProtocolError(f"malformed FETCH response: {attributes!r:.80}")
        item = {
            _text(attributes[i]).upper().encode(): attributes[i + 1]
            for i in range(0, len(attributes), 2)
        }
        uid = item.pop(b"UID", None)
        if uid is None:
            continue
        out.setdefault(_int(uid), {}).update(item)
    return out


def message_from_fetch(uid: int, item: dict[bytes, Any]) -> FetchedMessage:
    """One parse_fetch entry -> FetchedMessage (Gmail items when present)."""
    body = item.get(b"BODY[]")
    if not isinstance(body, bytes):
        raise ProtocolError(f"FETCH of UID {uid} returned no message body")
    msgid, thrid = item.get(b"X-GM-MSGID"), item.get(b"X-GM-THRID")
    return FetchedMessage(
        uid=uid,
        flags=flag_names(item.get(b"FLAGS", ())),
        internaldate=utc_internaldate(item.get(b"INTERNALDATE")),
        raw=body,
        gm_msgid=_int(msgid) if msgid is not None else None,
        gm_thrid=_int(thrid) if thrid is not None else None,
        gm_labels=gmail_labels(item.get(b"X-GM-LABELS", ())),
    )


def flag_list(flags: Iterable[str]) -> str:
    """["\\Seen", "$Label1"] -> "(\\Seen $Label1)"; a flag is an atom (RFC 3501), so
    anything else is refused rather than sent."""
    names = list(flags)
    for name in names:
        if not _FLAG.fullmatch(name):
            raise ValueError(f"not an IMAP flag: {name!r:.40}")
    return f"({' '.join(names)})"


def label_list(labels: Iterable[str]) -> str:
    """Gmail labels for STORE: system labels ("\\Inbox") as atoms, the others as quoted
    strings in modified UTF-7 ("Kunden/Müller" -> "Kunden/M&APw-ller")."""
    parts: list[str] = []
    for label in labels:
        if _SYSTEM_LABEL.fullmatch(label):
            parts.append(label)
            continue
        if not label or any(ch in label for ch in "\r\n\0"):
            raise ValueError(f"not a Gmail label: {label!r:.40}")
        encoded = imap_utf7.encode(label).decode("ascii")
        parts.append('"' + encoded.replace("\\", "\\\\").replace('"', '\\"') + '"')
    return f"({' '.join(parts)})"


def flag_names(value: Any) -> list[str]:
    """A FLAGS tuple (bytes atoms) -> ["\\Seen", "$Label1"]."""
    if value is None:
        return []
    if not isinstance(value, tuple | list):
        raise ProtocolError(f"FLAGS is not a list: {value!r:.80}")
    return [_text(flag) for flag in value]


def gmail_labels(value: Any) -> list[str]:
    """X-GM-LABELS -> text: atoms and quoted strings in modified UTF-7 ("&AMQ-" is "Ä");
    a label that looks like a number comes from the parser as an int."""
    if value is None:
        return []
    if not isinstance(value, tuple | list):
        value = (value,)
    return [imap_utf7.decode(label) if isinstance(label, bytes) else str(label) for label in value]


def utc_internaldate(value: Any) -> datetime | None:
    """INTERNALDATE ("05-Jan-2026 10:00:00 +0100", or a datetime) -> an aware UTC datetime."""
    if value is None:
        return None
    if isinstance(value, datetime):
        parsed = value
    else:
        raw = value.encode() if isinstance(value, str) else value
        try:
            parsed = parse_to_datetime(raw, normalise=False)
        except ValueError as exc:
            raise ProtocolError(f"bad INTERNALDATE {raw!r:.60}") from exc
    if parsed.tzinfo is None:  # INTERNALDATE always carries a zone; be lenient anyway
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.astimezone(UTC)


def imap_date(day: date) -> bytes:
    """SEARCH's date format, "05-Jan-2026", independent of the process locale."""
    return f"{day.day:02d}-{_MONTHS[day.month - 1]}-{day.year:04d}".encode()


def _qresync_parameter(known: KnownFolderState) -> str:
    known_uids = ""
    if known.known_uids:
        if not _SEQUENCE_SET.fullmatch(known.known_uids):
            raise ValueError(f"known_uids is not a UID set: {known.known_uids!r}")
        known_uids = f" {known.known_uids}"
    return f"(QRESYNC ({known.uidvalidity} {known.highestmodseq}{known_uids}))"


def _flags(fetched: dict[int, dict[bytes, Any]]) -> dict[int, list[str]]:
    return {uid: flag_names(item[b"FLAGS"]) for uid, item in fetched.items() if b"FLAGS" in item}


def _text(value: Any) -> str:
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    return str(value)


def _int(value: Any) -> int:
    try:
        return int(value)
    except (TypeError, ValueError) as exc:
        raise ProtocolError(f"expected a number, got {value!r:.40}") from exc


def _required_int(values: dict[str, Any], key: str) -> int:
    if values.get(key) is None:
        raise ProtocolError(f"the server's answer has no {key}")
    return _int(values[key])


def _last_int(responses: dict[str, list[Any]], key: str) -> int:
    found = _optional_int(responses, key)
    if found is None:
        raise ProtocolError(f"EXAMINE answered without {key}")
    return found


def _optional_int(responses: dict[str, list[Any]], key: str) -> int | None:
    values = responses.get(key)
    return _int(values[-1]) if values else None
