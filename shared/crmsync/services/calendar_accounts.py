"""Calendar accounts (SPEC C1, C7): connect with a real CalDAV login, choose the calendar and
what syncs, the state machine, and what the calendar sync reports.

Mirrors the mail accounts (services/accounts.py): owner-only changes, admins may read,
optimistic locking on every change, `account.state_changed` on every move (with
`kind: "calendar"`), the password sealed and bound to its account.
"""

from __future__ import annotations

import random
import uuid
from collections.abc import Callable
from datetime import timedelta

from crmsync.calendar import problems
from crmsync.calendar.presets import CalendarPreset, calendar_preset
from crmsync.clock import Clock
from crmsync.errors import ConflictError, ForbiddenError, NotFoundError
from crmsync.models.accounts import AccountState, LastError
from crmsync.models.calendar import CalendarAccount, CalendarInfo, CalendarSyncJob
from crmsync.models.calendar_accounts import (
    CalendarAccountPatch,
    CalendarChoiceError,
    CalendarConnect,
    CalendarReauthenticate,
    CalendarServerError,
    check_usable,
)
from crmsync.models.events import DomainEvent
from crmsync.models.identity import Principal
from crmsync.models.servers import ConnectionProblem, MailServerError
from crmsync.ports import (
    CalendarAccountRepository,
    CalendarConnector,
    CalendarSyncQueue,
    EventPublisher,
    SecretBox,
)
from crmsync.services.account_events import account_event, state_changed

MAX_BACKOFF = timedelta(hours=1)
ATTENTION_AFTER = timedelta(days=3)
SAVE_ATTEMPTS = 3
EVENT_KIND = "calendar"
# States a user's `resume` leaves for `active`: they wait for the user, not for a password.
RESUMABLE = {AccountState.STOPPED, AccountState.PERMISSION_DENIED, AccountState.CALENDAR_MISSING}
# States a successful sync leaves for `active` (a stopped account stays stopped).
RECOVERS = {
    AccountState.ACTIVE,
    AccountState.SYNCING,
    AccountState.CONNECTION_ERROR,
    AccountState.NEEDS_ATTENTION,
}


PresetLookup = Callable[[str], CalendarPreset | None]


def credential_context(account: CalendarAccount) -> dict[str, str]:
    """Binds sealed credentials to this calendar account: a copy elsewhere (another account,
    or a mail account with the same id) does not open."""
    return {"company_id": account.company_id, "account_id": account.id, "kind": "calendar"}


class CalendarAccountService:
    def __init__(
        self,
        accounts: CalendarAccountRepository,
        secrets: SecretBox,
        connector: CalendarConnector,
        queue: CalendarSyncQueue | None,
        events: EventPublisher,
        clock: Clock,
        poll_interval: timedelta,
        presets: PresetLookup = calendar_preset,
        new_id: Callable[[], str] = lambda: uuid.uuid4().hex,
    ) -> None:
        self._accounts = accounts
        self._secrets = secrets
        self._connector = connector
        self._queue = queue
        self._events = events
        self._clock = clock
        self._interval = poll_interval
        self._presets = presets
        self._new_id = new_id

    # -- connect ------------------------------------------------------------------------
    def connect(self, principal: Principal, request: CalendarConnect) -> CalendarAccount:
        """Log in for real and list the calendars, then store. Nothing is stored on failure."""
        preset = self._preset(request.preset) if request.preset else None
        if preset is not None and preset.oauth_only:
            raise CalendarChoiceError(
                "oauth_required",
                f"{preset.name} accepts only OAuth sign-in, never a user name and password.",
                "Connecting it needs the provider's OAuth sign-in, which is not available yet.",
            )
        url = request.url or (preset.url_for(request.host) if preset else None)
        if url is None:
            raise CalendarChoiceError(
                "server_missing",
                "A calendar account needs its server.",
                "Give the CalDAV server's `url`, or a `preset` (e.g. google, icloud, fastmail).",
            )
        now = self._clock.now()
        account = CalendarAccount(
            id=self._new_id(),
            company_id=principal.company_id,
            user_id=principal.user_id,
            provider=request.provider,
            preset=preset.id if preset else None,
            url=url,
            username=request.username,
            uses_two_factor=request.uses_two_factor,
            created_at=now,
            state_changed_at=now,
        )
        password = request.password.get_secret_value()
        account = account.model_copy(update={"calendars": self._calendars(account, password)})
        self._accounts.create(account, self._secrets.seal(password, credential_context(account)))
        self._announce(account, None)
        return account

    # -- reads --------------------------------------------------------------------------
    def get(self, principal: Principal, account_id: str) -> CalendarAccount:
        return self._visible(principal, account_id)

    def list_accounts(self, principal: Principal) -> list[CalendarAccount]:
        if principal.is_admin:
            return self._accounts.list_for_company(principal.company_id)
        return self._accounts.list_for_user(principal.company_id, principal.user_id)

    # -- changes by the owner -----------------------------------------------------------
    def update(
        self, principal: Principal, account_id: str, patch: CalendarAccountPatch
    ) -> CalendarAccount:
        """Choosing (or changing) the calendar starts the sync from now: activities older
        than that never become events (the help article's rule)."""
        current = self._owned(principal, account_id)
        refreshed: list[CalendarInfo] | None = None
        if patch.calendar_id is not None:
            chosen = _find(current.calendars, patch.calendar_id)
            if chosen is None:  # made after connecting? Ask the server again.
                refreshed = self._calendars(current, self._password(current))
                chosen = _find(refreshed, patch.calendar_id)
            check_usable(chosen, patch.calendar_id)

        def apply(account: CalendarAccount) -> CalendarAccount:
            changes: dict[str, object] = {}
            if refreshed is not None:
                changes["calendars"] = refreshed
            if patch.sync_type is not None:
                changes["sync_type"] = patch.sync_type
            if patch.activity_types is not None:
                changes["activity_types"] = patch.activity_types
            if patch.default_activity_type is not None:
                changes["default_activity_type"] = patch.default_activity_type
            updated = account.model_copy(update=changes)
            chosen = patch.calendar_id
            if chosen is None or (
                chosen == account.calendar_id and account.state != AccountState.CALENDAR_MISSING
            ):
                return updated
            now = self._clock.now()
            updated = updated.model_copy(update={"calendar_id": chosen, "sync_since": now})
            if updated.state == AccountState.CALENDAR_MISSING:
                return self._moved(updated, AccountState.ACTIVE, None)
            if updated.state.polls:
                return updated.model_copy(update={"next_poll_at": now})
            return updated

        return self._system_change(current, apply)

    def stop(self, principal: Principal, account_id: str) -> CalendarAccount:
        return self._change(
            principal, account_id, lambda a: self._moved(a, AccountState.STOPPED, None)
        )

    def resume(self, principal: Principal, account_id: str) -> CalendarAccount:
        """From `stopped`, `permission_denied` (access was granted again) or
        `calendar_missing` (it is back): `active`, due at once. Otherwise nothing changes."""

        def apply(account: CalendarAccount) -> CalendarAccount:
            if account.state not in RESUMABLE:
                return account
            return self._moved(account, AccountState.ACTIVE, None)

        return self._change(principal, account_id, apply)

    def reauthenticate(
        self, principal: Principal, account_id: str, request: CalendarReauthenticate
    ) -> CalendarAccount:
        """A real login with the new (or the stored) password; success seals it, refreshes
        the calendar list and re-activates; failure records the problem and answers it."""
        account = self._owned(principal, account_id)
        password = (
            request.password.get_secret_value() if request.password else self._password(account)
        )
        try:
            calendars = self._calendars(account, password)
        except CalendarServerError as exc:
            problem = exc.problem
            self._change(principal, account_id, lambda a: self._failed(a, problem))
            raise
        if request.password:
            self._accounts.save_credentials(
                account.company_id,
                account.id,
                self._secrets.seal(password, credential_context(account)),
            )

        def apply(current: CalendarAccount) -> CalendarAccount:
            current = current.model_copy(update={"calendars": calendars})
            if current.calendar_id is not None and _find(calendars, current.calendar_id) is None:
                return self._moved(
                    current,
                    AccountState.CALENDAR_MISSING,
                    self._error(current, problems.calendar_missing()),
                )
            return self._moved(current, AccountState.ACTIVE, None)

        return self._change(principal, account_id, apply)

    def sync(self, principal: Principal, account_id: str) -> CalendarSyncJob:
        """Queue a manual sync (the API answers 202)."""
        account = self._owned(principal, account_id)
        if self._queue is None:
            raise ConflictError("Calendar sync is not available in this deployment.")
        if account.calendar_id is None:
            raise ConflictError("Choose a calendar first (PATCH with `calendar_id`).")
        if not account.state.polls:
            raise ConflictError(
                f"The account is {account.state}; resume or re-authenticate it first."
            )
        job = CalendarSyncJob(
            job_id=f"{account.id}:manual:{self._new_id()}",
            company_id=account.company_id,
            account_id=account.id,
            reason="manual",
            enqueued_at=self._clock.now(),
        )
        self._queue.send([job])
        return job

    def delete(self, principal: Principal, account_id: str) -> None:
        """The account, its credentials and its sync state go; activities stay."""
        account = self._owned(principal, account_id)
        self._accounts.delete(account.company_id, account.id)
        self._events.publish([self._event("account.removed", account, {})])

    # -- what the calendar sync reports and needs --------------------------------------
    def password_for_sync(self, account: CalendarAccount) -> str:
        return self._password(account)

    def record_success(self, account: CalendarAccount) -> CalendarAccount:
        """A sync that worked: back to `active`. The common case writes nothing, and an
        account stopped meanwhile stays stopped."""
        if account.state == AccountState.ACTIVE and account.failures == 0:
            return account

        def apply(current: CalendarAccount) -> CalendarAccount:
            if current.state not in RECOVERS:
                return current
            if current.state == AccountState.ACTIVE and current.failures == 0:
                return current
            return self._moved(current, AccountState.ACTIVE, None)

        return self._system_change(account, apply)

    def record_failure(
        self, account: CalendarAccount, problem: ConnectionProblem
    ) -> CalendarAccount:
        """`auth_failed` → needs_reauth; `permission_denied` → permission_denied and
        `calendar_missing` → calendar_missing (both stop polling until the user acts);
        anything else → connection_error, retried with backoff. An account that no longer
        polls (stopped meanwhile) is left as it is."""

        def apply(current: CalendarAccount) -> CalendarAccount:
            if not current.state.polls:
                return current
            return self._failed(current, problem)

        return self._system_change(account, apply)

    # -- state machine ------------------------------------------------------------------
    def _failed(self, account: CalendarAccount, problem: ConnectionProblem) -> CalendarAccount:
        error = self._error(account, problem)
        if problem.code == "auth_failed":
            return self._moved(account, AccountState.NEEDS_REAUTH, error)
        if problem.code == "permission_denied":
            return self._moved(account, AccountState.PERMISSION_DENIED, error)
        if problem.code == "calendar_missing":
            return self._moved(account, AccountState.CALENDAR_MISSING, error)
        now = self._clock.now()
        failures = account.failures + 1
        backoff = min(MAX_BACKOFF, self._interval * (2 ** min(failures - 1, 6)))
        jitter = timedelta(seconds=random.uniform(0, backoff.total_seconds() / 5))  # noqa: S311
        failing_since = account.state_changed_at or account.created_at
        lasting = account.state in {AccountState.CONNECTION_ERROR, AccountState.NEEDS_ATTENTION}
        target = (
            AccountState.NEEDS_ATTENTION
            if lasting and now - failing_since >= ATTENTION_AFTER
            else AccountState.CONNECTION_ERROR
        )
        moved = self._moved(account, target, error)
        return moved.model_copy(
            update={"failures": failures, "next_poll_at": now + backoff + jitter}
        )

    def _moved(
        self, account: CalendarAccount, state: AccountState, error: LastError | None
    ) -> CalendarAccount:
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

    def _error(self, account: CalendarAccount, problem: ConnectionProblem) -> LastError:
        return LastError(**self._in_user_words(account, problem).model_dump(), at=self._clock.now())

    def _in_user_words(
        self, account: CalendarAccount, problem: ConnectionProblem
    ) -> ConnectionProblem:
        """The app-password advice where it applies (the troubleshooting article); the
        connector's words for everything else (permissions, a deleted calendar…)."""
        if problem.code == "auth_failed":
            action = "Check the user name and password, then re-authenticate."
            if account.uses_two_factor:
                action = (
                    "Your account uses two-factor authentication: create an app password for "
                    "crmsync in your account's security settings and re-authenticate with it."
                )
            elif self._needs_app_password(account):
                action += (
                    " If your account uses two-factor authentication, create an app password "
                    "for crmsync and re-authenticate with it."
                )
            return problem.model_copy(update={"action": action})
        return problem

    def _needs_app_password(self, account: CalendarAccount) -> bool:
        preset = self._presets(account.preset) if account.preset else None
        return bool(preset and preset.requires_app_password)

    def _change(
        self,
        principal: Principal,
        account_id: str,
        apply: Callable[[CalendarAccount], CalendarAccount],
    ) -> CalendarAccount:
        return self._system_change(self._owned(principal, account_id), apply)

    def _system_change(
        self, account: CalendarAccount, apply: Callable[[CalendarAccount], CalendarAccount]
    ) -> CalendarAccount:
        """Read-modify-write under the account's version; announce state changes."""
        current: CalendarAccount | None = account
        for _ in range(SAVE_ATTEMPTS):
            if current is None:
                break
            updated = apply(current)
            if updated == current:
                return current
            if self._accounts.save(updated, current.version):
                saved = updated.model_copy(update={"version": current.version + 1})
                if saved.state != current.state:
                    self._announce(saved, current.state)
                return saved
            current = self._accounts.get(account.company_id, account.id)
        raise ConflictError("The calendar account changed meanwhile; try again.")

    # -- helpers ------------------------------------------------------------------------
    def _calendars(self, account: CalendarAccount, password: str) -> list[CalendarInfo]:
        """A real login (discovery included) and the principal's calendars."""
        try:
            with self._connector.open(account.url, account.username, password) as server:
                return server.calendars()
        except MailServerError as exc:
            raise CalendarServerError(self._in_user_words(account, exc.problem)) from exc

    def _preset(self, name: str) -> CalendarPreset:
        preset = self._presets(name.strip().lower())
        if preset is None:
            raise CalendarChoiceError(
                "unknown_preset",
                f"There is no calendar provider preset “{name}”.",
                "Give the CalDAV server's `url` instead.",
            )
        return preset

    def _visible(self, principal: Principal, account_id: str) -> CalendarAccount:
        """Visible to its owner and the company's admins; anyone else gets 404."""
        account = self._accounts.get(principal.company_id, account_id)
        if account is None or not (principal.is_admin or account.user_id == principal.user_id):
            raise NotFoundError(f"Calendar account {account_id} not found.")
        return account

    def _owned(self, principal: Principal, account_id: str) -> CalendarAccount:
        account = self._visible(principal, account_id)
        if account.user_id != principal.user_id:
            raise ForbiddenError("Only the account's owner can change it or use its calendar.")
        return account

    def _password(self, account: CalendarAccount) -> str:
        sealed = self._accounts.load_credentials(account.company_id, account.id)
        if sealed is None:
            raise CalendarServerError(
                ConnectionProblem(
                    code="auth_failed",
                    message="No stored credentials for this calendar account.",
                    action="Re-authenticate with the account's password.",
                )
            )
        return self._secrets.open(sealed, credential_context(account))

    def _announce(self, account: CalendarAccount, previous: AccountState | None) -> None:
        self._events.publish([state_changed(account, previous, self._clock.now(), EVENT_KIND)])

    def _event(self, kind: str, account: CalendarAccount, detail: dict[str, object]) -> DomainEvent:
        return account_event(kind, account, self._clock.now(), detail, EVENT_KIND)


def _find(calendars: list[CalendarInfo], calendar_id: str) -> CalendarInfo | None:
    return next((c for c in calendars if c.id == calendar_id), None)
