"""What a user does to a thread in the CRM (SPEC L3, L4, S9): link it to a record by hand,
unlink it, share it or make it private, mark it read, archive it, delete it.

Only the mailbox's owner changes a thread; a colleague who may read a shared thread gets
403, anyone else 404. Every change goes through the ThreadAssembler under the thread's
version check, so a sync landing at the same moment neither loses it nor is lost.

When the account's settings say so, read / archive / delete are also recorded as mailbox
actions and a `mailbox_actions` job applies them on the mail server (the sync worker, in
the account's FIFO group). The action is recorded before the job is sent: if the account
needs re-authentication the action waits, and the first sync after it applies it.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field

from crmsync.errors import ForbiddenError, NotFoundError, ValidationFailedError
from crmsync.models.accounts import MailAccount
from crmsync.models.actions import ActionOp, MailboxAction
from crmsync.models.identity import Principal
from crmsync.models.jobs import MailboxActionsJob
from crmsync.models.mail import LinkType, Thread, Visibility
from crmsync.models.threads import LinkRecord
from crmsync.ports import AccountRepository, JobQueue, MailboxActionStore, QueuedSync, ThreadStore
from crmsync.services.mail_reads import RecordAccess, can_read_thread
from crmsync.services.threads import ThreadAssembler, ThreadEdit, ThreadNotFoundError

OPPOSITE: dict[ActionOp, ActionOp] = {
    "read": "unread",
    "unread": "read",
    "archive": "unarchive",
    "unarchive": "archive",
}


class ThreadPatch(BaseModel):
    """`PATCH /v1/threads/{id}`: only the fields sent change."""

    model_config = ConfigDict(extra="forbid")

    visibility: Visibility | None = None
    read: bool | None = None
    archived: bool | None = None


class LinkInput(BaseModel):
    """`POST /v1/threads/{id}/links`."""

    model_config = ConfigDict(extra="forbid")

    type: LinkType
    id: str = Field(min_length=1, max_length=200)


class ThreadActions:
    def __init__(
        self,
        accounts: AccountRepository,
        store: ThreadStore,
        assembler: ThreadAssembler,
        can_read_record: RecordAccess,
        actions: MailboxActionStore,
        jobs: JobQueue,
        now: Callable[[], datetime],
    ) -> None:
        self._accounts = accounts
        self._store = store
        self._assembler = assembler
        self._can_read_record = can_read_record
        self._actions = actions
        self._jobs = jobs
        self._now = now

    def link(self, principal: Principal, thread_id: str, target: LinkInput) -> Thread:
        """A manual link: it wins over automatic linking and survives re-sync (SPEC L3)."""
        account, _ = self._own_thread(principal, thread_id)
        if not self._can_read_record(principal, target.type, target.id):
            raise NotFoundError(f"No {target.type} {target.id}.")
        record = LinkRecord(type=target.type, id=target.id, reason="manual")
        return self._edit(account, thread_id, ThreadEdit(at=self._now(), link=record))

    def unlink(self, principal: Principal, thread_id: str, link_type: str, target_id: str) -> None:
        """A manual unlink: a tombstone keeps the automatic link from coming back."""
        account, thread = self._own_thread(principal, thread_id)
        if not any(link.type == link_type and link.id == target_id for link in thread.links):
            raise NotFoundError(f"Thread {thread_id} is not linked to {link_type} {target_id}.")
        record = LinkRecord.model_validate(
            {"type": link_type, "id": target_id, "reason": "manual", "active": False}
        )
        self._edit(account, thread_id, ThreadEdit(at=self._now(), link=record))

    def patch(self, principal: Principal, thread_id: str, change: ThreadPatch) -> Thread:
        account, thread = self._own_thread(principal, thread_id)
        if change.visibility is None and change.read is None and change.archived is None:
            raise ValidationFailedError("Send at least one of visibility, read, archived.")
        now = self._now()
        edit = ThreadEdit(
            at=now, visibility=change.visibility, read=change.read, archived=change.archived
        )
        ops: list[ActionOp] = []
        if change.read is not None and account.settings.read_sync_back:
            ops.append("read" if change.read else "unread")
        if change.archived is not None and account.settings.archive_sync_back:
            ops.append("archive" if change.archived else "unarchive")
        edited = self._edit(account, thread_id, edit)
        self._record(account, thread, ops, now)
        return edited

    def delete(self, principal: Principal, thread_id: str) -> None:
        """Deleted in the CRM: in no list until a newer message arrives (SPEC S9)."""
        account, thread = self._own_thread(principal, thread_id)
        now = self._now()
        self._edit(account, thread_id, ThreadEdit(at=now, deleted=True))
        self._record(account, thread, ["delete"] if account.settings.delete_sync_back else [], now)

    # -- plumbing ---------------------------------------------------------------------------
    def _own_thread(self, principal: Principal, thread_id: str) -> tuple[MailAccount, Thread]:
        thread = self._store.thread(principal.company_id, thread_id)
        if thread is None or not can_read_thread(principal, thread, self._can_read_record):
            raise NotFoundError(f"Thread {thread_id} not found.")
        if thread.owner_user_id != principal.user_id:
            raise ForbiddenError("Only the owner of the mailbox can change this conversation.")
        account = self._accounts.get(thread.company_id, thread.account_id)
        if account is None:
            raise NotFoundError(f"Thread {thread_id} not found.")
        return account, thread

    def _edit(self, account: MailAccount, thread_id: str, edit: ThreadEdit) -> Thread:
        try:
            thread = self._assembler.assemble(account, thread_id, edit)
        except ThreadNotFoundError as exc:
            raise NotFoundError(f"Thread {thread_id} not found.") from exc
        if thread is None:
            raise NotFoundError(f"Thread {thread_id} not found.")
        return thread

    def _record(
        self, account: MailAccount, thread: Thread, ops: list[ActionOp], now: datetime
    ) -> None:
        if not ops:
            return
        keys = [m.id for m in self._store.thread_messages(account.company_id, thread.id)]
        # A click that undoes one still waiting (archive, then unarchive) cancels it: the
        # server never sees either, and the second never acts on locations the first moved.
        undone = {OPPOSITE[op] for op in ops if op in OPPOSITE}
        for waiting in self._actions.pending(account.company_id, account.id):
            if waiting.thread_id == thread.id and waiting.op in undone:
                self._actions.done(waiting)
        for op in ops:
            self._actions.add(
                MailboxAction(
                    id=MailboxAction.new_id(now, thread.id, op),
                    company_id=account.company_id,
                    account_id=account.id,
                    thread_id=thread.id,
                    op=op,
                    message_keys=keys,
                    created_at=now,
                )
            )
        if not account.state.polls:
            return  # kept; the first sync after re-authentication applies it
        job = MailboxActionsJob(
            job_id=f"actions:{account.id}:{now.strftime('%Y%m%dT%H%M%S%f')}",
            account_id=account.id,
            company_id=account.company_id,
            enqueued_at=now,
        )
        self._jobs.send_syncs([QueuedSync(job=job, deduplication_id=job.job_id)])
