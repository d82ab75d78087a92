"""One run of the mail sync for one account.

This first cut records the run, reschedules the account and tells the CRM; the mailbox work
(IMAP/EWS fetch, checkpoints) plugs in here behind a port with the sync feature.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from crmsync.clock import Clock
from crmsync.models.events import DomainEvent
from crmsync.models.jobs import SyncAccount
from crmsync.models.sync import SyncRun
from crmsync.ports import AccountRepository, EventPublisher, SyncRunRepository


class MailSync:
    def __init__(
        self,
        accounts: AccountRepository,
        runs: SyncRunRepository,
        events: EventPublisher,
        clock: Clock,
        poll_interval: timedelta,
    ) -> None:
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
        finished = self._clock.now()
        self._accounts.finish_poll(
            job.company_id, job.account_id, finished, finished + self._poll_interval
        )
        return self._finish(job, started, "ok", "")

    def _finish(self, job: SyncAccount, started: datetime, outcome: str, detail: str) -> SyncRun:
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
