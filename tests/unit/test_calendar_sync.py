"""Calendar sync (SPEC C5-C7) against an in-memory CalDAV server and counting fake stores:
push, pull, recurrences, the conflict rule, no duplicates, the cost of an idle sync, and
failures that lose nothing."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from crmsync.models.activities import Activity, ActivityCreate, ActivityUpdate
from crmsync.models.calendar import CalendarAccount, CalendarSyncJob, event_uid
from crmsync.models.calendar_sync import CalendarRun
from crmsync.models.directory import Person
from crmsync.models.identity import Principal
from crmsync.services.calendar_context import event_wins, skip_reason
from crmsync.services.calendar_sync import CalendarSync
from crmsync.services.calendar_triggers import (
    CalendarPollDispatcher,
    CalendarPushOnChange,
    DirectoryChangeListeners,
)
from crmsync.services.directory import DirectoryService
from tests.unit.fakes import FakeClock, FakeEventPublisher
from tests.unit.fakes_calendar import (
    FakeCalDavServer,
    FakeCalendarAccountRepository,
    FakeCalendarConnector,
    FakeCalendarSession,
    FakeCalendarSyncQueue,
)
from tests.unit.fakes_calendar_sync import (
    CountingRecords,
    FakeCalendarSyncStore,
    HangingConnector,
    RecordingHealth,
    WorkerKilled,
)

NOW = datetime(2025, 3, 3, 9, 0, tzinfo=UTC)
SET_UP = NOW - timedelta(hours=1)
ANN = Principal(user_id="u1", company_id="c1", role="user")
ADMIN = Principal(user_id="boss", company_id="c1", role="admin")


def stamp(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y%m%dT%H%M%SZ")


def vevent(
    uid: str,
    start: datetime | str,
    *,
    summary: str = "Call with Acme",
    minutes: int = 60,
    last_modified: datetime = NOW,
    extra: str = "",
) -> str:
    """An event as another calendar app writes it."""
    if isinstance(start, datetime):
        begin = f"DTSTART:{stamp(start)}\r\nDTEND:{stamp(start + timedelta(minutes=minutes))}"
    else:
        begin = start
    return (
        "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//other app//EN\r\n"
        f"BEGIN:VEVENT\r\nUID:{uid}\r\nDTSTAMP:{stamp(last_modified)}\r\n"
        f"LAST-MODIFIED:{stamp(last_modified)}\r\n{begin}\r\nSUMMARY:{summary}\r\n"
        f"{extra}END:VEVENT\r\nEND:VCALENDAR\r\n"
    )


class World:
    def __init__(self, sync_type: str = "one_way") -> None:
        self.clock = FakeClock(NOW)
        self.server = FakeCalDavServer()
        self.server.passwords["ann"] = "pw"
        self.info = self.server.add_calendar("Work")
        self.connector = FakeCalendarConnector(self.server)
        self.accounts = FakeCalendarAccountRepository()
        self.account = CalendarAccount(
            id="acct1",
            company_id="c1",
            user_id="u1",
            url=self.server.url,
            username="ann",
            calendars=[self.info],
            calendar_id=self.info.id,
            sync_type=sync_type,  # type: ignore[arg-type]
            activity_types=["meeting", "call"],
            default_activity_type="meeting",
            sync_since=SET_UP,
            created_at=SET_UP - timedelta(days=1),
            next_poll_at=NOW,
        )
        self.accounts.create(self.account, {})
        self.store = FakeCalendarSyncStore()
        self.records = CountingRecords()
        self.queue = FakeCalendarSyncQueue()
        self.events = FakeEventPublisher()
        self.health = RecordingHealth()
        hook = CalendarPushOnChange(self.accounts, self.store, self.queue, self.clock)
        ids = iter(f"a{n}" for n in range(10_000))
        self.directory = DirectoryService(
            self.records, self.clock, new_id=lambda: next(ids), changes=hook
        )
        self.job = CalendarSyncJob(job_id="j1", company_id="c1", account_id="acct1")

    def sync(self, connector: Any = None) -> CalendarRun:
        return CalendarSync(
            self.accounts,
            self.health,
            connector or self.connector,
            self.store,
            self.records,
            self.events,
            self.clock,
        ).run(self.job)

    def activity(self, **fields: Any) -> Activity:
        body = {
            "type": "meeting",
            "subject": "Demo",
            "start": NOW + timedelta(days=1),
            "duration_minutes": 30,
            **fields,
        }
        return self.directory.create(ANN, Activity, ActivityCreate.model_validate(body))

    def update(self, activity_id: str, **fields: Any) -> Activity:
        patch = ActivityUpdate.model_validate(fields)
        return self.directory.update(ANN, Activity, activity_id, patch)

    def calendar(self) -> dict[str, tuple[str, str]]:
        return self.server.calendars[self.info.url].events

    def session(self) -> FakeCalendarSession:
        return FakeCalendarSession(self.server)

    def external_put(self, name: str, ics: str) -> str:
        href = f"{self.info.url}{name}.ics"
        etag = self.calendar().get(href, (None, ""))[0]
        outcome, _ = self.session().put(self.info.url, href, ics, etag)
        assert outcome in ("created", "updated")
        return href

    def activities(self) -> list[Activity]:
        return sorted(
            (r for r in self.records.records.values() if isinstance(r, Activity)),
            key=lambda a: (a.start, a.id),
        )

    def event_of(self, activity_id: str) -> str:
        uid = event_uid("c1", activity_id)
        found = self.session().find_uid(self.info.url, uid)
        assert found is not None
        assert found.ics is not None
        return found.ics

    def settle(self) -> None:
        """Two syncs: the second reads back the first one's writes."""
        self.sync()
        self.sync()


# ---------------------------------------------------------------- push


def test_push_writes_a_selected_activity_created_after_set_up() -> None:
    world = World()
    activity = world.activity(
        subject="Demo for Acme",
        location="Room 4",
        note="Bring the slides",
        participants=[{"email": "jane@acme.example"}],
        busy=False,
    )
    run = world.sync()
    assert run.outcome == "ok"
    assert run.pushed == 1
    assert len(world.calendar()) == 1
    ics = world.event_of(activity.id)
    assert "SUMMARY:Demo for Acme" in ics
    assert "LOCATION:Room 4" in ics
    assert "Bring the slides" in ics
    assert "mailto:jane@acme.example" in ics
    assert "TRANSP:TRANSPARENT" in ics
    assert f"DTSTART:{stamp(activity.start)}" in ics
    mapping = world.store.mapping("c1", activity.id)
    assert mapping is not None
    assert mapping.uid == event_uid("c1", activity.id)
    synced = [e.detail for e in world.events.events if e.detail_type == "activity.synced"]
    assert synced == [
        {
            "activity_id": activity.id,
            "account_id": "acct1",
            "uid": mapping.uid,
            "direction": "push",
            "action": "created",
        }
    ]
    assert world.store.markers == {}


def test_unselected_type_and_activities_from_before_set_up_never_become_events() -> None:
    world = World()
    task = world.activity(type="task", subject="Send the quote")
    world.clock.set(SET_UP - timedelta(days=2))
    old = world.activity(subject="Old meeting")
    world.clock.set(NOW)
    run = world.sync()
    assert world.calendar() == {}
    reasons = {s.activity_id: s.reason for s in run.skipped}
    assert reasons == {task.id: "unselected_type", old.id: "before_sync_start"}
    stored = {s.activity_id: s.reason for s in world.store.skipped("c1", "acct1")}
    assert stored == reasons
    for _ in range(3):
        world.sync()
    assert world.calendar() == {}


def test_edits_and_deletions_of_the_activity_reach_the_event() -> None:
    world = World()
    activity = world.activity(subject="Demo")
    world.sync()
    world.clock.advance(timedelta(minutes=5))
    moved = world.update(activity.id, subject="Demo moved", start=NOW + timedelta(days=2))
    world.sync()
    ics = world.event_of(activity.id)
    assert "SUMMARY:Demo moved" in ics
    assert f"DTSTART:{stamp(moved.start)}" in ics
    assert len(world.calendar()) == 1

    world.update(activity.id, type="task")  # no longer selected: the event goes
    run = world.sync()
    assert world.calendar() == {}
    assert run.push_deleted == 1
    assert [s.reason for s in run.skipped] == ["unselected_type"]

    world.update(activity.id, type="call")
    world.sync()
    assert len(world.calendar()) == 1
    world.directory.delete(ANN, Activity, activity.id)
    world.sync()
    assert world.calendar() == {}
    assert world.store.mapping("c1", activity.id) is None


def test_an_activity_given_to_someone_else_leaves_the_calendar() -> None:
    world = World()
    activity = world.activity()
    world.sync()
    world.directory.update(ADMIN, Activity, activity.id, ActivityUpdate(owner_id="u2"))
    run = world.sync()
    assert world.calendar() == {}
    assert [s.reason for s in run.skipped] == ["owned_by_someone_else"]


def test_fifty_syncs_and_a_redelivered_job_leave_one_event_per_activity() -> None:
    world = World()
    activities = [world.activity(subject=f"Meeting {n}") for n in range(5)]
    for _ in range(50):
        world.sync()
        world.sync()  # the same job again
    assert len(world.calendar()) == 5
    uids = {event_uid("c1", a.id) for a in activities}
    assert {world.session().find_uid(world.info.url, u) is not None for u in uids} == {True}


def test_a_worker_killed_between_put_and_mapping_leaves_one_event() -> None:
    world = World()
    activity = world.activity(subject="Demo")
    world.store.fail_save_event_after = 0
    with pytest.raises(WorkerKilled):
        world.sync()
    assert len(world.calendar()) == 1
    assert world.store.mapping("c1", activity.id) is None
    world.store.fail_save_event_after = None
    world.sync()
    world.sync()
    assert len(world.calendar()) == 1
    mapping = world.store.mapping("c1", activity.id)
    assert mapping is not None
    assert mapping.href in world.calendar()


def test_a_killed_push_of_an_activity_deleted_meanwhile_removes_the_event() -> None:
    world = World()
    activity = world.activity()
    world.store.fail_save_event_after = 0
    with pytest.raises(WorkerKilled):
        world.sync()
    world.store.fail_save_event_after = None
    world.directory.delete(ANN, Activity, activity.id)
    world.sync()
    assert world.calendar() == {}


def test_all_day_activity_is_pushed_as_a_date() -> None:
    world = World()
    activity = world.activity(
        subject="Trade fair",
        start=datetime(2025, 3, 10, tzinfo=UTC),
        all_day=True,
        duration_minutes=2 * 24 * 60,
    )
    world.sync()
    ics = world.event_of(activity.id)
    assert "DTSTART;VALUE=DATE:20250310" in ics
    assert "DTEND;VALUE=DATE:20250312" in ics


# ---------------------------------------------------------------- pull


def test_two_way_pull_creates_moves_edits_and_deletes_activities() -> None:
    world = World("two_way")
    world.records.create(
        "c1",
        Person(
            id="p1",
            name="Jane Roe",
            emails=["jane@acme.example"],
            owner_id="u1",
            created_at=NOW,
            updated_at=NOW,
        ),
    )
    world.external_put(
        "old",
        vevent("old@other", NOW + timedelta(days=3), last_modified=SET_UP - timedelta(days=9)),
    )
    world.sync()
    assert world.activities() == []  # in the calendar before set-up

    start = NOW + timedelta(days=2)
    href = world.external_put(
        "new",
        vevent("new@other", start, extra="ATTENDEE;CN=Jane:mailto:jane@acme.example\r\n"),
    )
    run = world.sync()
    assert run.pulled_created == 1
    (activity,) = world.activities()
    assert (activity.subject, activity.start, activity.duration_minutes) == (
        "Call with Acme",
        start,
        60,
    )
    assert activity.type == "meeting"
    assert activity.owner_id == "u1"
    assert [(p.email, p.person_id) for p in activity.participants] == [("jane@acme.example", "p1")]

    world.clock.advance(timedelta(minutes=10))
    later = start + timedelta(hours=3)
    world.external_put("new", vevent("new@other", later, last_modified=world.clock.now()))
    world.sync()
    (moved,) = world.activities()
    assert moved.id == activity.id
    assert moved.start == later

    world.external_put(
        "new",
        vevent("new@other", later, summary="Call with Acme (CFO)", last_modified=world.clock.now()),
    )
    world.sync()
    assert world.activities()[0].subject == "Call with Acme (CFO)"

    world.session().delete(world.info.url, href, None)
    run = world.sync()
    assert run.pulled_deleted == 1
    assert world.activities() == []
    pulled = [e.detail["action"] for e in world.events.events if e.detail["direction"] == "pull"]
    assert pulled == ["created", "updated", "updated", "deleted"]


def test_weekly_event_with_an_exception_and_an_exdate_gives_the_right_activities() -> None:
    world = World("two_way")
    world.sync()  # set-up baseline
    first = datetime(2025, 3, 4, 10, 0, tzinfo=UTC)  # NOW + 1 day, 10:00
    week = timedelta(days=7)
    exdate = first + 4 * week
    moved_from = first + 1 * week
    series = (
        "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//other app//EN\r\n"
        f"BEGIN:VEVENT\r\nUID:weekly@other\r\nDTSTAMP:{stamp(NOW)}\r\nLAST-MODIFIED:{stamp(NOW)}\r\n"
        f"DTSTART:{stamp(first)}\r\nDTEND:{stamp(first + timedelta(minutes=30))}\r\n"
        f"RRULE:FREQ=WEEKLY\r\nEXDATE:{stamp(exdate)}\r\nSUMMARY:Weekly sync\r\nEND:VEVENT\r\n"
        f"BEGIN:VEVENT\r\nUID:weekly@other\r\nDTSTAMP:{stamp(NOW)}\r\nLAST-MODIFIED:{stamp(NOW)}\r\n"
        f"RECURRENCE-ID:{stamp(moved_from)}\r\n"
        f"DTSTART:{stamp(moved_from + timedelta(hours=1))}\r\n"
        f"DTEND:{stamp(moved_from + timedelta(hours=1, minutes=30))}\r\n"
        "SUMMARY:Weekly sync (moved)\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n"
    )
    world.external_put("weekly", series)
    world.sync()

    def expected(now: datetime) -> list[datetime]:
        starts = []
        for k in range(60):
            original = first + k * week
            if original == exdate or original < now or original >= now + timedelta(days=90):
                continue
            starts.append(original + timedelta(hours=1) if original == moved_from else original)
        return starts

    starts = [a.start for a in world.activities()]
    assert starts == expected(NOW)
    assert len(starts) == 12
    assert world.activities()[1].subject == "Weekly sync (moved)"

    for _ in range(2):
        world.sync()
    assert len(world.activities()) == 12  # nothing duplicated

    world.clock.advance(timedelta(days=14))  # the window moves: the next ones come
    world.sync()
    now = world.clock.now()
    starts = [a.start for a in world.activities()]
    past = [s for s in starts if s < now]
    assert past == [first, moved_from + timedelta(hours=1)]  # kept as history
    assert [s for s in starts if s >= now] == expected(now)


def test_all_day_and_other_time_zone_events_keep_their_times() -> None:
    world = World("two_way")
    world.sync()
    world.external_put(
        "fair",
        vevent(
            "fair@other",
            "DTSTART;VALUE=DATE:20250310\r\nDTEND;VALUE=DATE:20250312",
            summary="Trade fair",
        ),
    )
    world.external_put(
        "ny",
        vevent(
            "ny@other",
            "DTSTART;TZID=America/New_York:20250310T090000\r\n"
            "DTEND;TZID=America/New_York:20250310T100000",
            summary="New York call",
        ),
    )
    world.sync()
    by_subject = {a.subject: a for a in world.activities()}
    fair = by_subject["Trade fair"]
    assert fair.all_day
    assert fair.start == datetime(2025, 3, 10, tzinfo=UTC)
    assert fair.duration_minutes == 2 * 24 * 60
    call = by_subject["New York call"]
    assert call.start == datetime(2025, 3, 10, 9, 0, tzinfo=ZoneInfo("America/New_York"))
    assert call.start == datetime(2025, 3, 10, 13, 0, tzinfo=UTC)
    assert not call.all_day


def test_own_writes_never_come_back_as_changes() -> None:
    world = World("two_way")
    activity = world.activity()
    world.sync()
    writes = world.records.writes
    run = world.sync()
    assert run.own_writes_ignored == 1
    assert run.pulled_updated == 0
    assert world.records.writes == writes
    assert world.records.get("c1", Activity, activity.id) == activity
    assert [e.detail["direction"] for e in world.events.events] == ["push"]


# ---------------------------------------------------------------- the conflict rule


def _conflict(world: World, crm_at: datetime, event_at: datetime) -> Activity:
    activity = world.activity(subject="Demo")
    world.settle()
    world.clock.set(crm_at)
    world.update(activity.id, subject="CRM edit")
    ics = world.event_of(activity.id).replace("SUMMARY:Demo", "SUMMARY:Calendar edit")
    ics = ics.replace(
        f"LAST-MODIFIED:{stamp(activity.updated_at)}", f"LAST-MODIFIED:{stamp(event_at)}"
    )
    mapping = world.store.mapping("c1", activity.id)
    assert mapping is not None
    outcome, _ = world.session().put(world.info.url, mapping.href, ics, mapping.etag)
    assert outcome == "updated"
    world.clock.set(max(crm_at, event_at) + timedelta(minutes=1))
    run = world.sync()
    assert run.conflicts == 1
    world.sync()
    return activity


@pytest.mark.parametrize(
    ("crm_minute", "event_minute", "winner"),
    [(5, 10, "Calendar edit"), (10, 5, "CRM edit"), (7, 7, "CRM edit")],
)
def test_when_both_sides_changed_the_later_modification_wins(
    crm_minute: int, event_minute: int, winner: str
) -> None:
    world = World("two_way")
    activity = _conflict(
        world, NOW + timedelta(minutes=crm_minute), NOW + timedelta(minutes=event_minute)
    )
    stored = world.records.get("c1", Activity, activity.id)
    assert stored is not None
    assert stored.subject == winner
    assert f"SUMMARY:{winner}" in world.event_of(activity.id)
    assert len(world.calendar()) == 1


def test_conflict_rule_ties_go_to_the_crm() -> None:
    at = NOW
    assert not event_wins(at, at)
    assert not event_wins(None, at)
    assert event_wins(at + timedelta(seconds=1), at)


def test_a_push_that_meets_a_412_rereads_and_applies_the_rule() -> None:
    world = World("one_way")
    activity = world.activity(subject="Demo")
    world.sync()
    mapping = world.store.mapping("c1", activity.id)
    assert mapping is not None
    edited = world.event_of(activity.id).replace("SUMMARY:Demo", "SUMMARY:Edited elsewhere")
    world.session().put(world.info.url, mapping.href, edited, mapping.etag)
    world.clock.advance(timedelta(minutes=1))
    world.update(activity.id, subject="Demo v2")
    run = world.sync()
    assert run.pushed == 1
    assert "SUMMARY:Demo v2" in world.event_of(activity.id)


# ---------------------------------------------------------------- cost


@pytest.mark.parametrize("sync_type", ["one_way", "two_way"])
def test_an_idle_sync_is_one_request_and_no_write(sync_type: str) -> None:
    world = World(sync_type)
    world.activity()
    world.external_put("x", vevent("x@other", NOW + timedelta(days=1)))
    world.settle()
    store_writes, record_writes = world.store.writes, world.records.writes
    run = world.sync()
    assert run.requests == 1
    assert world.store.writes == store_writes
    assert world.records.writes == record_writes


# ---------------------------------------------------------------- failures


def test_a_refused_password_records_auth_failed() -> None:
    world = World()
    world.activity()
    world.server.passwords["ann"] = "changed"
    run = world.sync()
    assert run.outcome == "failed"
    assert [p.code for p in world.health.failures] == ["auth_failed"]
    assert len(world.store.markers) == 1  # kept for the sync after re-authentication


def test_a_read_only_calendar_records_permission_denied_and_keeps_the_change() -> None:
    world = World()
    activity = world.activity()
    world.server.set_writable(world.info.id, False)
    world.sync()
    assert [p.code for p in world.health.failures] == ["permission_denied"]
    assert list(world.store.markers) == [("c1", "acct1", activity.id)]
    world.server.set_writable(world.info.id, True)
    world.sync()
    assert len(world.calendar()) == 1


def test_a_deleted_calendar_records_calendar_missing() -> None:
    world = World()
    world.server.remove_calendar(world.info.id)
    world.sync()
    assert [p.code for p in world.health.failures] == ["calendar_missing"]


@pytest.mark.parametrize("after", [0, 1, 2, 3, 4, 5, 6])
def test_a_hang_up_mid_sync_loses_nothing(after: int) -> None:
    world = World("two_way")
    world.sync()
    activities = [world.activity(subject=f"Meeting {n}") for n in range(3)]
    world.external_put("a", vevent("a@other", NOW + timedelta(days=2)))
    world.external_put("b", vevent("b@other", NOW + timedelta(days=3)))
    run = world.sync(HangingConnector(world.connector, after))
    if run.outcome == "failed":
        assert [p.code for p in world.health.failures] == ["connection_error"]
    world.settle()
    assert len(world.calendar()) == 5
    assert len(world.activities()) == 5
    for activity in activities:
        assert world.store.mapping("c1", activity.id) is not None
    assert world.sync().requests == 1


# ---------------------------------------------------------------- triggers and rules


def test_an_activity_change_marks_and_queues_the_owner_calendar_accounts() -> None:
    world = World()
    activity = world.activity()
    assert [(j.account_id, j.reason) for j in world.queue.jobs] == [("acct1", "activity")]
    assert ("c1", "acct1", activity.id) in world.store.markers


def test_listeners_are_all_told() -> None:
    told: list[str] = []

    class Listener:
        def __init__(self, name: str) -> None:
            self.name = name

        def changed(self, company_id: str, before: Any, after: Any) -> None:
            told.append(self.name)

    DirectoryChangeListeners([Listener("rematch"), Listener("calendar")]).changed("c1", None, None)
    assert told == ["rematch", "calendar"]


def test_the_dispatcher_queues_due_calendar_accounts_once() -> None:
    world = World()
    dispatcher = CalendarPollDispatcher(
        world.accounts, world.queue, world.clock, shard_count=8, lease=timedelta(minutes=5)
    )
    first = dispatcher.dispatch()
    second = dispatcher.dispatch()
    assert (first.enqueued, second.enqueued) == (1, 0)
    assert [j.reason for j in world.queue.jobs] == ["schedule"]


def test_skip_reasons() -> None:
    world = World()
    base = {
        "id": "x",
        "type": "meeting",
        "subject": "s",
        "start": NOW,
        "owner_id": "u1",
        "created_at": NOW,
        "updated_at": NOW,
    }
    account = world.account
    assert skip_reason(account, Activity.model_validate(base)) is None
    assert skip_reason(account, Activity.model_validate({**base, "owner_id": "u2"})) == (
        "owned_by_someone_else"
    )
    assert skip_reason(account, Activity.model_validate({**base, "type": "task"})) == (
        "unselected_type"
    )
    old = {**base, "updated_at": SET_UP - timedelta(seconds=1)}
    assert skip_reason(account, Activity.model_validate(old)) == "before_sync_start"
