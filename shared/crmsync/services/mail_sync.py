"""One run of the mail sync for one account (SPEC S1-S5, E5).

It logs in, looks at every synced folder (STATUS), and syncs the folders that changed
(`FolderSync`). An unchanged mailbox costs one login and one STATUS per folder and writes
nothing: no checkpoint, no run record, no event (the dispatcher's claim already moved the
next poll time). A run that changed something records itself and tells the CRM. A failure
moves the account's state (a refused password stops polling until re-authentication; a
connection error backs off) and keeps every checkpoint saved so far. A run that ran out of
time re-queues the account, which resumes where it stopped.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import datetime, timedelta

from crmsync.clock import Clock, iso
from crmsync.mail.folders import folder_roles
from crmsync.models.accounts import AccountKind, MailAccount
from crmsync.models.actions import ActionResult
from crmsync.models.events import DomainEvent
from crmsync.models.imap import FolderStatus, ImapSession
from crmsync.models.jobs import MailboxActionsJob, SyncAccount
from crmsync.models.mail import FolderRole
from crmsync.models.servers import ConnectionProblem, MailServerError
from crmsync.models.sync import SyncRun
from crmsync.ports import (
    AccountHealth,
    AccountRepository,
    CheckpointStore,
    EventPublisher,
    FolderInfo,
    ImapSessions,
    JobQueue,
    MailboxActionStore,
    ProcessQueue,
    QueuedSync,
    RawMailStore,
    SyncRunRepository,
    ThreadStore,
)
from crmsync.services.folder_sync import FolderOutcome, FolderSync, SyncLimits
from crmsync.services.mailbox_actions import MailboxActionApplier

NOT_SELECTABLE = frozenset({"\\noselect", "\\nonexistent"})
# "All mail" leaves out the folders whose mail is not conversation: spam, the bin, drafts.
NOT_SYNCED_BY_DEFAULT = frozenset({"\\Junk", "\\Trash", "\\Drafts"})

Deadline = Callable[[], bool]


class MailSync:
    def __init__(
        self,
        accounts: AccountRepository,
        runs: SyncRunRepository,
        events: EventPublisher,
        clock: Clock,
        poll_interval: timedelta,
        sessions: ImapSessions,
        health: AccountHealth,
        checkpoints: CheckpointStore,
        raw: RawMailStore,
        process_queue: ProcessQueue,
        sync_queue: JobQueue,
        limits: SyncLimits | None = None,
        budget: timedelta = timedelta(minutes=10),
        actions: MailboxActionStore | None = None,
        threads: ThreadStore | None = None,
    ) -> None:
        self._sessions = sessions
        self._health = health
        self._accounts = accounts
        self._runs = runs
        self._events = events
        self._clock = clock
        self._poll_interval = poll_interval
        self._checkpoints = checkpoints
        self._raw = raw
        self._process_queue = process_queue
        self._sync_queue = sync_queue
        self._limits = limits or SyncLimits()
        self._budget = budget
        self._actions = actions
        self._threads = threads
        self._applier = MailboxActionApplier()

    def run(
        self, job: SyncAccount | MailboxActionsJob, out_of_time: Deadline | None = None
    ) -> SyncRun:
        """A `mailbox_actions` job is a sync run too: it applies the pending actions, then
        syncs, so the CRM sees the result at once."""
        if isinstance(job, MailboxActionsJob):
            job = SyncAccount(
                job_id=job.job_id,
                account_id=job.account_id,
                company_id=job.company_id,
                reason="actions",
                enqueued_at=job.enqueued_at,
            )
        started = self._clock.now()
        account = self._accounts.get(job.company_id, job.account_id)
        if account is None or not account.state.polls:
            detail = "account removed" if account is None else f"account is {account.state}"
            return self._finish(job, started, "skipped", detail, record=False)
        if account.kind != AccountKind.IMAP:
            return self._finish(job, started, "skipped", f"no {account.kind} adapter yet")
        deadline = out_of_time or _monotonic_deadline(self._budget)
        totals = FolderOutcome()
        folders = commands = on_server = 0
        applied: list[ActionResult] = []
        try:
            password = self._health.password_for_sync(account)
            with self._sessions.open_session(account, password) as session:
                applied = self._apply_actions(session, account)
                statuses, roles = self._statuses(session, account)
                saved = self._checkpoints.checkpoints(account.company_id, account.id)
                folders = len(statuses)
                sync = FolderSync(
                    session,
                    account,
                    self._checkpoints,
                    self._raw,
                    self._process_queue,
                    self._clock,
                    self._limits,
                    deadline,
                    roles,
                )
                for status in statuses:
                    on_server += status.messages
                    checkpoint = saved.get(status.name)
                    if sync.is_idle(status, checkpoint):
                        continue
                    _add(totals, sync.sync(status, checkpoint))
                    if not totals.complete:
                        break
                commands = session.commands_sent
        except MailServerError as exc:
            self._health.record_failure(account, exc.problem)
            return self._finish(
                job, started, "failed", exc.problem.code, totals=totals, actions=applied
            )
        recovered = self._health.record_success(account)
        if not totals.complete:
            self._continue_later(job, account)
        if not totals.changed and not applied and recovered is account:
            return self._finish(
                job,
                started,
                "idle",
                "",
                record=False,
                folders=folders,
                commands=commands,
                on_server=on_server,
            )
        finished = self._clock.now()
        self._accounts.finish_poll(
            job.company_id, job.account_id, finished, finished + self._poll_interval
        )
        details = [_actions_detail(applied)] if applied else []
        if not totals.complete:
            details.append("time budget used up; continuing")
        return self._finish(
            job,
            started,
            "ok",
            "; ".join(details),
            actions=applied,
            totals=totals,
            folders=folders,
            commands=commands,
            on_server=on_server,
        )

    # -- mailbox actions --------------------------------------------------------------------
    def _apply_actions(self, session: ImapSession, account: MailAccount) -> list[ActionResult]:
        """Every pending action, oldest first; each is deleted once the server did it (or
        cannot: no archive folder). A server error stops here and keeps the rest."""
        if self._actions is None or self._threads is None:
            return []
        pending = self._actions.pending(account.company_id, account.id)
        if not pending:
            return []
        folders = session.list_folders()
        results: list[ActionResult] = []
        for action in pending:
            messages = [
                message
                for key in action.message_keys
                if (message := self._threads.find_message(account.company_id, key)) is not None
            ]
            results.append(self._applier.apply(session, action, messages, folders))
            self._actions.done(action)
        return results

    # -- folders ----------------------------------------------------------------------------
    def _statuses(
        self, session: ImapSession, account: MailAccount
    ) -> tuple[list[FolderStatus], dict[str, FolderRole]]:
        """Which folders sync and their STATUS: the idle poll's whole cost. One LIST-STATUS
        round trip where the server has it, else a LIST and one STATUS per folder."""
        combined = session.list_status()
        if combined is not None:
            listed = [folder for folder, _ in combined if not _unselectable(folder)]
        else:
            listed = [f for f in session.list_folders() if not _unselectable(f)]
        everything = [f.name for f in listed if f.special_use == "\\All"]
        if account.settings.folders == "all" and everything:
            # Gmail and others with an "All Mail" folder: it holds every message once (labels
            # are folders there), so it alone is synced instead of each copy in each label.
            wanted = everything[:1]
        elif account.settings.folders == "all":
            wanted = [f.name for f in listed if f.special_use not in NOT_SYNCED_BY_DEFAULT]
        else:
            names = {f.name for f in listed}
            missing = [f for f in account.settings.selected_folders if f not in names]
            if missing:
                raise MailServerError(_folder_missing(missing[0]))
            wanted = [f.name for f in listed if f.name in account.settings.selected_folders]
        roles = folder_roles(listed)
        if combined is not None:
            known = {folder.name: status for folder, status in combined}
            return [known[name] or session.status(name) for name in wanted], roles
        return [session.status(name) for name in wanted], roles

    def _continue_later(self, job: SyncAccount, account: MailAccount) -> None:
        now = self._clock.now()
        follow_up = SyncAccount(
            job_id=f"{account.id}:continue:{iso(now)}",
            account_id=account.id,
            company_id=account.company_id,
            reason="continue",
            enqueued_at=now,
        )
        self._sync_queue.send_syncs([QueuedSync(job=follow_up, deduplication_id=follow_up.job_id)])

    # -- the record -------------------------------------------------------------------------
    def _finish(
        self,
        job: SyncAccount,
        started: datetime,
        outcome: str,
        detail: str,
        *,
        record: bool = True,
        totals: FolderOutcome | None = None,
        actions: list[ActionResult] | None = None,
        folders: int = 0,
        commands: int = 0,
        on_server: int = 0,
    ) -> SyncRun:
        finished = self._clock.now()
        totals = totals or FolderOutcome()
        run = SyncRun.model_validate(
            {
                "id": job.job_id,
                "account_id": job.account_id,
                "reason": job.reason,
                "enqueued_at": job.enqueued_at,
                "outcome": outcome,
                "detail": detail,
                "started_at": started,
                "finished_at": finished,
                "folders_checked": folders,
                "messages_on_server": on_server,
                "messages_fetched": totals.fetched,
                "flag_changes": totals.flag_changes,
                "messages_removed": totals.removed,
                "complete": totals.complete,
                "imap_commands": commands,
                "mailbox_actions": len(actions or []),
            }
        )
        if not record:
            return run
        # Announce before recording: a crash in between repeats the event (consumers dedupe on
        # run_id) rather than losing it. The conditional record makes a redelivery record once.
        self._events.publish(
            [
                DomainEvent(
                    detail_type="mail_sync.completed",
                    company_id=job.company_id,
                    occurred_at=finished,
                    detail={
                        "account_id": job.account_id,
                        "run_id": run.id,
                        "outcome": run.outcome,
                        "messages_fetched": totals.fetched,
                    },
                )
            ]
        )
        self._runs.record(job.company_id, run)
        return run


def _add(totals: FolderOutcome, one: FolderOutcome) -> None:
    totals.fetched += one.fetched
    totals.flag_changes += one.flag_changes
    totals.removed += one.removed
    totals.checkpoint_writes += one.checkpoint_writes
    totals.complete = totals.complete and one.complete


def _actions_detail(results: list[ActionResult]) -> str:
    skipped = sorted({r.skipped_reason for r in results if r.skipped_reason})
    text = f"mailbox actions applied: {len(results)}"
    return text + (f" ({'; '.join(skipped)})" if skipped else "")


def _unselectable(folder: FolderInfo) -> bool:
    return any(flag.lower() in NOT_SELECTABLE for flag in folder.flags)


def _folder_missing(name: str) -> ConnectionProblem:
    return ConnectionProblem(
        code="folder_missing",
        message=f"The selected folder {name!r} no longer exists on the server.",
        action="Choose the folders to sync again in the account's settings.",
    )


def _monotonic_deadline(budget: timedelta) -> Deadline:
    """Stop starting new batches once the budget is spent (the Lambda timeout is above it)."""
    ends = time.monotonic() + budget.total_seconds()
    return lambda: time.monotonic() >= ends
