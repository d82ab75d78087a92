"""Calendar sync end to end: the local stack (API, queue, calendar_sync function, DynamoDB
Local) against a real Radicale server, read and written with the `caldav` client as another
calendar app would."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import caldav
import pytest
import requests

from crmsync_local.stack import LocalStack
from crmsync_local.testservers.radicale import CalUser, RadicaleServer

pytestmark = pytest.mark.e2e
ACCOUNTS = "/v1/calendar-accounts"
START = datetime.now(UTC).replace(microsecond=0, second=0) + timedelta(days=2)


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
def calendar_url(radicale: RadicaleServer, cal_user: CalUser) -> str:
    with _dav(radicale, cal_user) as client:
        return str(client.principal().make_calendar(name="CRM", cal_id="crm").url)


def _dav(radicale: RadicaleServer, user: CalUser) -> caldav.DAVClient:
    return caldav.DAVClient(radicale.url, username=user.username, password=user.password)


def _events(radicale: RadicaleServer, user: CalUser, url: str) -> list[str]:
    with _dav(radicale, user) as client:
        return [str(event.data) for event in client.calendar(url=url).events()]


def _connect(
    owner: Client, radicale: RadicaleServer, user: CalUser, url: str, sync_type: str
) -> str:
    body = {
        "provider": "caldav",
        "url": radicale.url,
        "username": user.username,
        "password": user.password,
    }
    reply = owner("POST", ACCOUNTS, body)
    assert reply.status_code == 201, reply.text
    account = reply.json()
    (calendar,) = [c for c in account["calendars"] if c["url"].rstrip("/") == url.rstrip("/")]
    patch = {
        "calendar_id": calendar["id"],
        "sync_type": sync_type,
        "activity_types": ["meeting", "call"],
    }
    reply = owner("PATCH", f"{ACCOUNTS}/{account['id']}", patch)
    assert reply.status_code == 200, reply.text
    return str(account["id"])


def _sync(owner: Client, stack: LocalStack, account_id: str) -> None:
    reply = owner("POST", f"{ACCOUNTS}/{account_id}/sync")
    assert reply.status_code == 202, reply.text
    stack.drain()


def _activities(owner: Client) -> list[dict[str, Any]]:
    since = (START - timedelta(days=30)).isoformat()
    until = (START + timedelta(days=30)).isoformat()
    reply = owner("GET", "/v1/activities", params={"since": since, "until": until, "limit": 100})
    assert reply.status_code == 200, reply.text
    return list(reply.json()["items"])


def _activity(owner: Client, **fields: Any) -> dict[str, Any]:
    body = {
        "type": "meeting",
        "subject": "Demo for Acme",
        "start": START.isoformat(),
        "duration_minutes": 45,
        **fields,
    }
    reply = owner("POST", "/v1/activities", body)
    assert reply.status_code == 201, reply.text
    return dict(reply.json())


def test_one_way_push_edit_delete_and_no_duplicates(
    local_stack: LocalStack,
    owner: Client,
    radicale: RadicaleServer,
    cal_user: CalUser,
    calendar_url: str,
) -> None:
    account_id = _connect(owner, radicale, cal_user, calendar_url, "one_way")
    meeting = _activity(owner, location="Room 4", participants=[{"email": "jane@acme.example"}])
    task = _activity(owner, type="task", subject="Send the quote")
    _sync(owner, local_stack, account_id)

    (event,) = _events(radicale, cal_user, calendar_url)
    assert "SUMMARY:Demo for Acme" in event
    assert "LOCATION:Room 4" in event
    assert "mailto:jane@acme.example" in event
    listed = {a["id"]: a for a in _activities(owner)}
    link = listed[meeting["id"]]["calendar_event"]
    assert link["account_id"] == account_id
    assert f"UID:{link['uid']}" in event
    assert listed[task["id"]]["calendar_event"] is None

    reply = owner("PATCH", f"/v1/activities/{meeting['id']}", {"subject": "Demo moved"})
    assert reply.status_code == 200
    local_stack.drain()  # the change queued a sync of the owner's calendar account
    (event,) = _events(radicale, cal_user, calendar_url)
    assert "SUMMARY:Demo moved" in event

    for _ in range(5):
        _sync(owner, local_stack, account_id)
    assert len(_events(radicale, cal_user, calendar_url)) == 1

    assert owner("DELETE", f"/v1/activities/{meeting['id']}").status_code == 204
    local_stack.drain()
    assert _events(radicale, cal_user, calendar_url) == []


def test_two_way_events_made_moved_and_deleted_in_the_calendar_reach_activities(
    local_stack: LocalStack,
    owner: Client,
    radicale: RadicaleServer,
    cal_user: CalUser,
    calendar_url: str,
) -> None:
    account_id = _connect(owner, radicale, cal_user, calendar_url, "two_way")
    _sync(owner, local_stack, account_id)  # the baseline after set-up

    def stamp(moment: datetime) -> str:
        return moment.astimezone(UTC).strftime("%Y%m%dT%H%M%SZ")

    def ics(start: datetime, summary: str) -> str:
        now = datetime.now(UTC)
        return (
            "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//another app//EN\r\n"
            f"BEGIN:VEVENT\r\nUID:e2e-{account_id}@other\r\nDTSTAMP:{stamp(now)}\r\n"
            f"LAST-MODIFIED:{stamp(now)}\r\nDTSTART:{stamp(start)}\r\n"
            f"DTEND:{stamp(start + timedelta(hours=1))}\r\nSUMMARY:{summary}\r\n"
            "END:VEVENT\r\nEND:VCALENDAR\r\n"
        )

    with _dav(radicale, cal_user) as client:
        calendar = client.calendar(url=calendar_url)
        event = calendar.save_event(ics(START, "Call with Acme"))
    _sync(owner, local_stack, account_id)
    (activity,) = _activities(owner)
    assert activity["subject"] == "Call with Acme"
    assert datetime.fromisoformat(activity["start"]) == START
    assert activity["calendar_event"]["account_id"] == account_id

    moved = START + timedelta(hours=3)
    with _dav(radicale, cal_user) as client:
        event = client.calendar(url=calendar_url).event_by_uid(f"e2e-{account_id}@other")
        event.data = ics(moved, "Call with Acme (CFO)")
        event.save()
    _sync(owner, local_stack, account_id)
    (activity,) = _activities(owner)
    assert activity["subject"] == "Call with Acme (CFO)"
    assert datetime.fromisoformat(activity["start"]) == moved

    _sync(owner, local_stack, account_id)  # our own writes do not come back
    assert len(_events(radicale, cal_user, calendar_url)) == 1

    with _dav(radicale, cal_user) as client:
        client.calendar(url=calendar_url).event_by_uid(f"e2e-{account_id}@other").delete()
    _sync(owner, local_stack, account_id)
    assert _activities(owner) == []
    synced = [
        e["detail"]
        for e in local_stack.published_events()
        if e["detail-type"] == "activity.synced" and e["detail"]["account_id"] == account_id
    ]
    assert [d["action"] for d in synced if d["direction"] == "pull"] == [
        "created",
        "updated",
        "deleted",
    ]
