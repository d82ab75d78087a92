"""The troubleshooting checklist of the help articles, run automatically (SPEC O3)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Literal, Protocol, TypeVar

from pydantic import BaseModel

from crmsync.clock import Clock
from crmsync.models.accounts import AccountState, MailAccount
from crmsync.models.identity import Principal
from crmsync.models.servers import MailServerError, ServerEndpoint
from crmsync.ports import FolderInfo, SyncRunRepository
from crmsync.services.accounts import AccountService, sync_since

T = TypeVar("T")
Status = Literal["ok", "problem", "info"]
REACHABILITY_CODES = {
    "connection_refused",
    "timeout",
    "host_not_found",
    "host_not_allowed",
    "tls_failed",
    "insecure_not_allowed",
    "server_error",
}
SECURITY_WORDS = {"ssl": "SSL/TLS", "starttls": "STARTTLS", "none": "no encryption"}


class DiagnosticCheck(BaseModel):
    name: str
    status: Status
    message: str
    fix: str = ""


class Diagnosis(BaseModel):
    account_id: str
    state: AccountState
    healthy: bool
    checks: list[DiagnosticCheck]


class MailboxProbe(Protocol):
    def check_imap(self, account: MailAccount, password: str) -> list[FolderInfo]: ...

    def check_smtp(self, account: MailAccount, password: str) -> None: ...


class AccountDiagnostics:
    def __init__(
        self,
        accounts: AccountService,
        runs: SyncRunRepository,
        probe: MailboxProbe,
        clock: Clock,
    ) -> None:
        self._accounts = accounts
        self._runs = runs
        self._probe = probe
        self._clock = clock

    def diagnose(self, principal: Principal, account_id: str) -> Diagnosis:
        account = self._accounts.owned(principal, account_id)
        checks = [self._state(account)]
        password = self._credentials(account, checks)
        folders: list[FolderInfo] | None = None
        if password is not None and account.imap is not None:
            folders = self._server(
                account,
                "imap",
                account.imap,
                checks,
                lambda: self._probe.check_imap(account, password),
            )
            if account.smtp is not None:
                self._server(
                    account,
                    "smtp",
                    account.smtp,
                    checks,
                    lambda: self._probe.check_smtp(account, password),
                )
        checks.append(self._folders(account, folders))
        checks.append(self._sync_start(account))
        checks.append(self._last_run(principal, account))
        healthy = all(check.status != "problem" for check in checks)
        return Diagnosis(account_id=account.id, state=account.state, healthy=healthy, checks=checks)

    def _state(self, account: MailAccount) -> DiagnosticCheck:
        if account.state in {AccountState.ACTIVE, AccountState.SYNCING}:
            return DiagnosticCheck(
                name="account_state", status="ok", message=f"The account is {account.state}."
            )
        if account.state == AccountState.STOPPED:
            return DiagnosticCheck(
                name="account_state",
                status="problem",
                message="Sync is stopped for this account.",
                fix="Resume the account to sync again.",
            )
        error = account.last_error
        return DiagnosticCheck(
            name="account_state",
            status="problem",
            message=f"The account is {account.state}" + (f": {error.message}" if error else "."),
            fix=error.action if error else "Re-authenticate the account.",
        )

    def _credentials(self, account: MailAccount, checks: list[DiagnosticCheck]) -> str | None:
        try:
            password = self._accounts.password_for_sync(account)
        except MailServerError as exc:
            checks.append(
                DiagnosticCheck(
                    name="credentials",
                    status="problem",
                    message=exc.problem.message,
                    fix=exc.problem.action,
                )
            )
            return None
        checks.append(
            DiagnosticCheck(
                name="credentials", status="ok", message="Credentials are stored, encrypted."
            )
        )
        return password

    def _server(
        self,
        account: MailAccount,
        protocol: str,
        endpoint: ServerEndpoint,
        checks: list[DiagnosticCheck],
        attempt: Callable[[], T],
    ) -> T | None:
        where = f"{endpoint.host}:{endpoint.port} ({SECURITY_WORDS[endpoint.security]})"
        label = protocol.upper()
        try:
            result = attempt()
        except MailServerError as exc:
            problem = exc.problem
            if problem.code in REACHABILITY_CODES:
                checks.append(
                    DiagnosticCheck(
                        name=f"{protocol}_server",
                        status="problem",
                        message=problem.message,
                        fix=problem.action,
                    )
                )
                checks.append(
                    DiagnosticCheck(
                        name=f"{protocol}_login",
                        status="info",
                        message="Not tried: the server was not reached.",
                    )
                )
            else:
                checks.append(
                    DiagnosticCheck(
                        name=f"{protocol}_server",
                        status="ok",
                        message=f"{label} server {where} answers.",
                    )
                )
                checks.append(
                    DiagnosticCheck(
                        name=f"{protocol}_login",
                        status="problem",
                        message=problem.message,
                        fix=problem.action,
                    )
                )
            return None
        security: Status = "info" if endpoint.security == "none" else "ok"
        checks.append(
            DiagnosticCheck(
                name=f"{protocol}_server",
                status=security,
                message=f"{label} server {where} answers.",
            )
        )
        checks.append(
            DiagnosticCheck(
                name=f"{protocol}_login",
                status="ok",
                message=f"{label} login as {account.login} works.",
            )
        )
        return result

    def _folders(self, account: MailAccount, folders: list[FolderInfo] | None) -> DiagnosticCheck:
        if folders is None:
            return DiagnosticCheck(
                name="selected_folders",
                status="info",
                message="Not checked: no login to the IMAP server.",
            )
        names = {folder.name for folder in folders}
        if account.settings.folders == "all":
            return DiagnosticCheck(
                name="selected_folders",
                status="ok",
                message=f"All {len(names)} folders are synced.",
            )
        missing = [f for f in account.settings.selected_folders if f not in names]
        if missing:
            return DiagnosticCheck(
                name="selected_folders",
                status="problem",
                message=f"Selected folders missing on the server: {', '.join(missing)}.",
                fix="Choose the folders to sync again in the account's settings.",
            )
        return DiagnosticCheck(
            name="selected_folders",
            status="ok",
            message=f"The {len(account.settings.selected_folders)} selected folders exist.",
        )

    def _sync_start(self, account: MailAccount) -> DiagnosticCheck:
        since = sync_since(account.settings.sync_start, account.created_at)
        scope = (
            " For the first backfill only mail with CRM contacts is taken."
            if account.settings.historical_scope == "crm_contacts"
            else ""
        )
        return DiagnosticCheck(
            name="sync_start",
            status="info",
            message=f"Mail from {since:%Y-%m-%d} on is synced "
            f"(setting: {account.settings.sync_start}).{scope}",
            fix="Older mail is not synced; change the sync start in the settings if needed.",
        )

    def _last_run(self, principal: Principal, account: MailAccount) -> DiagnosticCheck:
        page = self._runs.list(principal.company_id, account.id, 1, None)
        if not page.items:
            return DiagnosticCheck(
                name="last_sync", status="info", message="The account has not been synced yet."
            )
        run = page.items[0]
        when = f"{run.finished_at:%Y-%m-%d %H:%M} UTC"
        if run.outcome == "failed":
            return DiagnosticCheck(
                name="last_sync",
                status="problem",
                message=f"The last sync at {when} failed ({run.detail}).",
                fix="See the checks above for the cause.",
            )
        return DiagnosticCheck(
            name="last_sync",
            status="ok",
            message=f"The last sync at {when}: {run.outcome}, "
            f"{run.folders_checked} folders checked.",
        )
