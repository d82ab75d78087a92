"""Re-matching mail when the directory changes (SPEC L1, L2).

A person who gains an address is linked to the threads that address took part in; one who
loses an address or is deleted is unlinked; a deal that opens, closes or changes person
moves the automatic deal link of its person's threads. The work runs in the message
processor (a RelinkThreads job), not in the API request."""

from __future__ import annotations

import hashlib

from crmsync.clock import Clock, iso
from crmsync.models.deals import Deal
from crmsync.models.directory import Person, Record, User, address_key
from crmsync.models.mail import RelinkThreads
from crmsync.ports import ProcessQueue


def _addresses(record: Record | None) -> set[str]:
    if isinstance(record, Person):
        return {address_key(a) for a in record.emails}
    if isinstance(record, User):
        return {address_key(record.email)}
    return set()


class RematchOnChange:
    def __init__(self, queue: ProcessQueue, clock: Clock) -> None:
        self._queue = queue
        self._clock = clock

    def changed(self, company_id: str, before: Record | None, after: Record | None) -> None:
        job = self.job_for(company_id, before, after)
        if job is not None:
            self._queue.send_relinks([job])

    def job_for(
        self, company_id: str, before: Record | None, after: Record | None
    ) -> RelinkThreads | None:
        record = after or before
        if isinstance(record, Person | User):
            moved = _addresses(before) ^ _addresses(after)
            gone = [record.id] if isinstance(record, Person) and after is None else []
            if not moved and not gone:
                return None
            return self._job(company_id, record, addresses=sorted(moved), person_ids=gone)
        if isinstance(record, Deal):
            old, new = before, after
            same = (
                isinstance(old, Deal)
                and isinstance(new, Deal)
                and (old.status, old.person_id) == (new.status, new.person_id)
            )
            persons = {d.person_id for d in (old, new) if isinstance(d, Deal) and d.person_id}
            if same or not persons:
                return None
            return self._job(company_id, record, person_ids=sorted(persons))
        return None

    def _job(
        self,
        company_id: str,
        record: Record,
        addresses: list[str] | None = None,
        person_ids: list[str] | None = None,
    ) -> RelinkThreads:
        stamp = iso(self._clock.now())
        job_id = hashlib.sha256(f"{company_id}\0{record.id}\0{stamp}".encode()).hexdigest()[:40]
        return RelinkThreads(
            company_id=company_id,
            job_id=job_id,
            addresses=addresses or [],
            person_ids=person_ids or [],
        )
