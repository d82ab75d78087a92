"""Issue 8's acceptance list, end to end: the local stack (API, FIFO queue, calendar_sync,
DynamoDB Local) against a real Radicale, with the `caldav` client playing "another app".

Covered here (test_calendar_sync.py has the basic push/pull round trips): activities older
than the set-up never syncing, no duplicate after many syncs, redelivered jobs and a worker
killed mid-push; recurring, all-day and foreign-time-zone events; the conflict rule both
ways and no ping-pong; 401, 403 on write, a deleted calendar and a hang-up mid-sync."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import boto3
import caldav
import pytest
import requests
from icalendar import Calendar, Event

from crmsync.calendar.problems import PERMISSION_FIX
from crmsync.models.calendar import CalendarSyncJob
from crmsync.runtime import current_runtime
from crmsync_local.stack import LocalStack
from crmsync_local.testservers.hangup_proxy import HangupProxy
from crmsync_local.testservers.radicale import CalUser, RadicaleServer

pytestmark = pytest.mark.e2e
ACCOUNTS = "/v1/calendar-accounts"


def _start() -> datetime:
    return datetime.now(UTC).replace(microsecond=0, second=0, minute=0) + timedelta(days=2)


class Client:
    def __init__(self, stack: LocalStack, user: str, company: str) -> None:
        self.base = stack.url
        self.headers = {"Authorization": f"Bearer {stack.token(user, company, 'user')}"}

    def __call__(
        self, method: str, path: str, body: Any = None, params: Any = None
    ) -> requests.Response:
        return requests.request(
            method, self.base + path, json=body, params=params, headers=self.headers, timeout=30
        )


@pytest.fixture
def owner(local_stack: LocalStack) -> Client:
    return Client(local_stack, "owner", f"co-{uuid.uuid4().hex[:8]}")


@pytest.fixture
def calendars(radicale: RadicaleServer, cal_user: CalUser) -> dict[str, str]:
    """Two calendars made by another app: name → URL."""
    with _dav(radicale, cal_user) as client:
        principal = client.principal()
        return {
            name: str(principal.make_calendar(name=name, cal_id=name).url)
            for name in ("crm", "old")
        }


@pytest.fixture
def held_jobs(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[CalendarSyncJob]]:
    """While active, calendar sync jobs (from activity changes and `POST …/sync`) are kept
    here instead of going to the queue; the test decides when (and how often) they run."""
    queue = current_runtime().calendar_sync_queue
    assert queue is not None
    held: list[CalendarSyncJob] = []
    with monkeypatch.context() as patch:
        patch.setattr(queue, "send", held.extend)
        yield held


def _dav(radicale: RadicaleServer, user: CalUser) -> caldav.DAVClient:
    return caldav.DAVClient(radicale.url, username=user.username, password=user.password)


def _events(radicale: RadicaleServer, user: CalUser, url: str) -> dict[str, list[Calendar]]:
    """The calendar's resources by UID (a UID with two resources is a duplicate)."""
    found: dict[str, list[Calendar]] = {}
    with _dav(radicale, user) as client:
        for resource in client.calendar(url=url).events():
            parsed = Calendar.from_ical(str(resource.data))
            (uid,) = {str(e["UID"]) for e in parsed.walk("VEVENT")}
            found.setdefault(uid, []).append(parsed)
    return found


def _summaries(radicale: RadicaleServer, user: CalUser, url: str) -> dict[str, str]:
    """activity id → SUMMARY of its event, asserting one resource per UID."""
    events = _events(radicale, user, url)
    assert all(len(resources) == 1 for resources in events.values()), events.keys()
    out: dict[str, str] = {}
    for (resource,) in events.values():
        for event in resource.walk("VEVENT"):
            out[str(event.get("X-CRMSYNC-ACTIVITY-ID", event["UID"]))] = str(event["SUMMARY"])
    return out


def _connect(
    owner: Client, radicale: RadicaleServer, user: CalUser, url: str | None = None, **extra: Any
) -> dict[str, Any]:
    body = {
        "provider": "caldav",
        "url": url or radicale.url,
        "username": user.username,
        "password": user.password,
        **extra,
    }
    reply = owner("POST", ACCOUNTS, body)
    assert reply.status_code == 201, reply.text
    return dict(reply.json())


def _choose(owner: Client, account: dict[str, Any], name: str, sync_type: str) -> dict[str, Any]:
    (calendar,) = [c for c in account["calendars"] if c["name"] == name]
    patch = {
        "calendar_id": calendar["id"],
        "sync_type": sync_type,
        "activity_types": ["meeting", "call"],
    }
    reply = owner("PATCH", f"{ACCOUNTS}/{account['id']}", patch)
    assert reply.status_code == 200, reply.text
    return dict(reply.json())


def _account(owner: Client, account_id: str) -> dict[str, Any]:
    reply = owner("GET", f"{ACCOUNTS}/{account_id}")
    assert reply.status_code == 200, reply.text
    return dict(reply.json())


def _sync(owner: Client, stack: LocalStack, account_id: str) -> None:
    reply = owner("POST", f"{ACCOUNTS}/{account_id}/sync")
    assert reply.status_code == 202, reply.text
    stack.drain()


def _job(account: dict[str, Any]) -> CalendarSyncJob:
    return CalendarSyncJob(
        job_id=f"{account['id']}:test:{uuid.uuid4().hex}",
        company_id=account["company_id"],
        account_id=account["id"],
        reason="manual",
    )


def _activities(owner: Client) -> dict[str, dict[str, Any]]:
    now = datetime.now(UTC)
    params = {
        "since": (now - timedelta(days=30)).isoformat(),
        "until": (now + timedelta(days=120)).isoformat(),
        "limit": 100,
    }
    reply = owner("GET", "/v1/activities", params=params)
    assert reply.status_code == 200, reply.text
    assert reply.json().get("next_cursor") is None
    return {a["id"]: a for a in reply.json()["items"]}


def _activity(owner: Client, **fields: Any) -> dict[str, Any]:
    body = {
        "type": "meeting",
        "subject": "Demo for Acme",
        "start": _start().isoformat(),
        "duration_minutes": 45,
        **fields,
    }
    reply = owner("POST", "/v1/activities", body)
    assert reply.status_code == 201, reply.text
    return dict(reply.json())


def _patch_activity(owner: Client, activity_id: str, **fields: Any) -> dict[str, Any]:
    reply = owner("PATCH", f"/v1/activities/{activity_id}", fields)
    assert reply.status_code == 200, reply.text
    return dict(reply.json())


def _ics(uid: str, *events: Event) -> str:
    calendar = Calendar()
    calendar.add("prodid", "-//another app//EN")
    calendar.add("version", "2.0")
    for event in events:
        event.add("uid", uid)
        event.add("dtstamp", datetime.now(UTC))
        calendar.add_component(event)
    calendar.add_missing_timezones()
    calendar.subcomponents.sort(key=lambda c: c.name != "VTIMEZONE")
    return str(calendar.to_ical().decode())


def _event(summary: str, start: date | datetime, end: date | datetime, **props: Any) -> Event:
    event = Event()
    event.add("summary", summary)
    event.add("dtstart", start)
    event.add("dtend", end)
    event.add("last-modified", props.pop("last_modified", datetime.now(UTC)))
    for name, value in props.items():
        event.add(name.replace("_", "-"), value)
    return event


def _redeliver(stack: LocalStack, job: CalendarSyncJob) -> None:
    """What SQS does on a redelivery: the same body again, under a new deduplication id."""
    boto3.client("sqs").send_message(
        QueueUrl=stack.resource("CalendarSyncQueue"),
        MessageBody=job.model_dump_json(),
        MessageGroupId=job.account_id,
        MessageDeduplicationId=uuid.uuid4().hex,
    )


def _comparable(activities: dict[str, dict[str, Any]]) -> dict[str, tuple[Any, ...]]:
    return {
        a["id"]: (a["subject"], a["start"], a["version"], a["updated_at"], a["calendar_event"])
        for a in activities.values()
    }


# ---------------------------------------------------------------------------- one-way


def test_one_way_never_pushes_older_activities_and_never_duplicates(
    local_stack: LocalStack,
    owner: Client,
    radicale: RadicaleServer,
    cal_user: CalUser,
    calendars: dict[str, str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    runtime = current_runtime()
    account = _connect(owner, radicale, cal_user)
    before_any = _activity(owner, subject="Before any calendar")
    # An activity changed while another calendar was chosen (so it has a push marker), but
    # before the calendar that syncs now was chosen: still older than the set-up.
    _choose(owner, account, "old", "one_way")
    owner("POST", f"{ACCOUNTS}/{account['id']}/stop")
    before_switch = _activity(owner, subject="Before the switch")
    account = _choose(owner, account, "crm", "one_way")
    assert owner("POST", f"{ACCOUNTS}/{account['id']}/resume").json()["state"] == "active"

    first = _activity(owner, subject="First after set-up")
    second = _activity(owner, type="call", subject="Second after set-up")
    local_stack.drain()
    for _ in range(3):
        _sync(owner, local_stack, account["id"])
    for _ in range(50):
        run = runtime.calendar_sync().run(_job(account))
        assert run.outcome == "ok"
        assert run.pushed == 0
    expected = {first["id"]: "First after set-up", second["id"]: "Second after set-up"}
    assert _summaries(radicale, cal_user, calendars["crm"]) == expected
    assert _events(radicale, cal_user, calendars["old"]) == {}
    listed = _activities(owner)
    assert listed[before_any["id"]]["calendar_event"] is None
    assert listed[before_switch["id"]]["calendar_event"] is None
    skipped = runtime.calendar_sync_store.skipped(account["company_id"], account["id"])
    assert {(s.activity_id, s.reason) for s in skipped} == {
        (before_switch["id"], "before_sync_start")
    }

    # A redelivered job: the change's job runs twice through the queue.
    with monkeypatch.context() as patch:
        held: list[CalendarSyncJob] = []
        queue = runtime.calendar_sync_queue
        assert queue is not None
        patch.setattr(queue, "send", held.extend)
        _patch_activity(owner, first["id"], subject="First, renamed")
        third = _activity(owner, subject="Third")
    assert len(held) == 2
    for job in held + held:
        _redeliver(local_stack, job)
    local_stack.drain()
    expected |= {first["id"]: "First, renamed", third["id"]: "Third"}
    assert _summaries(radicale, cal_user, calendars["crm"]) == expected

    # A worker killed after the PUT of a new event, before its mapping was saved.
    store = runtime.calendar_sync_store
    real_save = store.save_event
    calls: list[str] = []

    def dying(*args: Any, **kwargs: Any) -> None:
        calls.append("save_event")
        if len(calls) == 1:
            raise SystemExit("worker killed")
        real_save(*args, **kwargs)

    with monkeypatch.context() as patch:
        queue = runtime.calendar_sync_queue
        assert queue is not None
        patch.setattr(queue, "send", lambda jobs: None)
        fourth = _activity(owner, subject="Fourth")
        patch.setattr(store, "save_event", dying)
        with pytest.raises(SystemExit):
            runtime.calendar_sync().run(_job(account))
        assert calls == ["save_event"]
        events = _events(radicale, cal_user, calendars["crm"])
        assert len(events) == 4, "the PUT went through before the worker died"
        assert _activities(owner)[fourth["id"]]["calendar_event"] is None
        redone = runtime.calendar_sync().run(_job(account))
    assert redone.outcome == "ok"
    assert redone.pushed == 1
    _sync(owner, local_stack, account["id"])
    expected[fourth["id"]] = "Fourth"
    assert _summaries(radicale, cal_user, calendars["crm"]) == expected
    link = _activities(owner)[fourth["id"]]["calendar_event"]
    assert link is not None
    assert link["uid"] in _events(radicale, cal_user, calendars["crm"])


# ---------------------------------------------------------------------------- two-way


def test_a_weekly_series_with_an_exception_and_an_exdate_gives_the_right_activities(
    local_stack: LocalStack,
    owner: Client,
    radicale: RadicaleServer,
    cal_user: CalUser,
    calendars: dict[str, str],
) -> None:
    account = _choose(owner, _connect(owner, radicale, cal_user), "crm", "two_way")
    _sync(owner, local_stack, account["id"])  # the baseline after set-up

    first = _start().replace(hour=10)
    weekly = [first + timedelta(weeks=k) for k in range(20)]
    horizon = datetime.now(UTC) + timedelta(days=90)
    in_window = [s for s in weekly if s < horizon]
    assert len(in_window) == 13
    series = _event(
        "Weekly pipeline review",
        first,
        first + timedelta(hours=1),
        rrule={"FREQ": "WEEKLY"},
        exdate=weekly[2],
    )
    moved = _event(
        "Pipeline review (moved)",
        weekly[1] + timedelta(hours=3),
        weekly[1] + timedelta(hours=4),
        recurrence_id=weekly[1],
    )
    with _dav(radicale, cal_user) as client:
        client.calendar(url=calendars["crm"]).save_event(_ics("series@other", series, moved))
    _sync(owner, local_stack, account["id"])

    made = sorted(_activities(owner).values(), key=lambda a: a["start"])
    expected = [
        (s + timedelta(hours=3), "Pipeline review (moved)")
        if s == weekly[1]
        else (s, "Weekly pipeline review")
        for s in in_window
        if s != weekly[2]
    ]
    assert [(datetime.fromisoformat(a["start"]), a["subject"]) for a in made] == expected
    assert {a["calendar_event"]["uid"] for a in made} == {"series@other"}
    assert all(a["duration_minutes"] == 60 for a in made)

    # Another sync changes nothing: same activities, same versions.
    before = _comparable(_activities(owner))
    _sync(owner, local_stack, account["id"])
    assert _comparable(_activities(owner)) == before
    assert list(_events(radicale, cal_user, calendars["crm"])) == ["series@other"]


def test_an_all_day_event_and_one_in_another_time_zone_keep_their_times(
    local_stack: LocalStack,
    owner: Client,
    radicale: RadicaleServer,
    cal_user: CalUser,
    calendars: dict[str, str],
) -> None:
    account = _choose(owner, _connect(owner, radicale, cal_user), "crm", "two_way")
    _sync(owner, local_stack, account["id"])

    day = (datetime.now(UTC) + timedelta(days=5)).date()
    new_york = ZoneInfo("America/New_York")
    nine_am = datetime(day.year, day.month, day.day, 9, 0, tzinfo=new_york)
    with _dav(radicale, cal_user) as client:
        calendar = client.calendar(url=calendars["crm"])
        calendar.save_event(
            _ics("offsite@other", _event("Team offsite", day, day + timedelta(days=2)))
        )
        calendar.save_event(
            _ics("ny@other", _event("Call with NYC", nine_am, nine_am + timedelta(minutes=90)))
        )
    _sync(owner, local_stack, account["id"])

    by_uid = {a["calendar_event"]["uid"]: a for a in _activities(owner).values()}
    assert set(by_uid) == {"offsite@other", "ny@other"}
    offsite = by_uid["offsite@other"]
    assert offsite["all_day"] is True
    assert datetime.fromisoformat(offsite["start"]) == datetime(
        day.year, day.month, day.day, tzinfo=UTC
    )
    assert offsite["duration_minutes"] == 2 * 24 * 60
    call = by_uid["ny@other"]
    assert call["all_day"] is False
    assert datetime.fromisoformat(call["start"]) == nine_am  # 09:00 in New York, any offset
    assert call["duration_minutes"] == 90

    # Edited in the CRM, they go back with the same times (no drift by a day or a zone).
    for activity in (offsite, call):
        _patch_activity(owner, activity["id"], location="Somewhere")
    local_stack.drain()
    events = _events(radicale, cal_user, calendars["crm"])
    assert set(events) == {"offsite@other", "ny@other"}
    (offsite_ics,) = events["offsite@other"]
    (call_ics,) = events["ny@other"]
    (offsite_event,) = offsite_ics.walk("VEVENT")
    (call_event,) = call_ics.walk("VEVENT")
    assert str(offsite_event["LOCATION"]) == "Somewhere"
    assert offsite_event.decoded("DTSTART") == day
    assert offsite_event.decoded("DTEND") == day + timedelta(days=2)
    assert call_event.decoded("DTSTART") == nine_am
    assert call_event.decoded("DTEND") == nine_am + timedelta(minutes=90)


def test_a_conflicting_edit_resolves_by_the_later_modification_and_no_ping_pong(
    local_stack: LocalStack,
    owner: Client,
    radicale: RadicaleServer,
    cal_user: CalUser,
    calendars: dict[str, str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    runtime = current_runtime()
    account = _choose(owner, _connect(owner, radicale, cal_user), "crm", "two_way")
    _sync(owner, local_stack, account["id"])
    activity = _activity(owner, subject="Original")
    local_stack.drain()
    uid = _activities(owner)[activity["id"]]["calendar_event"]["uid"]

    # The push's own write comes back in the next sync-collection and is recognised.
    before = _comparable(_activities(owner))
    again = runtime.calendar_sync().run(_job(account))
    assert again.outcome == "ok"
    assert again.own_writes_ignored == 1
    assert (again.pulled_updated, again.pushed, again.conflicts) == (0, 0, 0)
    assert _comparable(_activities(owner)) == before

    def edit_event(summary: str, last_modified: datetime) -> None:
        with _dav(radicale, cal_user) as client:
            event = client.calendar(url=calendars["crm"]).event_by_uid(uid)
            parsed = Calendar.from_ical(str(event.data))
            (vevent,) = parsed.walk("VEVENT")
            del vevent["SUMMARY"]
            vevent.add("summary", summary)
            del vevent["LAST-MODIFIED"]
            vevent.add("last-modified", last_modified)
            event.data = parsed.to_ical().decode()
            event.save()

    queue = runtime.calendar_sync_queue
    assert queue is not None
    # 1. The calendar's edit is later: it wins, on both sides.
    with monkeypatch.context() as patch:
        patch.setattr(queue, "send", lambda jobs: None)
        crm = _patch_activity(owner, activity["id"], subject="CRM edit, earlier")
    edit_event(
        "Calendar edit, later", datetime.fromisoformat(crm["updated_at"]) + timedelta(hours=1)
    )
    run = runtime.calendar_sync().run(_job(account))
    assert run.outcome == "ok"
    assert run.conflicts == 1
    assert _activities(owner)[activity["id"]]["subject"] == "Calendar edit, later"
    assert _summaries(radicale, cal_user, calendars["crm"]) == {
        activity["id"]: "Calendar edit, later"
    }

    # 2. The CRM's edit is later: it wins, and overwrites the event.
    with monkeypatch.context() as patch:
        patch.setattr(queue, "send", lambda jobs: None)
        crm = _patch_activity(owner, activity["id"], subject="CRM edit, later")
    edit_event(
        "Calendar edit, earlier", datetime.fromisoformat(crm["updated_at"]) - timedelta(minutes=1)
    )
    run = runtime.calendar_sync().run(_job(account))
    assert run.outcome == "ok"
    assert run.conflicts == 1
    assert run.pushed == 1
    assert _activities(owner)[activity["id"]]["subject"] == "CRM edit, later"
    assert _summaries(radicale, cal_user, calendars["crm"]) == {activity["id"]: "CRM edit, later"}

    # And neither side's last write comes back as a change.
    _sync(owner, local_stack, account["id"])
    before = _comparable(_activities(owner))
    for _ in range(2):
        _sync(owner, local_stack, account["id"])
    assert _comparable(_activities(owner)) == before
    assert _summaries(radicale, cal_user, calendars["crm"]) == {activity["id"]: "CRM edit, later"}


# ---------------------------------------------------------------------------- errors


def test_a_refused_password_needs_reauth_with_the_app_password_hint_and_loses_nothing(
    local_stack: LocalStack,
    owner: Client,
    radicale: RadicaleServer,
    cal_user: CalUser,
    calendars: dict[str, str],
) -> None:
    account = _connect(owner, radicale, cal_user, uses_two_factor=True)
    account = _choose(owner, account, "crm", "one_way")
    activity = _activity(owner)
    local_stack.drain()
    before = _comparable(_activities(owner))
    assert list(_summaries(radicale, cal_user, calendars["crm"])) == [activity["id"]]

    radicale.set_password(cal_user.username, "changed-elsewhere")
    user = CalUser(cal_user.username, "changed-elsewhere", cal_user.principal_url)
    _sync(owner, local_stack, account["id"])
    shown = _account(owner, account["id"])
    assert shown["state"] == "needs_reauth"
    assert shown["last_error"]["code"] == "auth_failed"
    assert "app password" in shown["last_error"]["action"]
    assert "changed-elsewhere" not in str(shown)
    assert owner("POST", f"{ACCOUNTS}/{account['id']}/sync").status_code == 409
    assert _comparable(_activities(owner)) == before
    assert list(_summaries(radicale, user, calendars["crm"])) == [activity["id"]]


def test_a_refused_write_is_permission_denied_polling_stops_and_resume_pushes_it(
    local_stack: LocalStack,
    owner: Client,
    radicale: RadicaleServer,
    cal_user: CalUser,
    calendars: dict[str, str],
) -> None:
    runtime = current_runtime()
    account = _choose(owner, _connect(owner, radicale, cal_user), "crm", "one_way")
    activity = _activity(owner, subject="Before read-only")
    local_stack.drain()

    path = f"{cal_user.username}/crm"
    radicale.make_read_only(cal_user.username, path)
    try:
        _patch_activity(owner, activity["id"], subject="While read-only")
        local_stack.drain()  # the change's sync meets a 403 on its PUT
        shown = _account(owner, account["id"])
        assert shown["state"] == "permission_denied"
        assert shown["last_error"]["code"] == "permission_denied"
        assert shown["last_error"]["action"] == PERMISSION_FIX
        assert "IT administrator" in shown["last_error"]["action"]
        assert shown["next_poll_at"] is None
        assert owner("POST", f"{ACCOUNTS}/{account['id']}/sync").status_code == 409
        assert runtime.calendar_sync().run(_job(account)).outcome == "not_due"
        assert _summaries(radicale, cal_user, calendars["crm"]) == {
            activity["id"]: "Before read-only"
        }
        assert _activities(owner)[activity["id"]]["subject"] == "While read-only"
    finally:
        radicale.make_writable(cal_user.username, path)

    resumed = owner("POST", f"{ACCOUNTS}/{account['id']}/resume")
    assert resumed.json()["state"] == "active"
    _sync(owner, local_stack, account["id"])
    assert _account(owner, account["id"])["state"] == "active"
    assert _summaries(radicale, cal_user, calendars["crm"]) == {activity["id"]: "While read-only"}


def test_a_deleted_calendar_asks_to_choose_another_and_deletes_no_activity(
    local_stack: LocalStack,
    owner: Client,
    radicale: RadicaleServer,
    cal_user: CalUser,
    calendars: dict[str, str],
) -> None:
    account = _choose(owner, _connect(owner, radicale, cal_user), "crm", "two_way")
    _sync(owner, local_stack, account["id"])
    pushed = _activity(owner, subject="Pushed")
    start = _start()
    with _dav(radicale, cal_user) as client:
        client.calendar(url=calendars["crm"]).save_event(
            _ics("pulled@other", _event("Pulled", start, start + timedelta(hours=1)))
        )
    local_stack.drain()
    _sync(owner, local_stack, account["id"])
    before = _comparable(_activities(owner))
    assert len(before) == 2
    assert all(a[4] is not None for a in before.values())

    with _dav(radicale, cal_user) as client:
        client.calendar(url=calendars["crm"]).delete()
    _sync(owner, local_stack, account["id"])
    shown = _account(owner, account["id"])
    assert shown["state"] == "calendar_missing"
    assert shown["last_error"]["code"] == "calendar_missing"
    assert "no longer exists" in shown["last_error"]["message"]
    assert "choose another calendar" in shown["last_error"]["action"]
    assert owner("POST", f"{ACCOUNTS}/{account['id']}/sync").status_code == 409
    assert _comparable(_activities(owner)) == before

    chosen = _choose(owner, shown, "old", "two_way")
    assert chosen["state"] == "active"
    _sync(owner, local_stack, account["id"])
    assert _account(owner, account["id"])["state"] == "active"
    # The first sync of the new calendar does not take the old one's events as deleted.
    assert _comparable(_activities(owner)) == before
    assert pushed["id"] in before
    assert _events(radicale, cal_user, calendars["old"]) == {}


def test_a_hang_up_mid_sync_loses_nothing_and_the_next_sync_completes(
    local_stack: LocalStack,
    owner: Client,
    radicale: RadicaleServer,
    cal_user: CalUser,
    calendars: dict[str, str],
    held_jobs: list[CalendarSyncJob],
) -> None:
    runtime = current_runtime()
    with HangupProxy(radicale.host, radicale.port) as proxy:
        proxied = f"http://{proxy.host}:{proxy.port}/"
        account = _choose(owner, _connect(owner, radicale, cal_user, url=proxied), "crm", "two_way")
        assert runtime.calendar_sync().run(_job(account)).outcome == "ok"  # the baseline
        made = [_activity(owner, subject=f"Meeting {n}") for n in range(3)]
        start = _start()
        with _dav(radicale, cal_user) as client:
            client.calendar(url=calendars["crm"]).save_event(
                _ics("other@app", _event("From the other app", start, start + timedelta(hours=1)))
            )

        # The first PUT reaches Radicale, then the connection dies mid-answer.
        proxy.arm(trigger=b"PUT ", server_bytes=10)
        failed = runtime.calendar_sync().run(_job(account))
        assert proxy.cuts == 1
        assert failed.outcome == "failed"
        assert failed.error_code == "server_error"
        shown = _account(owner, account["id"])
        assert shown["state"] == "connection_error"
        assert "closed the connection" in shown["last_error"]["message"]
        assert len(_events(radicale, cal_user, calendars["crm"])) == 2  # other + one PUT

        proxy.disarm()
        held_jobs.clear()
        assert owner("POST", f"{ACCOUNTS}/{account['id']}/sync").status_code == 202
        (job,) = held_jobs
        done = runtime.calendar_sync().run(job)
    assert done.outcome == "ok"
    assert _account(owner, account["id"])["state"] == "active"
    summaries = _summaries(radicale, cal_user, calendars["crm"])
    assert summaries == {
        **{a["id"]: a["subject"] for a in made},
        "other@app": "From the other app",
    }
    listed = _activities(owner)
    assert sorted(a["subject"] for a in listed.values()) == [
        "From the other app",
        "Meeting 0",
        "Meeting 1",
        "Meeting 2",
    ]
    assert all(a["calendar_event"] is not None for a in listed.values())
