"""The accounts' and the sync's view of an IMAP/SMTP mailbox, on the real connectors."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from crmsync.mail.connect import ImapConnector, SmtpConnector, SmtpEnvelope, SmtpOutcome
from crmsync.mail.imap_session import ImapClientSession
from crmsync.models.accounts import MailAccount
from crmsync.models.imap import ImapSession
from crmsync.models.servers import ConnectionProblem, MailServerError, ServerEndpoint
from crmsync.ports import FolderInfo


class ImapMailbox:
    def __init__(self, imap: ImapConnector, smtp: SmtpConnector, cafile: str | None = None) -> None:
        self._imap = imap
        self._smtp = smtp
        self._cafile = cafile

    def verify(self, account: MailAccount, password: str) -> list[FolderInfo]:
        folders = self.check_imap(account, password)
        self.check_smtp(account, password)
        return folders

    def check_imap(self, account: MailAccount, password: str) -> list[FolderInfo]:
        imap, _ = _servers(account)
        return self._imap.login_check(imap, account.login, password, cafile=self._cafile).folders

    def check_smtp(self, account: MailAccount, password: str) -> None:
        _, smtp = _servers(account)
        if smtp is not None:
            self._smtp.login_check(smtp, account.login, password, cafile=self._cafile)

    def send_mail(self, account: MailAccount, password: str, envelope: SmtpEnvelope) -> SmtpOutcome:
        """One SMTP transaction through the account's own server (SPEC I2)."""
        _, smtp = _servers(account)
        if smtp is None:
            raise MailServerError(
                ConnectionProblem(
                    code="server_error",
                    message="This account has no SMTP server to send with.",
                    action="Add the outgoing (SMTP) server in the account's settings.",
                )
            )
        return self._smtp.send(smtp, account.login, password, envelope, cafile=self._cafile)

    @contextmanager
    def open_session(self, account: MailAccount, password: str) -> Iterator[ImapSession]:
        """One logged-in connection for a whole sync run; failures inside the block, the
        session's own included, arrive as MailServerError."""
        imap, _ = _servers(account)
        with self._imap.session(imap, account.login, password, cafile=self._cafile) as client:
            yield ImapClientSession(client)


def _servers(account: MailAccount) -> tuple[ServerEndpoint, ServerEndpoint | None]:
    if account.imap is None:
        raise MailServerError(
            ConnectionProblem(
                code="server_error",
                message="This account has no IMAP server configured.",
                action="Remove the account and connect it again with its server settings.",
            )
        )
    return account.imap, account.smtp
