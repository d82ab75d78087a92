"""In-memory fakes for the calendar sync: its store (every write counted, conditions like
store/calendar_sync.py), the activity records (the directory's fake, writes counted), a
recording account health, and a server session that hangs up after some requests."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime
from typing import Any

from crmsync.models.calendar import CalendarAccount
from crmsync.models.calendar_sync import (
    CalendarSyncState,
    EventRef,
    PushMarker,
    SkippedActivity,
    StoredMapping,
)
from crmsync.models.directory import Record
from crmsync.models.servers import ConnectionProblem, MailServerError
from tests.unit.fakes_calendar import FakeCalendarConnector, FakeCalendarSession
from tests.unit.test_directory_service import FakeDirectoryRepository


class FakeCalendarSyncStore:
    def __init__(self) -> None:
        self.states: dict[tuple[str, str], CalendarSyncState] = {}
        self.markers: dict[tuple[str, str, str], PushMarker] = {}
        self.skips: dict[tuple[str, str, str], SkippedActivity] = {}
        self.refs: dict[tuple[str, str, str], EventRef] = {}
        self.maps: dict[tuple[str, str], StoredMapping] = {}
        self.claims: dict[tuple[str, str, str, str], str] = {}
        self.writes = 0
        self.fail_save_event_after: int | None = None

    def _write(self) -> None:
        self.writes += 1

    def state(self, company_id: str, account_id: str) -> CalendarSyncState | None:
        found = self.states.get((company_id, account_id))
        return found.model_copy(deep=True) if found else None

    def save_state(self, state: CalendarSyncState) -> bool:
        self._write()
        stored = self.states.get((state.company_id, state.account_id))
        if (stored.version if stored else 0) != state.version:
            return False
        self.states[(state.company_id, state.account_id)] = state.model_copy(
            update={"version": state.version + 1}, deep=True
        )
        return True

    def mark_push(
        self, company_id: str, account_id: str, activity_id: str, changed_at: datetime
    ) -> None:
        self._write()
        self.markers[(company_id, account_id, activity_id)] = PushMarker(
            activity_id=activity_id, changed_at=changed_at
        )

    def pending_pushes(self, company_id: str, account_id: str) -> list[PushMarker]:
        return [
            m for (c, a, _), m in sorted(self.markers.items()) if (c, a) == (company_id, account_id)
        ]

    def clear_push(self, company_id: str, account_id: str, marker: PushMarker) -> bool:
        self._write()
        key = (company_id, account_id, marker.activity_id)
        if key in self.markers and self.markers[key].changed_at == marker.changed_at:
            del self.markers[key]
            return True
        return False

    def skipped(self, company_id: str, account_id: str) -> list[SkippedActivity]:
        return [s for (c, a, _), s in self.skips.items() if (c, a) == (company_id, account_id)]

    def record_skip(self, company_id: str, account_id: str, skip: SkippedActivity) -> None:
        self._write()
        self.skips[(company_id, account_id, skip.activity_id)] = skip

    def clear_skip(self, company_id: str, account_id: str, activity_id: str) -> None:
        self._write()
        self.skips.pop((company_id, account_id, activity_id), None)

    def event_ref(self, company_id: str, account_id: str, href: str) -> EventRef | None:
        found = self.refs.get((company_id, account_id, href))
        return found.model_copy(deep=True) if found else None

    def event_refs(self, company_id: str, account_id: str) -> dict[str, EventRef]:
        return {
            h: r.model_copy(deep=True)
            for (c, a, h), r in self.refs.items()
            if (c, a) == (company_id, account_id)
        }

    def save_event(
        self, company_id: str, account_id: str, ref: EventRef, mappings: Sequence[StoredMapping]
    ) -> None:
        if self.fail_save_event_after is not None:
            if self.fail_save_event_after == 0:
                raise WorkerKilled("killed before the mapping was saved")
            self.fail_save_event_after -= 1
        for mapping in mappings:
            self._write()
            self.maps[(company_id, mapping.activity_id)] = mapping.model_copy(deep=True)
        self._write()
        self.refs[(company_id, account_id, ref.href)] = ref.model_copy(deep=True)

    def drop_event_ref(self, company_id: str, account_id: str, href: str) -> None:
        self._write()
        self.refs.pop((company_id, account_id, href), None)

    def mapping(self, company_id: str, activity_id: str) -> StoredMapping | None:
        found = self.maps.get((company_id, activity_id))
        return found.model_copy(deep=True) if found else None

    def mappings(self, company_id: str, activity_ids: Iterable[str]) -> dict[str, StoredMapping]:
        return {a: m for a in activity_ids if (m := self.mapping(company_id, a)) is not None}

    def drop_mappings(self, company_id: str, mappings: Sequence[StoredMapping]) -> None:
        for m in mappings:
            self._write()
            self.maps.pop((company_id, m.activity_id), None)
            self.claims.pop((company_id, m.calendar_id, m.uid, m.recurrence_id or ""), None)

    def claim_uid(
        self,
        company_id: str,
        calendar_id: str,
        uid: str,
        recurrence_id: str | None,
        activity_id: str,
        account_id: str,
    ) -> str:
        self._write()
        key = (company_id, calendar_id, uid, recurrence_id or "")
        return self.claims.setdefault(key, activity_id)

    def uid_claim(
        self, company_id: str, calendar_id: str, uid: str, recurrence_id: str | None
    ) -> str | None:
        return self.claims.get((company_id, calendar_id, uid, recurrence_id or ""))

    def release_claim(
        self, company_id: str, calendar_id: str, uid: str, recurrence_id: str | None
    ) -> None:
        self._write()
        self.claims.pop((company_id, calendar_id, uid, recurrence_id or ""), None)


class WorkerKilled(BaseException):
    """Stands for the Lambda being killed: nothing catches it."""


class CountingRecords(FakeDirectoryRepository):
    def __init__(self) -> None:
        super().__init__()
        self.writes = 0

    def create(self, company_id: str, record: Record) -> None:
        self.writes += 1
        super().create(company_id, record)

    def replace(self, company_id: str, seen: Record, record: Record) -> None:
        self.writes += 1
        super().replace(company_id, seen, record)

    def delete(self, company_id: str, seen: Record) -> None:
        self.writes += 1
        super().delete(company_id, seen)


class RecordingHealth:
    def __init__(self) -> None:
        self.failures: list[ConnectionProblem] = []
        self.successes = 0

    def password_for_sync(self, account: CalendarAccount) -> str:
        return "pw"

    def record_success(self, account: CalendarAccount) -> CalendarAccount:
        self.successes += 1
        return account

    def record_failure(
        self, account: CalendarAccount, problem: ConnectionProblem
    ) -> CalendarAccount:
        self.failures.append(problem)
        return account


class HangingSession:
    """A session that hangs up (a connection error) once it has sent `after` requests."""

    def __init__(self, session: FakeCalendarSession, after: int) -> None:
        self._session = session
        self._left = after

    def __getattr__(self, name: str) -> Any:
        attribute = getattr(self._session, name)
        if not callable(attribute):
            return attribute

        def call(*args: Any, **kwargs: Any) -> Any:
            if self._left <= 0:
                raise MailServerError(
                    ConnectionProblem(
                        code="connection_error",
                        message="The calendar server closed the connection.",
                        action="The next sync tries again.",
                    )
                )
            self._left -= 1
            return attribute(*args, **kwargs)

        return call


class HangingConnector:
    def __init__(self, connector: FakeCalendarConnector, after: int) -> None:
        self._connector = connector
        self._after = after

    @contextmanager
    def open(self, url: str, username: str, password: str) -> Iterator[Any]:
        with self._connector.open(url, username, password) as session:
            yield HangingSession(session, self._after)
