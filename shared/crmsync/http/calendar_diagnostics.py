"""Calendar sync troubleshooting over HTTP (SPEC C7); the checks are in
services/calendar_diagnostics.py."""

from __future__ import annotations

from crmsync.http.common import caller, new_router
from crmsync.runtime import current_runtime
from crmsync.services.calendar_diagnostics import CalendarDiagnosticsReport

router = new_router()


@router.get("/v1/calendar-accounts/<account_id>/diagnostics")
def calendar_diagnostics(account_id: str) -> CalendarDiagnosticsReport:
    """Login, chosen calendar, a write probe, settings, last sync, skipped activities."""
    return current_runtime().calendar_diagnostics().run(caller(router), account_id)
