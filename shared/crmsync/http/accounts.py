"""/v1/mail-accounts: connect, read, settings, state changes, folders."""

from __future__ import annotations

from typing import Annotated, Any

from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.event_handler.openapi.params import Query
from pydantic import BaseModel, ConfigDict

from crmsync.http.common import accepted, caller, created, new_router, no_content
from crmsync.mail.discovery import DiscoveryResult
from crmsync.models.accounts import MailAccount, SyncSettingsPatch
from crmsync.models.pages import Page
from crmsync.ports import FolderInfo
from crmsync.runtime import current_runtime
from crmsync.services.accounts import ConnectAccount, Reauthenticate
from crmsync.services.diagnostics import Diagnosis

router = new_router()


class AccountPatch(BaseModel):
    model_config = ConfigDict(extra="forbid")

    settings: SyncSettingsPatch


@router.get("/v1/mail-accounts")
def list_accounts() -> Page[MailAccount]:
    return Page[MailAccount](
        items=current_runtime().accounts_service().list_accounts(caller(router))
    )


@router.post("/v1/mail-accounts")
def connect_account(request: ConnectAccount) -> Response[Any]:
    account = current_runtime().accounts_service().connect(caller(router), request)
    return created(account.model_dump(mode="json"))


@router.get("/v1/mail-accounts/discover")
def discover(
    email: Annotated[str, Query(min_length=3, max_length=254, description="The address.")],
) -> DiscoveryResult:
    caller(router)  # any signed-in user of a company may ask
    return current_runtime().discovery().discover(email)


@router.get("/v1/mail-accounts/<account_id>")
def get_account(account_id: str) -> MailAccount:
    return current_runtime().accounts_service().get(caller(router), account_id)


@router.patch("/v1/mail-accounts/<account_id>")
def patch_account(account_id: str, patch: AccountPatch) -> MailAccount:
    return (
        current_runtime()
        .accounts_service()
        .update_settings(caller(router), account_id, patch.settings)
    )


@router.delete("/v1/mail-accounts/<account_id>")
def remove_account(account_id: str) -> Response[str]:
    current_runtime().accounts_service().remove(caller(router), account_id)
    return no_content()


@router.post("/v1/mail-accounts/<account_id>/reauthenticate")
def reauthenticate(account_id: str, request: Reauthenticate) -> MailAccount:
    return current_runtime().accounts_service().reauthenticate(caller(router), account_id, request)


@router.post("/v1/mail-accounts/<account_id>/stop")
def stop(account_id: str) -> MailAccount:
    return current_runtime().accounts_service().stop(caller(router), account_id)


@router.post("/v1/mail-accounts/<account_id>/resume")
def resume(account_id: str) -> MailAccount:
    return current_runtime().accounts_service().resume(caller(router), account_id)


@router.post("/v1/mail-accounts/<account_id>/sync")
def sync_now(account_id: str) -> Response[Any]:
    job = current_runtime().accounts_service().sync_now(caller(router), account_id)
    return accepted({"job_id": job.job_id, "account_id": job.account_id})


@router.get("/v1/mail-accounts/<account_id>/folders")
def folders(account_id: str) -> Page[FolderInfo]:
    return Page[FolderInfo](
        items=current_runtime().accounts_service().folders(caller(router), account_id)
    )


@router.get("/v1/mail-accounts/<account_id>/diagnostics")
def diagnostics(account_id: str) -> Diagnosis:
    """Runs the help articles' troubleshooting checklist against the real server."""
    return current_runtime().diagnostics().diagnose(caller(router), account_id)
