"""Sync of one IMAP folder against its checkpoint (SPEC S1, S3, S4, S5).

The state machine of a folder, after nylas/sync-engine: a first look seeds the checkpoint,
later looks compare STATUS with it and do nothing more when nothing changed; a changed
folder yields its expunges (QRESYNC VANISHED, or a UID set comparison), its flag changes
(QRESYNC, CONDSTORE CHANGEDSINCE, or a periodic full check) and its new messages; a
UIDVALIDITY change reseeds the folder. Every message change becomes a ProcessMessage job;
the raw MIME goes to S3 first. The checkpoint is saved after each batch, so a run cut short
(the time budget, a hang-up) resumes where it stopped and never fetches finished work again.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta

from crmsync.clock import Clock
from crmsync.mail.folders import folder_role
from crmsync.mail.parse import UnparseableMessage, header_summary
from crmsync.models.accounts import MailAccount
from crmsync.models.imap import (
    FetchedMessage,
    FolderStatus,
    ImapSession,
    KnownFolderState,
    SelectedFolder,
)
from crmsync.models.mail import (
    FolderCheckpoint,
    FolderRole,
    MessageLocation,
    ProcessMessage,
    UidEntry,
    folder_id,
    message_key,
)
from crmsync.models.parsed import HeaderSummary
from crmsync.ports import CheckpointStore, FolderInfo, ProcessQueue, RawMailStore

# Flags that say nothing about the message itself: \Recent is per session.
_IGNORED_FLAGS = frozenset({"\\Recent"})
SYNC_START_DAYS = {"now": 0, "1_month": 30, "3_months": 91, "6_months": 182, "1_year": 365}


@dataclass(frozen=True)
class SyncLimits:
    """How much one invocation does: messages per FETCH, and when to stop and re-queue."""

    batch_size: int = 50
    full_check_every: timedelta = timedelta(hours=1)


@dataclass
class FolderOutcome:
    fetched: int = 0
    flag_changes: int = 0
    removed: int = 0
    checkpoint_writes: int = 0
    complete: bool = True

    @property
    def changed(self) -> bool:
        return bool(self.fetched or self.flag_changes or self.removed or self.checkpoint_writes)


@dataclass
class FolderSync:
    """Syncs the folders of one account over one session, within one deadline."""

    session: ImapSession
    account: MailAccount
    store: CheckpointStore
    raw: RawMailStore
    queue: ProcessQueue
    clock: Clock
    limits: SyncLimits
    out_of_time: Callable[[], bool]
    roles: dict[str, FolderRole] = field(default_factory=dict)
    _now: datetime = field(init=False)

    def __post_init__(self) -> None:
        self._now = self.clock.now()

    # -- the decision ---------------------------------------------------------------------
    def is_idle(self, status: FolderStatus, checkpoint: FolderCheckpoint | None) -> bool:
        """Whether STATUS proves nothing changed: then the folder costs nothing more."""
        if checkpoint is None:
            return False
        return (
            checkpoint.uidvalidity == status.uidvalidity
            and checkpoint.uidnext == status.uidnext
            and checkpoint.messages == status.messages
            and (status.highestmodseq is None or status.highestmodseq == checkpoint.highestmodseq)
            and checkpoint.backfill_below is None
            and not checkpoint.stale_uidvalidities
            and not self._full_check_due(checkpoint)
        )

    def sync(self, status: FolderStatus, checkpoint: FolderCheckpoint | None) -> FolderOutcome:
        outcome = FolderOutcome()
        known = None
        if checkpoint is not None and checkpoint.highestmodseq and self.session.qresync:
            known = KnownFolderState(
                uidvalidity=checkpoint.uidvalidity, highestmodseq=checkpoint.highestmodseq
            )
        selected = self.session.select(status.name, known)
        fresh = checkpoint is None or selected.uidvalidity != checkpoint.uidvalidity
        if checkpoint is None:
            checkpoint = self._seed(selected)
        elif fresh:
            checkpoint = self._reseed(checkpoint, selected)
        new_uids = self.session.search_uids(min_uid=checkpoint.uidnext)
        if not fresh:
            self._apply_changes(checkpoint, selected, len(new_uids), outcome)
        checkpoint = self._fetch_new(checkpoint, new_uids, outcome)
        if outcome.complete:
            checkpoint = checkpoint.model_copy(
                update={"uidnext": max(checkpoint.uidnext, selected.uidnext)}
            )
            checkpoint = self._backfill(checkpoint, outcome)
        if outcome.complete and checkpoint.stale_uidvalidities:
            checkpoint = self._drop_stale(checkpoint, outcome)
        if outcome.complete:
            checkpoint = checkpoint.model_copy(
                update={
                    "messages": selected.exists,
                    "highestmodseq": selected.highestmodseq,
                }
            )
        self._save(checkpoint, outcome)
        return outcome

    # -- seeding ------------------------------------------------------------------------------
    def _seed(self, selected: SelectedFolder) -> FolderCheckpoint:
        days = SYNC_START_DAYS[self.account.settings.sync_start]
        since = (self._now - timedelta(days=days)).date()
        return FolderCheckpoint(
            folder=selected.name,
            folder_id=folder_id(selected.name),
            uidvalidity=selected.uidvalidity,
            uidnext=selected.uidnext,
            messages=selected.exists,
            highestmodseq=selected.highestmodseq,
            since=since,
            backfill_below=selected.uidnext if days else None,
            last_full_check_at=self._now,
        )

    def _reseed(self, old: FolderCheckpoint, selected: SelectedFolder) -> FolderCheckpoint:
        """New UIDs for the whole folder: fetch it again, back to the oldest message it had
        (a message moved in may be older than the sync start); the processor recognises the
        messages it has (same message key) and only moves their location. The old UID maps
        are dropped once the new one is complete."""
        stale = [*old.stale_uidvalidities, old.uidvalidity]
        since = old.since
        for validity in stale:
            entries = self.store.uid_entries(
                self.account.company_id, self.account.id, old.folder_id, validity
            )
            dates = [e.internaldate.date() for e in entries.values() if e.internaldate]
            since = min([since, *dates])
        return old.model_copy(
            update={
                "uidvalidity": selected.uidvalidity,
                "uidnext": selected.uidnext,
                "messages": selected.exists,
                "highestmodseq": selected.highestmodseq,
                "since": since,
                "backfill_below": selected.uidnext,
                "stale_uidvalidities": list(dict.fromkeys(stale)),
                "last_full_check_at": self._now,
            }
        )

    # -- changes of known messages ----------------------------------------------------------
    def _apply_changes(
        self,
        checkpoint: FolderCheckpoint,
        selected: SelectedFolder,
        new_count: int,
        outcome: FolderOutcome,
    ) -> None:
        full_check = self._full_check_due(checkpoint)
        if self.session.qresync and checkpoint.highestmodseq:
            removed = list(selected.vanished)
        elif full_check or selected.exists != checkpoint.messages + new_count:
            removed = self._removed_by_comparison(checkpoint)
        else:
            removed = []
        if self.session.qresync and checkpoint.highestmodseq:
            flags = dict(selected.changed_flags)
        elif self.session.condstore and checkpoint.highestmodseq:
            unchanged = selected.highestmodseq == checkpoint.highestmodseq
            flags = {} if unchanged else self.session.changed_flags(checkpoint.highestmodseq)
        elif full_check:
            flags = self.session.all_flags()
        else:
            flags = {}
        if full_check:
            checkpoint.last_full_check_at = self._now
        self._send_flag_changes(checkpoint, flags, outcome)
        self._send_removals(checkpoint, checkpoint.uidvalidity, removed, outcome)

    def _removed_by_comparison(self, checkpoint: FolderCheckpoint) -> list[int]:
        known = self.store.uid_entries(
            self.account.company_id,
            self.account.id,
            checkpoint.folder_id,
            checkpoint.uidvalidity,
        )
        if not known:
            return []
        on_server = set(self.session.search_uids(max_uid=checkpoint.uidnext - 1))
        return sorted(uid for uid in known if uid not in on_server)

    def _send_flag_changes(
        self, checkpoint: FolderCheckpoint, flags: dict[int, list[str]], outcome: FolderOutcome
    ) -> None:
        if not flags:
            return
        known = self.store.uid_entries(
            self.account.company_id,
            self.account.id,
            checkpoint.folder_id,
            checkpoint.uidvalidity,
            sorted(flags),
        )
        jobs: list[ProcessMessage] = []
        changed: list[UidEntry] = []
        for uid, entry in known.items():
            now_flags = _clean(flags[uid])
            if now_flags == entry.flags:
                continue
            changed.append(entry.model_copy(update={"flags": now_flags}))
            jobs.append(
                self._job(
                    "flags", entry.message_key, checkpoint, checkpoint.uidvalidity, uid
                ).model_copy(update={"flags": now_flags})
            )
        self.queue.send_messages(jobs)
        self.store.put_uid_entries(
            self.account.company_id,
            self.account.id,
            checkpoint.folder_id,
            checkpoint.uidvalidity,
            changed,
        )
        outcome.flag_changes += len(jobs)

    def _send_removals(
        self,
        checkpoint: FolderCheckpoint,
        uidvalidity: int,
        uids: Sequence[int],
        outcome: FolderOutcome,
        known: dict[int, UidEntry] | None = None,
    ) -> None:
        if not uids:
            return
        if known is None:
            known = self.store.uid_entries(
                self.account.company_id,
                self.account.id,
                checkpoint.folder_id,
                uidvalidity,
                list(uids),
            )
        jobs = [
            self._job("removed", entry.message_key, checkpoint, uidvalidity, uid)
            for uid, entry in sorted(known.items())
        ]
        self.queue.send_messages(jobs)
        self.store.delete_uid_entries(
            self.account.company_id,
            self.account.id,
            checkpoint.folder_id,
            uidvalidity,
            sorted(known),
        )
        outcome.removed += len(jobs)

    def _drop_stale(self, checkpoint: FolderCheckpoint, outcome: FolderOutcome) -> FolderCheckpoint:
        for stale in checkpoint.stale_uidvalidities:
            entries = self.store.uid_entries(
                self.account.company_id, self.account.id, checkpoint.folder_id, stale
            )
            self._send_removals(checkpoint, stale, sorted(entries), outcome, known=entries)
        return checkpoint.model_copy(update={"stale_uidvalidities": []})

    # -- new and historical messages --------------------------------------------------------
    def _fetch_new(
        self, checkpoint: FolderCheckpoint, uids: list[int], outcome: FolderOutcome
    ) -> FolderCheckpoint:
        size = self.limits.batch_size
        for start in range(0, len(uids), size):
            if self.out_of_time():
                outcome.complete = False
                return checkpoint
            batch = uids[start : start + size]
            self._fetch(checkpoint, batch, outcome)
            checkpoint = self._save(
                checkpoint.model_copy(update={"uidnext": batch[-1] + 1}), outcome
            )
        return checkpoint

    def _backfill(self, checkpoint: FolderCheckpoint, outcome: FolderOutcome) -> FolderCheckpoint:
        """Older messages, newest first, so the recent ones show up first."""
        if checkpoint.backfill_below is None:
            return checkpoint
        pending = self.session.search_uids(
            max_uid=checkpoint.backfill_below - 1, since=checkpoint.since
        )
        size = self.limits.batch_size
        while pending:
            if self.out_of_time():
                outcome.complete = False
                return checkpoint
            batch, pending = pending[-size:], pending[:-size]
            self._fetch(checkpoint, batch, outcome)
            below = batch[0] if pending else None
            checkpoint = self._save(
                checkpoint.model_copy(update={"backfill_below": below}), outcome
            )
        if checkpoint.backfill_below is not None:
            checkpoint = checkpoint.model_copy(update={"backfill_below": None})
        return checkpoint

    def _fetch(self, checkpoint: FolderCheckpoint, uids: list[int], outcome: FolderOutcome) -> None:
        fetched = self.session.fetch_messages(uids)
        jobs: list[ProcessMessage] = []
        entries: list[UidEntry] = []
        for message in fetched:
            job = self._upsert(checkpoint, message)
            jobs.append(job)
            entries.append(
                UidEntry(
                    uid=message.uid,
                    message_key=job.message_key,
                    flags=job.flags,
                    internaldate=message.internaldate,
                )
            )
        # Jobs first, then the map: a crash in between repeats jobs the processor ignores,
        # never leaves a mapped UID whose message was not sent.
        self.queue.send_messages(jobs)
        self.store.put_uid_entries(
            self.account.company_id,
            self.account.id,
            checkpoint.folder_id,
            checkpoint.uidvalidity,
            entries,
        )
        outcome.fetched += len(jobs)

    def _upsert(self, checkpoint: FolderCheckpoint, message: FetchedMessage) -> ProcessMessage:
        raw_key, sha = self.raw.put_raw(self.account.company_id, self.account.id, message.raw)
        try:
            summary: HeaderSummary | None = header_summary(message.raw)
        except UnparseableMessage:
            summary = None  # empty bytes: the processor keeps them as an unparseable record
        key = message_key(
            self.account.company_id,
            self.account.id,
            message_id=summary.message_id if summary else None,
            raw_sha256=sha,
            gm_msgid=message.gm_msgid,
        )
        sent_at = message.internaldate or (summary.date if summary else None)
        job = self._job("upsert", key, checkpoint, checkpoint.uidvalidity, message.uid)
        return job.model_copy(
            update={
                "flags": _clean(message.flags),
                "raw_key": raw_key,
                "raw_sha256": sha,
                "size": len(message.raw),
                "internaldate": message.internaldate,
                "gm_thrid": message.gm_thrid,
                "gm_labels": message.gm_labels,
                # INTERNALDATE has whole seconds: mail that arrives in the second the
                # account was connected is new, not history.
                "historical": sent_at is not None
                and sent_at < self.account.created_at.replace(microsecond=0),
            }
        )

    def _job(
        self,
        op: str,
        key: str,
        checkpoint: FolderCheckpoint,
        uidvalidity: int,
        uid: int,
    ) -> ProcessMessage:
        return ProcessMessage.model_validate(
            {
                "op": op,
                "company_id": self.account.company_id,
                "account_id": self.account.id,
                "message_key": key,
                "location": MessageLocation(
                    folder=checkpoint.folder,
                    folder_id=checkpoint.folder_id,
                    uidvalidity=uidvalidity,
                    uid=uid,
                    role=self.roles.get(checkpoint.folder)
                    or folder_role(FolderInfo(name=checkpoint.folder)),
                ),
            }
        )

    # -- bookkeeping --------------------------------------------------------------------------
    def _full_check_due(self, checkpoint: FolderCheckpoint) -> bool:
        if self.session.condstore and checkpoint.highestmodseq:
            return False
        last = checkpoint.last_full_check_at
        return last is None or self._now - last >= self.limits.full_check_every

    def _save(self, checkpoint: FolderCheckpoint, outcome: FolderOutcome) -> FolderCheckpoint:
        saved = self.store.save_checkpoint(self.account.company_id, self.account.id, checkpoint)
        outcome.checkpoint_writes += 1
        return saved


def _clean(flags: Sequence[str]) -> list[str]:
    return sorted({flag for flag in flags if flag not in _IGNORED_FLAGS})


def since_date(sync_start: str, now: datetime) -> date:
    return (now - timedelta(days=SYNC_START_DAYS[sync_start])).date()
