"""/v1/calendar-accounts: connect, read, choose the calendar and what syncs, state changes."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.event_handler import Response

from crmsync.http.common import accepted, caller, created, new_router, no_content
from crmsync.models.calendar import CalendarAccount
from crmsync.models.calendar_accounts import (
    CalendarAccountPatch,
    CalendarConnect,
    CalendarReauthenticate,
)
from crmsync.models.pages import Page
from crmsync.runtime import current_runtime

router = new_router()


@router.get("/v1/calendar-accounts")
def list_calendar_accounts() -> Page[CalendarAccount]:
    service = current_runtime().calendar_accounts_service()
    return Page[CalendarAccount](items=service.list_accounts(caller(router)))


@router.post("/v1/calendar-accounts")
def connect_calendar_account(request: CalendarConnect) -> Response[Any]:
    """A real CalDAV login; 201 with the calendars found, or 422 and nothing stored."""
    account = current_runtime().calendar_accounts_service().connect(caller(router), request)
    return created(account.model_dump(mode="json"))


@router.get("/v1/calendar-accounts/<account_id>")
def get_calendar_account(account_id: str) -> CalendarAccount:
    return current_runtime().calendar_accounts_service().get(caller(router), account_id)


@router.patch("/v1/calendar-accounts/<account_id>")
def patch_calendar_account(account_id: str, patch: CalendarAccountPatch) -> CalendarAccount:
    return current_runtime().calendar_accounts_service().update(caller(router), account_id, patch)


@router.delete("/v1/calendar-accounts/<account_id>")
def remove_calendar_account(account_id: str) -> Response[str]:
    current_runtime().calendar_accounts_service().delete(caller(router), account_id)
    return no_content()


@router.post("/v1/calendar-accounts/<account_id>/stop")
def stop_calendar_account(account_id: str) -> CalendarAccount:
    return current_runtime().calendar_accounts_service().stop(caller(router), account_id)


@router.post("/v1/calendar-accounts/<account_id>/resume")
def resume_calendar_account(account_id: str) -> CalendarAccount:
    return current_runtime().calendar_accounts_service().resume(caller(router), account_id)


@router.post("/v1/calendar-accounts/<account_id>/reauthenticate")
def reauthenticate_calendar_account(
    account_id: str, request: CalendarReauthenticate
) -> CalendarAccount:
    service = current_runtime().calendar_accounts_service()
    return service.reauthenticate(caller(router), account_id, request)


@router.post("/v1/calendar-accounts/<account_id>/sync")
def sync_calendar_account(account_id: str) -> Response[Any]:
    job = current_runtime().calendar_accounts_service().sync(caller(router), account_id)
    return accepted({"job_id": job.job_id, "account_id": job.account_id})
