"""The `mail_sender` worker (SPEC I2, T1, T2): sends one outbox entry through the user's own
SMTP account, keeps a copy in the Sent folder, and puts the message in its CRM thread.

Order, and why:
1. `queued` -> `sending` under the entry's version (a redelivered job of a sent or failed
   entry does nothing).
2. Deliveries: with tracking, one SMTP transaction per recipient (each copy carries its own
   pixel and links; everything else, the Message-ID included, is the same); without, one
   for everyone. Each recipient the server accepted is saved on the entry at once, so a
   retry after a 4xx or a dropped connection sends only to those still waiting.
3. The server's reply decides: 5xx for the message or a recipient is permanent (`failed`,
   with the server's words); 4xx, a timeout or a hang-up raise RetryLaterError and the queue
   redelivers the job; after MAX_ATTEMPTS the entry fails with the last reason.
4. The sender's copy (plain, without pixel or tracked links, with Bcc) is APPENDed to the
   Sent folder unless the provider saves one itself, then stored and threaded like a synced
   message (same message key, same location), so the next sync finds it known: no
   duplicate, and it shows in the thread at once.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from datetime import datetime

from crmsync.mail.compose import compose
from crmsync.mail.connect import SmtpEnvelope, SmtpRefusedError
from crmsync.mail.folders import folder_role
from crmsync.mail.parse import header_summary
from crmsync.mail.providers import preset_for_email
from crmsync.models.accounts import MailAccount
from crmsync.models.mail import MessageLocation, ProcessMessage, folder_id, message_key
from crmsync.models.outbox import OutboxEntry, OutboxPayload, SendError, SendMessageJob
from crmsync.models.servers import MailServerError
from crmsync.ports import (
    AccountHealth,
    AccountRepository,
    ImapSessions,
    MailSubmission,
    OutboxPayloads,
    OutboxStore,
    RawMailStore,
    ThreadStore,
)

MAX_ATTEMPTS = 5
Instrument = Callable[[str, str, str], tuple[str, str]]
"""(recipient, html, text) -> the bodies that recipient gets (pixel, tracked links)."""


class RetryLaterError(RuntimeError):
    """A temporary failure (4xx, timeout, hang-up): the queue delivers the job again."""


class _Temporary(Exception):
    """A delivery that may work later; `entry` is the entry as saved so far."""

    def __init__(self, entry: OutboxEntry, code: str, message: str) -> None:
        super().__init__(message)
        self.entry = entry
        self.code = code
        self.message = message


Tracking = Callable[[OutboxEntry, MailAccount, str, datetime], Instrument]
"""Registers the sent message with the tracking service (before anything leaves, so no
hit is lost) and returns how each recipient's bodies are instrumented."""


class MailSender:
    def __init__(
        self,
        accounts: AccountRepository,
        outbox: OutboxStore,
        payloads: OutboxPayloads,
        health: AccountHealth,
        submission: MailSubmission,
        sessions: ImapSessions,
        raw: RawMailStore,
        threads: ThreadStore,
        process: Callable[[ProcessMessage], object],
        now: Callable[[], datetime],
        tracking: Tracking | None = None,
    ) -> None:
        self._accounts = accounts
        self._outbox = outbox
        self._payloads = payloads
        self._health = health
        self._submission = submission
        self._sessions = sessions
        self._raw = raw
        self._threads = threads
        self._process = process
        self._now = now
        self._tracking = tracking

    def send(self, job: SendMessageJob) -> OutboxEntry | None:
        entry = self._outbox.get(job.company_id, job.outbox_id)
        if entry is None or entry.status not in ("queued", "sending"):
            return entry  # sent, failed, cancelled or scheduled: nothing to do
        account = self._accounts.get(entry.company_id, entry.account_id)
        if account is None:
            return self._fail(entry, "account_removed", "The mail account was removed.")
        if not account.state.polls:
            return self._fail(
                entry,
                str(account.state),
                f"The mail account is {account.state}; re-authenticate or resume it, then "
                "send the message again.",
            )
        entry = self._start(entry)
        if entry is None:
            return None  # another worker has it
        payload = self._payloads.get(entry.payload_key)
        date = entry.created_at
        sent_copy = compose(
            payload,
            sender=account.email,
            message_id=entry.message_id_header,
            date=date,
            html=payload.html,
            text=payload.text,
            tracking_id=entry.id if _tracked(entry) else None,
            with_bcc=True,
        ).as_bytes()
        key = message_key(
            entry.company_id,
            entry.account_id,
            message_id=header_summary(sent_copy).message_id,
            raw_sha256=hashlib.sha256(sent_copy).hexdigest(),
        )
        password = self._health.password_for_sync(account)
        try:
            entry = self._deliver(entry, account, password, payload, key, date)
        except _Temporary as exc:
            return self._retry(exc.entry, exc.code, exc.message)
        if entry.status == "failed":
            return entry
        location = self._save_sent_copy(account, password, sent_copy, date)
        raw_key, sha = self._raw.put_raw(entry.company_id, entry.account_id, sent_copy)
        self._process(
            ProcessMessage(
                op="upsert",
                company_id=entry.company_id,
                account_id=entry.account_id,
                message_key=key,
                location=location,
                flags=["\\Seen"],
                raw_key=raw_key,
                raw_sha256=sha,
                size=len(sent_copy),
                internaldate=date,
            )
        )
        thread_id = self._threads.message_thread(entry.company_id, key)
        return self._finish(entry, key, thread_id)

    # -- deliveries -------------------------------------------------------------------------
    def _deliver(
        self,
        entry: OutboxEntry,
        account: MailAccount,
        password: str,
        payload: OutboxPayload,
        key: str,
        date: datetime,
    ) -> OutboxEntry:
        waiting = [r for r in entry.recipients if r not in entry.delivered_to]
        instrument: Instrument | None = None
        if self._tracking is not None and _tracked(entry):
            instrument = self._tracking(entry, account, key, date)
        batches = [[r] for r in waiting] if instrument else ([waiting] if waiting else [])
        refused: dict[str, str] = {}
        for batch in batches:
            html, text = payload.html, payload.text
            if instrument is not None:
                html, text = instrument(batch[0], payload.html, payload.text)
            data = compose(
                payload,
                sender=account.email,
                message_id=entry.message_id_header,
                date=date,
                html=html,
                text=text,
                tracking_id=entry.id if _tracked(entry) else None,
            ).as_bytes()
            envelope = SmtpEnvelope(mail_from=account.email, recipients=batch, data=data)
            try:
                outcome = self._submission.send_mail(account, password, envelope)
            except SmtpRefusedError as exc:
                reply = exc.reply
                if reply.permanent:
                    return self._fail(entry, f"smtp_{reply.code}", f"{reply.code} {reply.text}")
                raise _Temporary(entry, f"smtp_{reply.code}", f"{reply.code} {reply.text}") from exc
            except MailServerError as exc:
                if exc.problem.code == "auth_failed":
                    return self._fail(entry, exc.problem.code, exc.problem.message)
                raise _Temporary(entry, exc.problem.code, exc.problem.message) from exc
            later = {r: o for r, o in outcome.refused.items() if not o.permanent}
            refused.update(
                {r: f"{o.code} {o.text}" for r, o in outcome.refused.items() if o.permanent}
            )
            accepted = [r for r in batch if r not in outcome.refused]
            entry = self._delivered(entry, accepted)
            if later:
                first, reply = next(iter(later.items()))
                said = f"{first}: {reply.code} {reply.text}"
                raise _Temporary(entry, f"smtp_{reply.code}", said)
        if refused and not entry.delivered_to:
            said = "; ".join(f"{r}: {why}" for r, why in refused.items())
            return self._fail(entry, "recipients_refused", said)
        if refused:
            said = "; ".join(f"{r}: {why}" for r, why in refused.items())
            entry = entry.model_copy(
                update={"error": SendError(code="some_recipients_refused", message=said)}
            )
        return entry

    def _save_sent_copy(
        self, account: MailAccount, password: str, raw: bytes, date: datetime
    ) -> MessageLocation:
        """APPEND to the Sent folder unless the provider keeps a copy itself. The location
        is where the next sync will find it; without one (no APPENDUID, or the provider's
        own copy) a placeholder names the Sent folder."""
        preset = preset_for_email(account.email)
        if preset is not None and preset.saves_sent_copy:
            return _placeholder("Sent")
        try:
            with self._sessions.open_session(account, password) as session:
                folders = session.list_folders()
                sent = next(
                    (f.name for f in folders if f.special_use == "\\Sent"),
                    next((f.name for f in folders if folder_role(f) == "sent"), None),
                )
                if sent is None:
                    return _placeholder("Sent")
                where = session.append_message(sent, raw, ["\\Seen"], date)
        except MailServerError:
            # Delivered already; the copy comes with the next sync if the provider made one.
            return _placeholder("Sent")
        if where is None:
            return _placeholder(sent)
        uidvalidity, uid = where
        return MessageLocation(
            folder=sent, folder_id=folder_id(sent), uidvalidity=uidvalidity, uid=uid, role="sent"
        )

    # -- the entry's states ----------------------------------------------------------------
    def _start(self, entry: OutboxEntry) -> OutboxEntry | None:
        started = entry.model_copy(
            update={
                "status": "sending",
                "attempts": entry.attempts + 1,
                "updated_at": self._now(),
                "version": entry.version + 1,
            }
        )
        return started if self._outbox.save(started, entry.version) else None

    def _delivered(self, entry: OutboxEntry, recipients: Sequence[str]) -> OutboxEntry:
        if not recipients:
            return entry
        done = entry.model_copy(
            update={
                "delivered_to": [*entry.delivered_to, *recipients],
                "updated_at": self._now(),
                "version": entry.version + 1,
            }
        )
        if not self._outbox.save(done, entry.version):
            raise RetryLaterError(f"outbox {entry.id} changed while it was being sent")
        return done

    def _finish(self, entry: OutboxEntry, key: str, thread_id: str | None) -> OutboxEntry:
        now = self._now()
        sent = entry.model_copy(
            update={
                "status": "sent",
                "message_id": key,
                "thread_id": thread_id,
                "sent_at": now,
                "updated_at": now,
                "version": entry.version + 1,
            }
        )
        if not self._outbox.save(sent, entry.version):
            raise RetryLaterError(f"outbox {entry.id} changed while it was being sent")
        return sent

    def _fail(self, entry: OutboxEntry, code: str, message: str) -> OutboxEntry:
        failed = entry.model_copy(
            update={
                "status": "failed",
                "error": SendError(code=code, message=message),
                "updated_at": self._now(),
                "version": entry.version + 1,
            }
        )
        if not self._outbox.save(failed, entry.version):
            raise RetryLaterError(f"outbox {entry.id} changed while it was being sent")
        return failed

    def _retry(self, entry: OutboxEntry, code: str, message: str) -> OutboxEntry:
        if entry.attempts >= MAX_ATTEMPTS:
            return self._fail(entry, code, f"Gave up after {entry.attempts} attempts: {message}")
        noted = entry.model_copy(
            update={
                "error": SendError(code=code, message=message),
                "updated_at": self._now(),
                "version": entry.version + 1,
            }
        )
        self._outbox.save(noted, entry.version)
        raise RetryLaterError(f"{code}: {message}")


def _tracked(entry: OutboxEntry) -> bool:
    return entry.track_opens or entry.track_clicks


def _placeholder(folder: str) -> MessageLocation:
    """The Sent folder without a known UID: the next sync adds the real location."""
    return MessageLocation(
        folder=folder, folder_id=folder_id(folder), uidvalidity=0, uid=0, role="sent"
    )
