"""/v1/calendar-accounts through the local stack against a real Radicale CalDAV server."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import boto3
import caldav
import pytest
import requests
from caldav.elements import ical

from crmsync.models.calendar import CalendarInfo
from crmsync.store.calendar_accounts import DynamoCalendarAccountRepository
from crmsync.store.dynamodb import DynamoAccountRepository
from crmsync_local.stack import LocalStack
from crmsync_local.testservers.radicale import CalUser, RadicaleServer

pytestmark = pytest.mark.e2e
ACCOUNTS = "/v1/calendar-accounts"
MAX_SHARDS = 64


class Client:
    def __init__(self, stack: LocalStack, user: str, company: str, role: str = "user") -> None:
        self.base = stack.url
        self.headers = {"Authorization": f"Bearer {stack.token(user, company, role)}"}

    def __call__(self, method: str, path: str, body: Any = None) -> requests.Response:
        return requests.request(
            method, self.base + path, json=body, headers=self.headers, timeout=30
        )


@pytest.fixture
def company() -> str:
    return f"co-{uuid.uuid4().hex[:8]}"


@pytest.fixture
def owner(local_stack: LocalStack, company: str) -> Client:
    return Client(local_stack, "owner", company)


@pytest.fixture
def calendars(radicale: RadicaleServer, cal_user: CalUser) -> dict[str, str]:
    """Two calendars made as another app would, with the caldav client: name → URL."""
    with caldav.DAVClient(
        radicale.url, username=cal_user.username, password=cal_user.password
    ) as client:
        principal = client.principal()
        meetings = principal.make_calendar(name="CRM meetings", cal_id="crm-meetings")
        meetings.set_properties([ical.CalendarColor("#3366ffff")])
        private = principal.make_calendar(name="Private", cal_id="private")
        return {"CRM meetings": str(meetings.url), "Private": str(private.url)}


def _connect_body(radicale: RadicaleServer, user: CalUser, password: str | None = None) -> Any:
    return {
        "provider": "caldav",
        "url": radicale.url,
        "username": user.username,
        "password": password or user.password,
    }


@pytest.fixture
def connected(
    owner: Client, radicale: RadicaleServer, cal_user: CalUser, calendars: dict[str, str]
) -> dict[str, Any]:
    reply = owner("POST", ACCOUNTS, _connect_body(radicale, cal_user))
    assert reply.status_code == 201, reply.text
    return dict(reply.json())


def _by_name(account: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {c["name"]: c for c in account["calendars"]}


def _state_changes(stack: LocalStack, account_id: str) -> list[dict[str, Any]]:
    return [
        e["detail"]
        for e in stack.published_events()
        if e["detail-type"] == "account.state_changed" and e["detail"]["account_id"] == account_id
    ]


def test_connect_with_the_right_password_finds_the_calendars_and_never_returns_a_secret(
    local_stack: LocalStack,
    owner: Client,
    cal_user: CalUser,
    calendars: dict[str, str],
    connected: dict[str, Any],
) -> None:
    assert connected["state"] == "active"
    assert connected["last_error"] is None
    assert connected["calendar_id"] is None
    found = _by_name(connected)
    assert set(found) == {"CRM meetings", "Private"}
    meetings = found["CRM meetings"]
    assert meetings["writable"] is True
    assert meetings["color"] is not None
    assert meetings["color"].lower().startswith("#3366ff")
    assert meetings["id"] == CalendarInfo.id_for(meetings["url"])
    assert meetings["url"].rstrip("/").endswith("crm-meetings")

    shown = owner("GET", f"{ACCOUNTS}/{connected['id']}")
    listed = owner("GET", ACCOUNTS)
    assert shown.status_code == 200
    assert [a["id"] for a in listed.json()["items"]] == [connected["id"]]
    for text in (shown.text, listed.text):
        assert cal_user.password not in text
        assert "sealed" not in text
    table = boto3.resource("dynamodb").Table(local_stack.resource("MainTable"))
    stored = table.query(
        KeyConditionExpression="PK = :pk",
        ExpressionAttributeValues={
            ":pk": f"COMPANY#{connected['company_id']}#CALACCOUNT#{connected['id']}"
        },
    )["Items"]
    assert {i["SK"] for i in stored} == {"CALACCOUNT", "CREDENTIALS"}
    assert cal_user.password not in str(stored)
    changes = _state_changes(local_stack, connected["id"])
    assert {"from": None, "to": "active", "kind": "calendar"}.items() <= changes[-1].items()


def test_a_wrong_password_is_a_problem_and_nothing_is_stored(
    owner: Client, radicale: RadicaleServer, cal_user: CalUser
) -> None:
    reply = owner("POST", ACCOUNTS, _connect_body(radicale, cal_user, password="not-it"))
    assert reply.status_code == 422
    assert reply.headers["content-type"] == "application/problem+json"
    problem = reply.json()
    assert problem["code"] == "auth_failed"
    assert problem["title"] == "Calendar server problem"
    assert "refused the user name or password" in problem["detail"]
    assert "not-it" not in reply.text
    assert owner("GET", ACCOUNTS).json()["items"] == []


def test_choosing_the_calendar_and_what_syncs_starts_the_sync_now_and_polls_it(
    local_stack: LocalStack, owner: Client, connected: dict[str, Any]
) -> None:
    path = f"{ACCOUNTS}/{connected['id']}"
    chosen_id = _by_name(connected)["CRM meetings"]["id"]
    before = datetime.now(UTC)
    reply = owner(
        "PATCH",
        path,
        {"calendar_id": chosen_id, "sync_type": "two_way", "activity_types": ["meeting", "call"]},
    )
    assert reply.status_code == 200, reply.text
    account = reply.json()
    assert account["calendar_id"] == chosen_id
    assert account["sync_type"] == "two_way"
    assert account["activity_types"] == ["meeting", "call"]
    sync_since = datetime.fromisoformat(account["sync_since"])
    assert before - timedelta(seconds=5) <= sync_since <= datetime.now(UTC) + timedelta(seconds=5)
    assert owner("GET", path).json()["sync_since"] == account["sync_since"]

    # Bad choices are refused with a problem, and change nothing.
    unknown = owner("PATCH", path, {"calendar_id": "calnothere"})
    assert unknown.status_code == 422
    assert unknown.json()["code"] == "calendar_not_found"
    assert owner("PATCH", path, {"sync_type": "sideways"}).status_code == 422
    assert owner("GET", path).json()["version"] == account["version"]

    # The calendar dispatcher finds it in its own shards; the mail dispatcher never does.
    table = boto3.resource("dynamodb").Table(local_stack.resource("MainTable"))
    store = DynamoCalendarAccountRepository(table, shard_count=8)
    later = datetime.now(UTC) + timedelta(seconds=1)
    due = [
        d for n in range(MAX_SHARDS) for d in store.due(n, later) if d.account_id == account["id"]
    ]
    assert len(due) == 1
    assert store.claim(due[0], later + timedelta(minutes=5))
    assert not store.claim(due[0], later + timedelta(minutes=5))  # one claimant wins
    rescheduled = later + timedelta(minutes=10)
    assert store.finish_poll(connected["company_id"], account["id"], rescheduled)
    shown = owner("GET", path).json()
    assert datetime.fromisoformat(shown["next_poll_at"]) == rescheduled
    assert shown["version"] == account["version"]  # the dispatcher never bumps it
    owner("POST", f"{path}/stop")
    assert not store.finish_poll(connected["company_id"], account["id"], rescheduled)
    assert not any(
        d.account_id == account["id"] for n in range(MAX_SHARDS) for d in store.due(n, later)
    )
    mail = DynamoAccountRepository(table)
    assert not any(
        d.account_id == account["id"] for n in range(MAX_SHARDS) for d in mail.due(n, later)
    )


def test_stop_resume_sync_and_remove(
    local_stack: LocalStack, owner: Client, connected: dict[str, Any]
) -> None:
    path = f"{ACCOUNTS}/{connected['id']}"
    no_calendar = owner("POST", f"{path}/sync")
    assert no_calendar.status_code == 409
    owner("PATCH", path, {"calendar_id": _by_name(connected)["CRM meetings"]["id"]})

    stopped = owner("POST", f"{path}/stop")
    assert stopped.status_code == 200
    assert stopped.json()["state"] == "stopped"
    assert owner("POST", f"{path}/sync").status_code == 409
    assert owner("POST", f"{path}/resume").json()["state"] == "active"

    sync = owner("POST", f"{path}/sync")
    assert sync.status_code == 202, sync.text
    assert sync.json()["account_id"] == connected["id"]
    assert sync.json()["job_id"].startswith(f"{connected['id']}:manual:")

    changes = _state_changes(local_stack, connected["id"])
    assert [(c["from"], c["to"]) for c in changes][-2:] == [
        ("active", "stopped"),
        ("stopped", "active"),
    ]
    assert owner("DELETE", path).status_code == 204
    assert owner("GET", path).status_code == 404
    assert owner("GET", ACCOUNTS).json()["items"] == []


def test_reauthenticate_after_the_password_changed_on_the_server(
    owner: Client, radicale: RadicaleServer, cal_user: CalUser, connected: dict[str, Any]
) -> None:
    path = f"{ACCOUNTS}/{connected['id']}"
    radicale.set_password(cal_user.username, "rotated-password")

    stale = owner("POST", f"{path}/reauthenticate", {})
    assert stale.status_code == 422
    assert stale.json()["code"] == "auth_failed"
    account = owner("GET", path).json()
    assert account["state"] == "needs_reauth"
    assert account["last_error"]["code"] == "auth_failed"
    assert owner("POST", f"{path}/resume").json()["state"] == "needs_reauth"

    reply = owner("POST", f"{path}/reauthenticate", {"password": "rotated-password"})
    assert reply.status_code == 200, reply.text
    assert reply.json()["state"] == "active"
    assert reply.json()["last_error"] is None
    assert "rotated-password" not in reply.text
    # The new password was sealed: a retry with the stored one logs in.
    again = owner("POST", f"{path}/reauthenticate", {})
    assert again.status_code == 200, again.text


def test_only_the_owner_changes_admins_read_nobody_else_reaches_it(
    local_stack: LocalStack, company: str, connected: dict[str, Any]
) -> None:
    path = f"{ACCOUNTS}/{connected['id']}"
    admin = Client(local_stack, "boss", company, "admin")
    assert admin("GET", path).status_code == 200
    assert [a["id"] for a in admin("GET", ACCOUNTS).json()["items"]] == [connected["id"]]
    assert admin("POST", f"{path}/stop").status_code == 403
    assert admin("PATCH", path, {"sync_type": "two_way"}).status_code == 403
    for client in (
        Client(local_stack, "colleague", company),
        Client(local_stack, "owner", f"other-{company}", "admin"),
    ):
        for method, suffix, body in (
            ("GET", "", None),
            ("PATCH", "", {}),
            ("DELETE", "", None),
            ("POST", "/stop", None),
            ("POST", "/resume", None),
            ("POST", "/reauthenticate", {}),
            ("POST", "/sync", None),
        ):
            reply = client(method, path + suffix, body)
            assert reply.status_code == 404, (method, suffix, reply.text)
        assert client("GET", ACCOUNTS).json()["items"] == []
