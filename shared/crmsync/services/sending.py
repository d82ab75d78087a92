"""Compose and send, the API side (SPEC I2, I3, I5, T3): check and accept a message, put it
in the outbox, hand it to the `mail_sender` worker now or when its time comes.

- Every recipient is checked before anything is stored (invalid characters, syntax; no DNS):
  the first bad one is named in the 400 answer and nothing is queued.
- `Idempotency-Key`: the outbox id is derived from the caller and the key, and the entry is
  created only if absent. A retry with the same body gets the same entry (one message); a
  different body under the same key is refused (409). The entry is the idempotency record:
  no second table, no second write.
- Send later: an entry with `send_at` ahead waits in the PollDue index (`SEND#NN` shards);
  the poll dispatcher, which runs every minute, hands due ones to the worker, so a message
  leaves within a minute of its time. It can be cancelled until then.
- Tracking (T3): the message's choice, else the account's default; a choice made on a
  message becomes the new default. A message without HTML carries no pixel (the answer
  says so); its links are still tracked.
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from crmsync.errors import ConflictError, NotFoundError, ValidationFailedError
from crmsync.mail.compose import AttachmentError, decoded, new_message_id
from crmsync.mail.html import html_to_text
from crmsync.mail.recipients import InvalidRecipientError, checked_recipients
from crmsync.models.accounts import AccountKind, MailAccount, SyncSettingsPatch
from crmsync.models.identity import Principal
from crmsync.models.outbox import (
    Accepted,
    OutboxEntry,
    OutboxPayload,
    OutboxView,
    SendMessageJob,
    SendRequest,
)
from crmsync.ports import AccountRepository, OutboxPayloads, OutboxStore, SendQueue, ThreadStore

# A send_at this close counts as "now": the worker would pick it up no later anyway.
SCHEDULE_THRESHOLD = timedelta(seconds=5)
MAX_ATTACHMENT_BYTES = 10 * 1024 * 1024


@dataclass(frozen=True)
class RenderedBody:
    subject: str
    html: str
    text: str | None


Renderer = Callable[[Principal, SendRequest], RenderedBody]
TrackingDefaults = Callable[[Principal, str, SyncSettingsPatch], object]


class InvalidRecipientProblem(ValidationFailedError):
    """400: a recipient the help article's rules refuse; `address` is the one."""

    def __init__(self, address: str, reason: str) -> None:
        super().__init__(f"Recipient {address} is not valid: {reason}")
        self.address = address

    def extensions(self) -> dict[str, str]:
        return {"address": self.address}


class SendService:
    def __init__(
        self,
        accounts: AccountRepository,
        outbox: OutboxStore,
        payloads: OutboxPayloads,
        payload_key: Callable[[str, str, str], str],
        threads: ThreadStore,
        queue: SendQueue,
        now: Callable[[], datetime],
        *,
        shard_count: int,
        render: Renderer | None = None,
        remember_tracking: TrackingDefaults | None = None,
        test_domains: bool = False,
    ) -> None:
        self._accounts = accounts
        self._outbox = outbox
        self._payloads = payloads
        self._payload_key = payload_key
        self._threads = threads
        self._queue = queue
        self._now = now
        self._shards = shard_count
        self._render = render
        self._remember_tracking = remember_tracking
        self._test_domains = test_domains

    # -- the API ----------------------------------------------------------------------------
    def submit(
        self, principal: Principal, request: SendRequest, idempotency_key: str | None = None
    ) -> Accepted:
        account = self._sending_account(principal, request.account_id)
        outbox_id = self._outbox_id(principal, idempotency_key)
        fingerprint = request.fingerprint()
        existing = self._outbox.get(principal.company_id, outbox_id)
        if existing is not None:
            return self._replayed(existing, fingerprint)
        to, cc, bcc = self._recipients(request)
        self._check_attachments(request)
        in_reply_to, references = self._reply_headers(principal, request)
        body = self._body(principal, request)
        now = self._now()
        opens = account.settings.track_opens if request.track_opens is None else request.track_opens
        clicks = (
            account.settings.track_clicks if request.track_clicks is None else request.track_clicks
        )
        scheduled = request.send_at is not None and request.send_at > now + SCHEDULE_THRESHOLD
        entry = OutboxEntry(
            id=outbox_id,
            company_id=principal.company_id,
            user_id=principal.user_id,
            account_id=account.id,
            status="scheduled" if scheduled else "queued",
            message_id_header=new_message_id(account.email),
            subject=body.subject,
            recipients=[*to, *cc, *bcc],
            track_opens=opens,
            track_clicks=clicks,
            has_html=bool(body.html),
            pixel=opens and bool(body.html),
            send_at=request.send_at if scheduled else None,
            created_at=now,
            updated_at=now,
            payload_key=self._payload_key(principal.company_id, account.id, outbox_id),
            request_fingerprint=fingerprint,
        )
        self._payloads.put(
            entry.payload_key,
            OutboxPayload(
                from_name=None,
                to=to,
                cc=cc,
                bcc=bcc,
                subject=body.subject,
                html=body.html,
                text=body.text if body.text is not None else html_to_text(body.html),
                in_reply_to=in_reply_to,
                references=references,
                attachments=request.attachments,
            ),
        )
        if not self._outbox.create(entry):
            stored = self._outbox.get(principal.company_id, outbox_id)
            if stored is None:
                raise ConflictError("The message was accepted and removed meanwhile; send again.")
            return self._replayed(stored, fingerprint)
        self._remember(principal, account, request)
        if not scheduled:
            self._hand_over(entry)
        return _accepted(entry)

    def status(self, principal: Principal, outbox_id: str) -> OutboxView:
        return OutboxView.of(self._own(principal, outbox_id))

    def cancel(self, principal: Principal, outbox_id: str) -> OutboxView:
        """A scheduled message is cancelled until the dispatcher took it (409 after)."""
        entry = self._own(principal, outbox_id)
        if entry.status == "cancelled":
            return OutboxView.of(entry)
        if entry.status != "scheduled":
            raise ConflictError(f"The message is {entry.status}; only a scheduled one cancels.")
        cancelled = entry.model_copy(
            update={"status": "cancelled", "updated_at": self._now(), "version": entry.version + 1}
        )
        if not self._outbox.save(cancelled, entry.version):
            raise ConflictError("The message is being sent; it can no longer be cancelled.")
        return OutboxView.of(cancelled)

    # -- the dispatcher (every minute) -----------------------------------------------------
    def dispatch_due(self) -> int:
        """Hand every scheduled message whose time has come to the worker. The status moves
        to `queued` under the entry's version first, so two ticks never send it twice."""
        now = self._now()
        handed = 0
        for shard in range(self._shards):
            for company_id, outbox_id in list(self._outbox.due(shard, now)):
                entry = self._outbox.get(company_id, outbox_id)
                if entry is None or entry.status != "scheduled":
                    continue
                queued = entry.model_copy(
                    update={"status": "queued", "updated_at": now, "version": entry.version + 1}
                )
                if self._outbox.save(queued, entry.version):
                    self._hand_over(queued)
                    handed += 1
        return handed

    # -- plumbing ---------------------------------------------------------------------------
    def _sending_account(self, principal: Principal, account_id: str) -> MailAccount:
        account = self._accounts.get(principal.company_id, account_id)
        if account is None or account.user_id != principal.user_id:
            raise NotFoundError(f"No mail account {account_id} of yours.")
        if account.kind != AccountKind.IMAP or account.smtp is None:
            raise ValidationFailedError(
                "This account has no SMTP server to send with; add one in its settings."
            )
        return account

    @staticmethod
    def _outbox_id(principal: Principal, idempotency_key: str | None) -> str:
        if not idempotency_key:
            return "o" + uuid.uuid4().hex[:31]
        if len(idempotency_key) > 255:
            raise ValidationFailedError("The Idempotency-Key header is longer than 255 characters.")
        basis = f"{principal.company_id}\0{principal.user_id}\0{idempotency_key}"
        return "o" + hashlib.sha256(basis.encode()).hexdigest()[:31]

    @staticmethod
    def _replayed(entry: OutboxEntry, fingerprint: str) -> Accepted:
        if entry.request_fingerprint != fingerprint:
            raise ConflictError(
                "This Idempotency-Key was used for a different message; use a new key."
            )
        return _accepted(entry)

    def _recipients(self, request: SendRequest) -> tuple[list[str], list[str], list[str]]:
        try:
            to, cc, bcc = checked_recipients(
                request.to, request.cc, request.bcc, test_domains=self._test_domains
            )
        except InvalidRecipientError as exc:
            raise InvalidRecipientProblem(exc.address, exc.reason) from exc
        if not (to or cc or bcc):
            raise ValidationFailedError("Add at least one recipient (to, cc or bcc).")
        return to, cc, bcc

    @staticmethod
    def _check_attachments(request: SendRequest) -> None:
        total = 0
        for attachment in request.attachments:
            try:
                total += len(decoded(attachment))
            except AttachmentError as exc:
                raise ValidationFailedError(str(exc)) from exc
            if attachment.inline and not attachment.content_id:
                raise ValidationFailedError(
                    f"{attachment.filename}: an inline image needs a content_id (cid:)."
                )
        if total > MAX_ATTACHMENT_BYTES:
            raise ValidationFailedError("The attachments are larger than 10 MB together.")

    def _reply_headers(
        self, principal: Principal, request: SendRequest
    ) -> tuple[str | None, list[str]]:
        if request.reply_to_message_id is None:
            return None, []
        parent = self._threads.find_message(principal.company_id, request.reply_to_message_id)
        if parent is None or parent.owner_user_id != principal.user_id:
            raise NotFoundError(f"Message {request.reply_to_message_id} not found.")
        if parent.account_id != request.account_id:
            raise ValidationFailedError("Reply from the account the conversation belongs to.")
        if not parent.message_id_header:
            return None, []
        references = [f"<{ref}>" for ref in parent.references[-20:]]
        return f"<{parent.message_id_header}>", references

    def _body(self, principal: Principal, request: SendRequest) -> RenderedBody:
        if self._render is not None:
            return self._render(principal, request)
        if request.template_id is not None:
            raise ValidationFailedError("Templates are not available in this deployment.")
        return RenderedBody(subject=request.subject, html=request.html, text=request.text)

    def _remember(self, principal: Principal, account: MailAccount, request: SendRequest) -> None:
        """The tracking choice of this message becomes the account's default (T3)."""
        changes: dict[str, bool] = {}
        if request.track_opens is not None and request.track_opens != account.settings.track_opens:
            changes["track_opens"] = request.track_opens
        if (
            request.track_clicks is not None
            and request.track_clicks != account.settings.track_clicks
        ):
            changes["track_clicks"] = request.track_clicks
        if changes and self._remember_tracking is not None:
            self._remember_tracking(
                principal, account.id, SyncSettingsPatch.model_validate(changes)
            )

    def _hand_over(self, entry: OutboxEntry) -> None:
        self._queue.send(
            [
                SendMessageJob(
                    outbox_id=entry.id, company_id=entry.company_id, account_id=entry.account_id
                )
            ]
        )

    def _own(self, principal: Principal, outbox_id: str) -> OutboxEntry:
        entry = self._outbox.get(principal.company_id, outbox_id)
        if entry is None or entry.user_id != principal.user_id:
            raise NotFoundError(f"No outbox message {outbox_id}.")
        return entry


def _accepted(entry: OutboxEntry) -> Accepted:
    view = OutboxView.of(entry)
    return Accepted(
        id=entry.id,
        status=entry.status,
        message_id_header=entry.message_id_header,
        send_at=entry.send_at,
        pixel=entry.pixel,
        pixel_note=view.pixel_note,
    )
