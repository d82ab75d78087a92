"""Health, the caller, and sync status."""

from __future__ import annotations

from typing import Any

import crmsync
from crmsync.http.common import Cursor, Limit, caller, new_router
from crmsync.models.identity import Principal
from crmsync.models.pages import Page
from crmsync.models.sync import SyncRun
from crmsync.runtime import current_runtime

router = new_router()


@router.get("/health")
def health() -> dict[str, Any]:
    runtime = current_runtime()
    return {
        "status": "ok",
        "service": "crmsync",
        "version": crmsync.__version__,
        "env": runtime.settings.env,
        "runtime": runtime.settings.runtime_info,
        "checks": {"dynamodb": runtime.health_probe().check()},
    }


@router.get("/v1/me")
def me() -> Principal:
    return caller(router)


@router.get("/v1/mail-accounts/<account_id>/sync-runs")
def list_sync_runs(account_id: str, limit: Limit = 25, cursor: Cursor = None) -> Page[SyncRun]:
    return current_runtime().sync_status().runs(caller(router), account_id, limit, cursor)
