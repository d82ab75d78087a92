"""Sync status reads: who may see which account's runs."""

from __future__ import annotations

from crmsync.errors import NotFoundError
from crmsync.models.accounts import MailAccount
from crmsync.models.identity import Principal
from crmsync.models.pages import Page
from crmsync.models.sync import SyncRun
from crmsync.ports import AccountRepository, SyncRunRepository


def visible_account(
    accounts: AccountRepository, principal: Principal, account_id: str
) -> MailAccount:
    """An account is visible to its owner and to admins of its company; to nobody else.

    Another company's account is not even addressable (keys start with the company), and a
    colleague's account answers 404 like a missing one so ids cannot be probed.
    """
    account = accounts.get(principal.company_id, account_id)
    if account is None or not (principal.is_admin or account.user_id == principal.user_id):
        raise NotFoundError(f"Mail account {account_id} not found.")
    return account


class SyncStatus:
    def __init__(self, accounts: AccountRepository, runs: SyncRunRepository) -> None:
        self._accounts = accounts
        self._runs = runs

    def runs(
        self, principal: Principal, account_id: str, limit: int, cursor: str | None
    ) -> Page[SyncRun]:
        visible_account(self._accounts, principal, account_id)
        return self._runs.list(principal.company_id, account_id, limit, cursor)
