"""The message processor (SPEC S5-S8, L1, L2): one change of one message at a time.

`upsert` parses the raw MIME (kept in S3), applies the blocked list and the historical
scope, finds the thread, stores the message once (a message seen in a second folder, or a
redelivered job, only gains a location) and recomputes the thread. `flags` and `removed`
change a stored message; a message that leaves its last synced folder is deleted. Every
operation is idempotent: the final state after a redelivery is the state after one delivery.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Literal

from crmsync.mail.parse import UnparseableMessage, parse_message
from crmsync.models.accounts import MailAccount
from crmsync.models.mail import (
    MessageLocation,
    ProcessMessage,
    RelinkThreads,
    StoredMessage,
    thread_key,
)
from crmsync.models.parsed import ParsedMessage
from crmsync.ports import (
    AccountRepository,
    BlockedAddressStore,
    ContactDirectory,
    RawMailStore,
    ThreadStore,
)
from crmsync.services.threads import ThreadAssembler

SUBJECT_WINDOW = timedelta(days=14)
Outcome = Literal["stored", "updated", "unchanged", "removed", "skipped", "blocked", "unparseable"]


@dataclass(frozen=True)
class ProcessResult:
    outcome: Outcome
    thread_id: str | None = None


class MessageProcessor:
    def __init__(
        self,
        accounts: AccountRepository,
        store: ThreadStore,
        raw: RawMailStore,
        contacts: ContactDirectory,
        blocked: BlockedAddressStore,
        assembler: ThreadAssembler,
        now: Callable[[], datetime],
    ) -> None:
        self._accounts = accounts
        self._store = store
        self._raw = raw
        self._contacts = contacts
        self._blocked = blocked
        self._assembler = assembler
        self._now = now

    def process(self, job: ProcessMessage) -> ProcessResult:
        account = self._accounts.get(job.company_id, job.account_id)
        if account is None:
            return ProcessResult("skipped")
        existing = self._store.find_message(job.company_id, job.message_key)
        if job.op == "upsert":
            if existing is not None:
                return self._relocate(account, existing, job)
            return self._insert(account, job)
        if existing is None:
            # Filtered out, never stored, or deleted by an earlier delivery that may have
            # died before its thread was rewritten: bring that thread up to date.
            thread_id = self._store.message_thread(job.company_id, job.message_key)
            if thread_id is not None:
                self._assembler.assemble(account, thread_id)
            return ProcessResult("skipped", thread_id)
        if job.op == "flags":
            return self._relocate(account, existing, job)
        return self._remove(account, existing, job.location)

    def relink(self, job: RelinkThreads) -> int:
        """Recompute the links of every thread the directory change may touch."""
        targets: set[tuple[str, str]] = set()
        for address in job.addresses:
            targets.update(self._store.threads_with_participant(job.company_id, address))
        for person_id in job.person_ids:
            targets.update(self._store.threads_linked_to(job.company_id, "person", person_id))
        wanted = sorted({thread_id for _, thread_id in targets} | set(job.thread_ids))
        threads = self._store.threads(job.company_id, wanted)
        accounts: dict[str, MailAccount | None] = {}
        done = 0
        for thread in threads.values():
            if thread.account_id not in accounts:
                accounts[thread.account_id] = self._accounts.get(job.company_id, thread.account_id)
            account = accounts[thread.account_id]
            if account is not None:
                self._assembler.assemble(account, thread.id)
                done += 1
        return done

    # -- operations -------------------------------------------------------------------------
    def _relocate(
        self, account: MailAccount, message: StoredMessage, job: ProcessMessage
    ) -> ProcessResult:
        here = job.location.token
        locations = [loc for loc in message.locations if loc.token != here]
        if job.op == "upsert" or len(locations) < len(message.locations):
            locations.append(job.location)  # a flags change never adds a location back
        flags = sorted(job.flags)
        changed = message.model_copy(
            update={
                "locations": sorted(locations, key=lambda loc: loc.token),
                "flags": flags,
                "unread": "\\Seen" not in flags,
                "gm_labels": job.gm_labels if job.op == "upsert" else message.gm_labels,
            }
        )
        if changed == message:
            # A redelivery, perhaps of a job whose worker died before the thread was
            # written: recomputing is idempotent and writes only what is missing.
            self._assembler.assemble(account, message.thread_id)
            return ProcessResult("unchanged", message.thread_id)
        self._store.update_message(changed)
        self._assembler.assemble(account, message.thread_id)
        return ProcessResult("updated", message.thread_id)

    def _remove(
        self, account: MailAccount, message: StoredMessage, location: MessageLocation
    ) -> ProcessResult:
        remaining = [loc for loc in message.locations if loc.token != location.token]
        if len(remaining) == len(message.locations):
            self._assembler.assemble(account, message.thread_id)
            return ProcessResult("unchanged", message.thread_id)
        if remaining:
            self._store.update_message(message.model_copy(update={"locations": remaining}))
        else:
            self._store.delete_message(message)
        self._assembler.assemble(account, message.thread_id)
        return ProcessResult("removed", message.thread_id)

    def _insert(self, account: MailAccount, job: ProcessMessage) -> ProcessResult:
        if job.raw_key is None:
            raise ValueError("an upsert job carries the raw message's key")
        raw = self._raw.get_raw(job.raw_key)
        try:
            parsed = parse_message(raw)
        except UnparseableMessage as exc:
            return self._keep_unparseable(account, job, str(exc))
        if self._is_blocked(account, parsed):
            return ProcessResult("blocked")
        scoped = job.historical and account.settings.historical_scope == "crm_contacts"
        if scoped and not self._has_contact(account, parsed):
            return ProcessResult("skipped")
        thread_id = self._thread_for(account, job, parsed)
        message = self._message(account, job, parsed, thread_id)
        body = json.dumps({"text": parsed.text, "html": parsed.html}).encode()
        parsed_key = self._raw.put_parsed(account.company_id, account.id, message.id, body)
        message = message.model_copy(update={"parsed_key": parsed_key})
        if not self._store.insert_message(message):
            stored = self._store.find_message(account.company_id, message.id)
            if stored is not None:
                return self._relocate(account, stored, job)
        self._assembler.assemble(account, thread_id)
        return ProcessResult("stored", thread_id)

    def _keep_unparseable(
        self, account: MailAccount, job: ProcessMessage, reason: str
    ) -> ProcessResult:
        """Kept as a marked record in a thread of its own; the raw bytes stay in S3."""
        assert job.raw_key is not None
        thread_id = thread_key(account.company_id, account.id, f"raw:{job.raw_sha256}")
        message = StoredMessage(
            id=job.message_key,
            thread_id=thread_id,
            account_id=account.id,
            company_id=account.company_id,
            owner_user_id=account.user_id,
            date=job.internaldate or self._now(),
            subject="",
            snippet="",
            unread="\\Seen" not in job.flags,
            flags=sorted(job.flags),
            locations=[job.location],
            defects=[f"unparseable: {reason}"[:200]],
            unparseable=True,
            raw_key=job.raw_key,
            size=job.size,
        )
        self._store.insert_message(message)
        self._assembler.assemble(account, thread_id)
        return ProcessResult("unparseable", thread_id)

    # -- rules ------------------------------------------------------------------------------
    def _is_blocked(self, account: MailAccount, parsed: ParsedMessage) -> bool:
        """Blocked sender, or sent only to blocked recipients (SPEC S8)."""
        recipients = [a.email for a in [*parsed.to, *parsed.cc, *parsed.bcc]]
        sender = parsed.from_.email if parsed.from_ else None
        candidates = [a for a in [sender, *recipients] if a]
        if not candidates:
            return False
        blocked = self._blocked.blocked_among(account.company_id, account.user_id, candidates)
        if sender is not None and sender in blocked:
            return True
        own = account.email.lower()
        others = [r for r in recipients if r != own]
        return bool(others) and all(r in blocked for r in others)

    def _has_contact(self, account: MailAccount, parsed: ParsedMessage) -> bool:
        addresses = _addresses(parsed)
        owners = self._contacts.address_owners(account.company_id, addresses)
        own = account.email.lower()
        return any(
            owner.person_ids and not owner.user
            for address, owner in owners.items()
            if address != own
        )

    def _thread_for(self, account: MailAccount, job: ProcessMessage, parsed: ParsedMessage) -> str:
        """References first, then the provider's thread id, then the subject (SPEC S7)."""
        company, account_id = account.company_id, account.id
        ids = [i for i in [parsed.message_id, *parsed.in_reply_to, *parsed.references] if i]
        known = self._store.threads_of_message_ids(company, account_id, ids) if ids else {}
        order = [*parsed.references, *parsed.in_reply_to, parsed.message_id]
        found = next((known[i] for i in order if i and i in known), None)
        if found is None and job.gm_thrid is not None:
            found = thread_key(company, account_id, f"gm:{job.gm_thrid}")
        if found is None and (parsed.references or parsed.in_reply_to):
            root = (parsed.references or parsed.in_reply_to)[0]
            found = thread_key(company, account_id, f"mid:{root}")
        if found is None:
            found = self._by_subject(account, parsed)
        if found is None:
            basis = f"mid:{parsed.message_id}" if parsed.message_id else f"raw:{job.raw_sha256}"
            found = thread_key(company, account_id, basis)
        if ids:
            self._store.claim_message_ids(company, account_id, ids, found)
        return found

    def _by_subject(self, account: MailAccount, parsed: ParsedMessage) -> str | None:
        if not parsed.thread_subject or parsed.date is None:
            return None
        own = account.email.lower()
        mine = {a for a in _addresses(parsed) if a != own}
        for candidate in self._store.subject_threads(
            account.company_id, account.id, parsed.thread_subject
        ):
            close = abs(candidate.last_message_at - parsed.date) <= SUBJECT_WINDOW
            if close and mine & set(candidate.addresses):
                return candidate.thread_id
        return None

    def _message(
        self, account: MailAccount, job: ProcessMessage, parsed: ParsedMessage, thread_id: str
    ) -> StoredMessage:
        sender = parsed.from_.email if parsed.from_ else None
        return StoredMessage.model_validate(
            {
                "id": job.message_key,
                "thread_id": thread_id,
                "account_id": account.id,
                "company_id": account.company_id,
                "owner_user_id": account.user_id,
                "message_id_header": parsed.message_id,
                "in_reply_to": parsed.in_reply_to,
                "references": parsed.references,
                "from": parsed.from_,
                "to": parsed.to,
                "cc": parsed.cc,
                "subject": parsed.subject,
                "thread_subject": parsed.thread_subject,
                "date": parsed.date or job.internaldate or self._now().astimezone(UTC),
                "snippet": parsed.snippet,
                "unread": "\\Seen" not in job.flags,
                "flags": sorted(job.flags),
                "locations": [job.location],
                "direction": "outbound" if sender == account.email.lower() else "inbound",
                "attachments": parsed.attachments,
                "calendar": parsed.calendar,
                "defects": parsed.defects,
                "raw_key": job.raw_key,
                "size": job.size,
                "gm_thrid": job.gm_thrid,
                "gm_labels": job.gm_labels,
                # Only the CRM's own sent mail counts as tracked: an inbound header is a claim.
                "tracked": parsed.tracking_id is not None and sender == account.email.lower(),
            }
        )


def _addresses(parsed: ParsedMessage) -> list[str]:
    everyone = [parsed.from_, *parsed.to, *parsed.cc, *parsed.bcc]
    return list(dict.fromkeys(a.email for a in everyone if a is not None))
