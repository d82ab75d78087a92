"""The private Radicale serves real CalDAV to the `caldav` client library."""

from __future__ import annotations

import datetime as dt
import uuid

import caldav
import pytest
import requests
from caldav.lib.error import AuthorizationError

from crmsync_local.testservers.radicale import CalUser, RadicaleServer

pytestmark = pytest.mark.integration


def _ics(uid: str, summary: str) -> str:
    return (
        "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//crmsync//tests//EN\r\n"
        "BEGIN:VEVENT\r\n"
        f"UID:{uid}\r\nDTSTAMP:20260101T000000Z\r\n"
        "DTSTART:20260105T100000Z\r\nDTEND:20260105T110000Z\r\n"
        f"SUMMARY:{summary}\r\n"
        "END:VEVENT\r\nEND:VCALENDAR\r\n"
    )


def test_calendar_and_event_round_trip(radicale: RadicaleServer, cal_user: CalUser) -> None:
    event_uid = f"{uuid.uuid4()}@crmsync.test"
    with caldav.DAVClient(
        radicale.url, username=cal_user.username, password=cal_user.password
    ) as client:
        calendar = client.principal().make_calendar(name="CRM meetings", cal_id="crm")
        calendar.save_event(_ics(event_uid, "Kickoff with ACME"))

    # A fresh connection: the data really is on the server, not in client state.
    with caldav.DAVClient(
        radicale.url, username=cal_user.username, password=cal_user.password
    ) as client:
        calendars = client.principal().calendars()
        assert [c.get_display_name() for c in calendars] == ["CRM meetings"]
        event = calendars[0].event_by_uid(event_uid)
    component = event.icalendar_component
    assert str(component["SUMMARY"]) == "Kickoff with ACME"
    assert component["DTSTART"].dt == dt.datetime(2026, 1, 5, 10, tzinfo=dt.UTC)


def test_wrong_password_is_rejected(radicale: RadicaleServer, cal_user: CalUser) -> None:
    client = caldav.DAVClient(radicale.url, username=cal_user.username, password="not-it")
    with pytest.raises(AuthorizationError):
        client.principal()


def test_users_cannot_read_each_other(radicale: RadicaleServer, cal_user: CalUser) -> None:
    other = radicale.add_user(f"other-{uuid.uuid4().hex[:8]}", "other-pass")
    with caldav.DAVClient(radicale.url, username=other.username, password=other.password) as client:
        client.principal().make_calendar(name="Private", cal_id="private")

    response = requests.request(
        "PROPFIND",
        f"{other.principal_url}private/",
        auth=(cal_user.username, cal_user.password),
        headers={"Depth": "0"},
        timeout=10,
    )
    assert response.status_code == 403
