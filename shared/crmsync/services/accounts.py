"""Mail accounts: connect with a real login, settings, the state machine (SPEC E1-E7)."""

from __future__ import annotations

import random
import uuid
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr

from crmsync.clock import Clock
from crmsync.errors import ConflictError, ForbiddenError, ValidationFailedError
from crmsync.models.accounts import (
    AccountKind,
    AccountState,
    ExchangeSettings,
    LastError,
    MailAccount,
    SyncSettings,
    SyncSettingsPatch,
)
from crmsync.models.events import DomainEvent
from crmsync.models.identity import Principal
from crmsync.models.jobs import SyncAccount
from crmsync.models.servers import ConnectionProblem, MailServerError, ServerEndpoint
from crmsync.ports import (
    AccountRepository,
    EventPublisher,
    FolderInfo,
    JobQueue,
    MailboxCheck,
    QueuedSync,
    SecretBox,
)
from crmsync.services.account_events import account_event, state_changed
from crmsync.services.sync_status import visible_account

MAX_BACKOFF = timedelta(hours=1)
# A connection error that lasts this long is no longer "transient": the user must look.
ATTENTION_AFTER = timedelta(days=3)
SAVE_ATTEMPTS = 3


class ConnectAccount(BaseModel):
    """POST /v1/mail-accounts: IMAP+SMTP, or an Exchange account's settings."""

    model_config = ConfigDict(extra="forbid")

    kind: AccountKind = AccountKind.IMAP
    email: str = Field(min_length=3, max_length=254, pattern=r"^[^@\s]+@[^@\s]+$")
    password: SecretStr = Field(min_length=1, max_length=1024)
    username: str | None = Field(default=None, max_length=254)
    imap: ServerEndpoint | None = None
    smtp: ServerEndpoint | None = None
    exchange: ExchangeSettings | None = None
    settings: SyncSettingsPatch | None = None


class Reauthenticate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    password: SecretStr | None = Field(default=None, min_length=1, max_length=1024)


def credential_context(account: MailAccount) -> dict[str, str]:
    """Binds sealed credentials to their account: a copy elsewhere does not open."""
    return {"company_id": account.company_id, "account_id": account.id}


class AccountService:
    def __init__(
        self,
        accounts: AccountRepository,
        secrets: SecretBox,
        mailbox: MailboxCheck,
        jobs: JobQueue,
        events: EventPublisher,
        clock: Clock,
        shard_count: int,
        poll_interval: timedelta,
        new_id: Callable[[], str] = lambda: uuid.uuid4().hex,
    ) -> None:
        self._accounts = accounts
        self._secrets = secrets
        self._mailbox = mailbox
        self._jobs = jobs
        self._events = events
        self._clock = clock
        self._shards = shard_count
        self._interval = poll_interval
        self._new_id = new_id

    # -- connect ------------------------------------------------------------------------
    def connect(
        self, principal: Principal, request: ConnectAccount, account_id: str | None = None
    ) -> MailAccount:
        """Validate the credentials by a real login, then store. Nothing is stored on failure."""
        now = self._clock.now()
        settings = SyncSettings.model_validate(
            request.settings.model_dump(exclude_none=True) if request.settings else {}
        )
        account = MailAccount(
            id=account_id or self._new_id(),
            company_id=principal.company_id,
            user_id=principal.user_id,
            email=request.email.strip().lower(),
            kind=request.kind,
            username=request.username,
            settings=settings,
            created_at=now,
            state_changed_at=now,
        )
        if request.kind == AccountKind.EXCHANGE:
            if request.exchange is None:
                raise ValidationFailedError("An Exchange account needs `exchange` settings.")
            # No EWS adapter yet: the settings are kept, the account is not polled.
            account = account.model_copy(
                update={"exchange": request.exchange, "state": AccountState.CONNECTING}
            )
        else:
            if request.imap is None or request.smtp is None:
                raise ValidationFailedError("An IMAP account needs `imap` and `smtp` servers.")
            account = account.model_copy(
                update={"imap": request.imap, "smtp": request.smtp, "next_poll_at": now}
            )
            self._mailbox.verify(account, request.password.get_secret_value())
        sealed = self._secrets.seal(
            request.password.get_secret_value(), credential_context(account)
        )
        self._accounts.create(account, self._shards, sealed)
        self._announce(account, None)
        return account

    # -- reads --------------------------------------------------------------------------
    def get(self, principal: Principal, account_id: str) -> MailAccount:
        return visible_account(self._accounts, principal, account_id)

    def list_accounts(self, principal: Principal) -> list[MailAccount]:
        if principal.is_admin:
            return self._accounts.list_for_company(principal.company_id)
        return self._accounts.list_for_user(principal.company_id, principal.user_id)

    def folders(self, principal: Principal, account_id: str) -> list[FolderInfo]:
        account = self._owned(principal, account_id)
        return self._mailbox.verify(account, self._password(account))

    # -- changes by the user ------------------------------------------------------------
    def update_settings(
        self, principal: Principal, account_id: str, patch: SyncSettingsPatch
    ) -> MailAccount:
        changes = patch.model_dump(exclude_none=True)
        if changes.get("folders") == "selected" and not changes.get("selected_folders"):
            current = self._owned(principal, account_id)
            if not current.settings.selected_folders:
                raise ValidationFailedError("Choose at least one folder to sync.")

        def apply(account: MailAccount) -> MailAccount:
            settings = account.settings.model_copy(update=changes)
            return account.model_copy(update={"settings": settings})

        return self._change(principal, account_id, apply)

    def stop(self, principal: Principal, account_id: str) -> MailAccount:
        return self._change(
            principal, account_id, lambda a: self._moved(a, AccountState.STOPPED, None)
        )

    def resume(self, principal: Principal, account_id: str) -> MailAccount:
        def apply(account: MailAccount) -> MailAccount:
            if account.state != AccountState.STOPPED:
                return account
            if account.kind == AccountKind.EXCHANGE:
                return self._moved(account, AccountState.CONNECTING, account.last_error)
            return self._moved(account, AccountState.ACTIVE, None)

        return self._change(principal, account_id, apply)

    def reauthenticate(
        self, principal: Principal, account_id: str, request: Reauthenticate
    ) -> MailAccount:
        """Retry the login with the stored or a new password; success re-activates."""
        account = self._owned(principal, account_id)
        password = (
            request.password.get_secret_value() if request.password else self._password(account)
        )
        if account.kind == AccountKind.IMAP:
            try:
                self._mailbox.verify(account, password)
            except MailServerError as exc:
                problem = exc.problem
                self._change(
                    principal,
                    account_id,
                    lambda a: self._failed(a, problem, auth=problem.code == "auth_failed"),
                )
                raise
        if request.password:
            self._accounts.save_credentials(
                account.company_id,
                account.id,
                self._secrets.seal(password, credential_context(account)),
            )
        target = (
            AccountState.CONNECTING
            if account.kind == AccountKind.EXCHANGE
            else (AccountState.ACTIVE)
        )
        return self._change(principal, account_id, lambda a: self._moved(a, target, None))

    def remove(self, principal: Principal, account_id: str) -> None:
        """Credentials and sync state go; synced mail stays (SPEC E6)."""
        account = self._owned(principal, account_id)
        self._accounts.delete(account.company_id, account.id, self._shards, self._clock.now())
        self._events.publish([self._event("account.removed", account, {})])

    def sync_now(self, principal: Principal, account_id: str) -> SyncAccount:
        account = self._owned(principal, account_id)
        if not account.state.polls:
            raise ConflictError(f"The account is {account.state}; resume or re-authenticate it.")
        now = self._clock.now()
        job = SyncAccount(
            job_id=f"{account.id}:manual:{self._new_id()}",
            account_id=account.id,
            company_id=account.company_id,
            reason="manual",
            enqueued_at=now,
        )
        self._jobs.send_syncs([QueuedSync(job=job, deduplication_id=job.job_id)])
        return job

    # -- what the sync reports -----------------------------------------------------------
    def password_for_sync(self, account: MailAccount) -> str:
        return self._password(account)

    def record_success(self, account: MailAccount) -> MailAccount:
        if account.state == AccountState.ACTIVE and account.failures == 0:
            return account  # the common case writes nothing
        return self._system_change(account, lambda a: self._moved(a, AccountState.ACTIVE, None))

    def record_failure(self, account: MailAccount, problem: ConnectionProblem) -> MailAccount:
        auth = problem.code == "auth_failed"
        return self._system_change(account, lambda a: self._failed(a, problem, auth=auth))

    # -- state machine ------------------------------------------------------------------
    def _failed(self, account: MailAccount, problem: ConnectionProblem, auth: bool) -> MailAccount:
        error = LastError(**problem.model_dump(), at=self._clock.now())
        if auth:
            return self._moved(account, AccountState.NEEDS_REAUTH, error)
        if problem.code == "permission_denied":
            return self._moved(account, AccountState.PERMISSION_DENIED, error)
        failures = account.failures + 1
        backoff = min(MAX_BACKOFF, self._interval * (2 ** min(failures - 1, 6)))
        jitter = timedelta(seconds=random.uniform(0, backoff.total_seconds() / 5))  # noqa: S311
        failing_since = account.state_changed_at or account.created_at
        lasting = account.state in {AccountState.CONNECTION_ERROR, AccountState.NEEDS_ATTENTION}
        target = (
            AccountState.NEEDS_ATTENTION
            if lasting and self._clock.now() - failing_since >= ATTENTION_AFTER
            else AccountState.CONNECTION_ERROR
        )
        moved = self._moved(account, target, error)
        return moved.model_copy(
            update={"failures": failures, "next_poll_at": self._clock.now() + backoff + jitter}
        )

    def _moved(
        self, account: MailAccount, state: AccountState, error: LastError | None
    ) -> MailAccount:
        now = self._clock.now()
        return account.model_copy(
            update={
                "state": state,
                "last_error": error,
                "failures": 0 if state == AccountState.ACTIVE else account.failures,
                "state_changed_at": now if state != account.state else account.state_changed_at,
                "next_poll_at": now if state.polls else None,
            }
        )

    def _change(
        self,
        principal: Principal,
        account_id: str,
        apply: Callable[[MailAccount], MailAccount],
    ) -> MailAccount:
        account = self._owned(principal, account_id)
        return self._system_change(account, apply)

    def _system_change(
        self, account: MailAccount, apply: Callable[[MailAccount], MailAccount]
    ) -> MailAccount:
        """Read-modify-write with optimistic locking; announce state changes."""
        current: MailAccount | None = account
        for _ in range(SAVE_ATTEMPTS):
            if current is None:
                break
            updated = apply(current)
            if updated == current:
                return current
            if self._accounts.save(updated, self._shards, current.version):
                saved = updated.model_copy(update={"version": current.version + 1})
                if saved.state != current.state:
                    self._announce(saved, current.state)
                return saved
            current = self._accounts.get(account.company_id, account.id)
        raise ConflictError("The account changed meanwhile; try again.")

    def owned(self, principal: Principal, account_id: str) -> MailAccount:
        """The account if the caller owns it (admins may read, not use, others' mailboxes)."""
        return self._owned(principal, account_id)

    def _owned(self, principal: Principal, account_id: str) -> MailAccount:
        account = visible_account(self._accounts, principal, account_id)
        if account.user_id != principal.user_id:
            raise ForbiddenError("Only the account's owner can change it or use its mailbox.")
        return account

    def _password(self, account: MailAccount) -> str:
        sealed = self._accounts.load_credentials(account.company_id, account.id)
        if sealed is None:
            raise MailServerError(
                ConnectionProblem(
                    code="auth_failed",
                    message="No stored credentials for this account.",
                    action="Re-authenticate with the account's password.",
                )
            )
        return self._secrets.open(sealed, credential_context(account))

    def _announce(self, account: MailAccount, previous: AccountState | None) -> None:
        self._events.publish([state_changed(account, previous, self._clock.now())])

    def _event(self, kind: str, account: MailAccount, detail: dict[str, object]) -> DomainEvent:
        return account_event(kind, account, self._clock.now(), detail)


def sync_since(
    setting: Literal["now", "1_month", "3_months", "6_months", "1_year"], connected_at: datetime
) -> datetime:
    """The oldest mail the first backfill takes (SPEC S3)."""
    days = {"now": 0, "1_month": 30, "3_months": 91, "6_months": 182, "1_year": 365}[setting]
    return connected_at - timedelta(days=days)
