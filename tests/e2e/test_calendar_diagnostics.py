"""Calendar diagnostics end to end (issue "Calendar sync", item 4) on the local stack and a
real Radicale: a skipped activity is explained; a read-only calendar fails the write probe
with the article's fix; a refused login is reported and the checks after it are not run."""

from __future__ import annotations

from typing import Any

import requests

from crmsync_local.stack import LocalStack
from crmsync_local.testservers.radicale import CalUser, RadicaleServer
from tests.e2e.test_calendar_sync import (
    ACCOUNTS,
    Client,
    _activity,
    _connect,
    _sync,
    calendar_url,
    owner,
)

__all__ = ["calendar_url", "owner"]  # fixtures, used by name


def _diagnostics(owner: Client, account_id: str) -> dict[str, Any]:
    reply = owner("GET", f"{ACCOUNTS}/{account_id}/diagnostics")
    assert reply.status_code == 200, reply.text
    return dict(reply.json())


def _check(report: dict[str, Any], name: str) -> dict[str, Any]:
    [check] = [c for c in report["checks"] if c["name"] == name]
    return dict(check)


def test_diagnostics_explain_skips_and_a_read_only_calendar(
    local_stack: LocalStack,
    owner: Client,
    radicale: RadicaleServer,
    cal_user: CalUser,
    calendar_url: str,
) -> None:
    account_id = _connect(owner, radicale, cal_user, calendar_url, "one_way")
    task = _activity(owner, type="task", subject="Send the contract")
    meeting = _activity(owner, subject="Kick-off")
    _sync(owner, local_stack, account_id)

    report = _diagnostics(owner, account_id)
    assert report["ok"] is True, report
    assert {c["name"]: c["status"] for c in report["checks"]} == {
        "state": "ok",
        "credentials": "ok",
        "calendar": "ok",
        "write_probe": "ok",
        "sync_settings": "ok",
    }
    assert report["sync_type"] == "one_way"
    assert report["last_push_at"] is not None
    assert report["pushed_total"] >= 1
    skipped = {s["activity_id"]: s for s in report["skipped"]}
    assert skipped[task["id"]]["reason"] == "unselected_type"
    assert "Add the type" in skipped[task["id"]]["explanation"]
    assert meeting["id"] not in skipped
    # The probe cleaned up after itself: only the meeting is in the calendar.
    with requests.Session() as session:
        session.auth = (cal_user.username, cal_user.password)
        listing = session.request("PROPFIND", calendar_url, headers={"Depth": "1"}, timeout=10)
    assert listing.text.count(".ics<") == 1

    radicale.make_read_only(cal_user.username, f"{cal_user.username}/crm")
    try:
        report = _diagnostics(owner, account_id)
    finally:
        radicale.make_writable(cal_user.username, f"{cal_user.username}/crm")
    assert report["ok"] is False
    probe = _check(report, "write_probe")
    assert probe["status"] == "problem"
    assert probe["action"]
    assert "permission" in (probe["message"] + probe["action"]).lower()


def test_a_refused_login_is_reported_and_nothing_after_it_pretends(
    local_stack: LocalStack,
    owner: Client,
    radicale: RadicaleServer,
    cal_user: CalUser,
    calendar_url: str,
) -> None:
    account_id = _connect(owner, radicale, cal_user, calendar_url, "two_way")
    radicale.set_password(cal_user.username, "a-new-password")
    report = _diagnostics(owner, account_id)
    assert report["ok"] is False
    credentials = _check(report, "credentials")
    assert credentials["status"] == "problem"
    assert "password" in credentials["message"].lower()
    assert _check(report, "calendar")["status"] == "not_run"
    assert _check(report, "write_probe")["status"] == "not_run"
