"""One run of the mail sync for one account.

It logs in and looks at every synced folder (one STATUS each), moves the account's state
on failure (a refused password stops polling until re-authentication; a connection error
backs off), records the run, reschedules and tells the CRM. Fetching, checkpoints and
processing plug in behind the MailboxPoller port with the sync feature.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from crmsync.clock import Clock
from crmsync.models.accounts import AccountKind
from crmsync.models.events import DomainEvent
from crmsync.models.jobs import SyncAccount
from crmsync.models.servers import MailServerError
from crmsync.models.sync import SyncRun
from crmsync.ports import (
    AccountHealth,
    AccountRepository,
    EventPublisher,
    MailboxPoller,
    PollReport,
    SyncRunRepository,
)


class MailSync:
    def __init__(
        self,
        accounts: AccountRepository,
        runs: SyncRunRepository,
        events: EventPublisher,
        clock: Clock,
        poll_interval: timedelta,
        mailbox: MailboxPoller,
        health: AccountHealth,
    ) -> None:
        self._mailbox = mailbox
        self._health = health
        self._accounts = accounts
        self._runs = runs
        self._events = events
        self._clock = clock
        self._poll_interval = poll_interval

    def run(self, job: SyncAccount) -> SyncRun:
        started = self._clock.now()
        account = self._accounts.get(job.company_id, job.account_id)
        if account is None or not account.state.polls:
            detail = "account removed" if account is None else f"account is {account.state}"
            return self._finish(job, started, "skipped", detail)
        if account.kind != AccountKind.IMAP:
            return self._finish(job, started, "skipped", f"no {account.kind} adapter yet")
        try:
            report = self._mailbox.poll(account, self._health.password_for_sync(account))
        except MailServerError as exc:
            self._health.record_failure(account, exc.problem)
            return self._finish(job, started, "failed", exc.problem.code)
        self._health.record_success(account)
        finished = self._clock.now()
        self._accounts.finish_poll(
            job.company_id, job.account_id, finished, finished + self._poll_interval
        )
        return self._finish(job, started, "ok", "", report)

    def _finish(
        self,
        job: SyncAccount,
        started: datetime,
        outcome: str,
        detail: str,
        report: PollReport | None = None,
    ) -> SyncRun:
        finished = self._clock.now()
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
                **(report.model_dump() if report else {}),
            }
        )
        # Announce before recording: a crash in between repeats the event (consumers dedupe on
        # run_id) rather than losing it. Redeliveries of a finished job stop at the
        # idempotency layer of the handler; the conditional record is the second guard.
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
                    },
                )
            ]
        )
        self._runs.record(job.company_id, run)
        return run
