"""Calendar sync troubleshooting (SPEC C7; issue "Calendar sync", item 4): every problem the
help article lists, checked for real and explained with its fix.

`GET /v1/calendar-accounts/{id}/diagnostics` runs, in order: the account's state; a real
login (credentials); the chosen calendar exists and is writable (a probe event marked as
ours is created with `If-None-Match: *` and deleted at once); the sync settings; the last
push and pull; and every activity the sync skipped, with the reason in the user's words.
Checks after a failed login are reported as not run, not as passed.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import datetime
from typing import Literal

from pydantic import BaseModel, Field

from crmsync.models.calendar import CalendarAccount
from crmsync.models.calendar_sync import CalendarSyncState, SkippedActivity, SkipReason
from crmsync.models.identity import Principal
from crmsync.models.servers import MailServerError
from crmsync.ports import CalendarConnector, CalendarServer

CheckStatus = Literal["ok", "problem", "not_run"]

SKIP_REASONS: dict[SkipReason, str] = {
    "before_sync_start": (
        "It was created or last changed before the calendar sync was set up; older "
        "activities never sync. Change it to sync it."
    ),
    "unselected_type": (
        "Its type is not one the account syncs. Add the type in the calendar sync settings."
    ),
    "owned_by_someone_else": (
        "It belongs to another user; only the account owner's activities sync to this calendar."
    ),
    "synced_to_another_account": "It is already in the calendar of another calendar account.",
}

PROBE_ICS = """BEGIN:VCALENDAR\r
VERSION:2.0\r
PRODID:-//crmsync//diagnostics//EN\r
BEGIN:VEVENT\r
UID:{uid}\r
DTSTAMP:{stamp}\r
DTSTART:{stamp}\r
DURATION:PT1M\r
SUMMARY:crmsync connection check (deleted at once)\r
X-CRMSYNC-PROBE:TRUE\r
END:VEVENT\r
END:VCALENDAR\r
"""


class CalendarCheck(BaseModel):
    name: str
    status: CheckStatus
    message: str
    action: str | None = None


class SkippedView(BaseModel):
    activity_id: str
    activity_type: str | None
    reason: SkipReason
    explanation: str
    at: datetime | None


class CalendarDiagnosticsReport(BaseModel):
    account_id: str
    state: str
    ok: bool
    checks: list[CalendarCheck] = Field(default_factory=list)
    sync_type: str
    activity_types: list[str]
    last_push_at: datetime | None = None
    last_pull_at: datetime | None = None
    pushed_total: int = 0
    pulled_total: int = 0
    skipped: list[SkippedView] = Field(default_factory=list)


class CalendarDiagnostics:
    def __init__(
        self,
        account: Callable[[Principal, str], CalendarAccount],
        password: Callable[[CalendarAccount], str],
        connector: CalendarConnector,
        sync_state: Callable[[str, str], CalendarSyncState | None],
        skipped: Callable[[str, str], list[SkippedActivity]],
        now: Callable[[], datetime],
    ) -> None:
        self._account = account
        self._password = password
        self._connector = connector
        self._sync_state = sync_state
        self._skipped = skipped
        self._now = now

    def run(self, principal: Principal, account_id: str) -> CalendarDiagnosticsReport:
        account = self._account(principal, account_id)
        checks = [self._state(account)]
        try:
            with self._connector.open(
                account.url, account.username, self._password(account)
            ) as server:
                calendars = server.calendars()
                checks.append(CalendarCheck(name="credentials", status="ok", message=_LOGIN_OK))
                checks += self._calendar(account, server, {c.id for c in calendars})
        except MailServerError as exc:
            checks.append(_problem("credentials", exc))
            checks += [
                CalendarCheck(name=name, status="not_run", message=_NOT_RUN)
                for name in ("calendar", "write_probe")
            ]
        checks.append(self._settings(account))
        state = self._sync_state(account.company_id, account.id)
        return CalendarDiagnosticsReport(
            account_id=account.id,
            state=str(account.state),
            ok=all(check.status == "ok" for check in checks),
            checks=checks,
            sync_type=account.sync_type,
            activity_types=list(account.activity_types),
            last_push_at=state.last_push_at if state else None,
            last_pull_at=state.last_pull_at if state else None,
            pushed_total=state.pushed_total if state else 0,
            pulled_total=state.pulled_total if state else 0,
            skipped=[
                SkippedView(
                    activity_id=skip.activity_id,
                    activity_type=skip.activity_type,
                    reason=skip.reason,
                    explanation=SKIP_REASONS[skip.reason],
                    at=skip.at,
                )
                for skip in self._skipped(account.company_id, account.id)
            ],
        )

    @staticmethod
    def _state(account: CalendarAccount) -> CalendarCheck:
        if account.last_error is None and account.state.polls:
            return CalendarCheck(
                name="state", status="ok", message=f"The account is {account.state}."
            )
        error = account.last_error
        return CalendarCheck(
            name="state",
            status="problem",
            message=error.message if error else f"The account is {account.state}.",
            action=error.action if error else "Resume the account to sync again.",
        )

    def _calendar(
        self, account: CalendarAccount, server: CalendarServer, found: set[str]
    ) -> list[CalendarCheck]:
        chosen = account.calendar
        if chosen is None:
            return [
                CalendarCheck(
                    name="calendar",
                    status="problem",
                    message="No calendar is chosen for the sync.",
                    action="Choose a calendar in the calendar sync settings.",
                ),
                CalendarCheck(name="write_probe", status="not_run", message=_NOT_RUN),
            ]
        if chosen.id not in found:
            return [
                CalendarCheck(
                    name="calendar",
                    status="problem",
                    message=f"The calendar {chosen.name!r} no longer exists on the server.",
                    action="Choose another calendar in the calendar sync settings.",
                ),
                CalendarCheck(name="write_probe", status="not_run", message=_NOT_RUN),
            ]
        calendar = CalendarCheck(
            name="calendar", status="ok", message=f"The calendar {chosen.name!r} exists."
        )
        return [calendar, self._probe(server, chosen.url)]

    def _probe(self, server: CalendarServer, calendar_url: str) -> CalendarCheck:
        """Create and delete one event marked as ours: the only proof that writing works."""
        uid = f"crmsync-probe-{uuid.uuid4().hex}@crmsync"
        href = f"{calendar_url.rstrip('/')}/{uid.split('@')[0]}.ics"
        stamp = self._now().strftime("%Y%m%dT%H%M%SZ")
        try:
            outcome, etag = server.put(
                calendar_url, href, PROBE_ICS.format(uid=uid, stamp=stamp), None
            )
            if outcome == "created":
                server.delete(calendar_url, href, etag)
        except MailServerError as exc:
            return _problem("write_probe", exc)
        if outcome != "created":
            return CalendarCheck(
                name="write_probe",
                status="problem",
                message=f"The test event could not be created ({outcome}).",
                action="Try again; if it keeps failing, check the calendar's sharing settings.",
            )
        return CalendarCheck(
            name="write_probe",
            status="ok",
            message="A test event was created and deleted: the calendar is writable.",
        )

    @staticmethod
    def _settings(account: CalendarAccount) -> CalendarCheck:
        if not account.activity_types:
            return CalendarCheck(
                name="sync_settings",
                status="problem",
                message="No activity type is selected: nothing will sync.",
                action="Select the activity types to sync in the calendar sync settings.",
            )
        direction = (
            "both ways (CRM and calendar)"
            if account.sync_type == "two_way"
            else "one way (CRM to calendar)"
        )
        since = account.sync_since.isoformat() if account.sync_since else "not set up yet"
        return CalendarCheck(
            name="sync_settings",
            status="ok",
            message=(
                f"Syncs {direction}; types: {', '.join(account.activity_types)}; "
                f"activities changed since {since}."
            ),
        )


_LOGIN_OK = "The server accepted the user name and password."
_NOT_RUN = "Not checked: the login failed."


def _problem(name: str, exc: MailServerError) -> CalendarCheck:
    return CalendarCheck(
        name=name, status="problem", message=exc.problem.message, action=exc.problem.action
    )
