"""Real logins to a user's IMAP and SMTP servers, with every failure in the user's words.

Connections go only to addresses HostGuard admitted (by IP, so DNS cannot change its mind
in between) and TLS is verified against the host name the user typed. Passwords appear in
no message and no log.
"""

from __future__ import annotations

import imaplib
import os
import smtplib
import socket
import ssl
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, suppress
from typing import Any, Literal

from imapclient import IMAPClient
from imapclient.exceptions import LoginError
from pydantic import BaseModel

from crmsync.models.servers import ConnectionProblem, MailServerError, ServerEndpoint
from crmsync.ports import FolderInfo
from crmsync.security.network import (
    HostGuard,
    ResolvedAddress,
    connect_checked,
    verifying_tls_context,
)

DEFAULT_TIMEOUT = 15.0
CaFile = str | os.PathLike[str] | None
MailProtocol = Literal["IMAP", "SMTP"]
_SPECIAL_USE = {
    flag.lower(): flag
    for flag in ("\\All", "\\Archive", "\\Drafts", "\\Flagged", "\\Junk", "\\Sent", "\\Trash")
} | {"\\important": "\\Important"}
_USUAL_PORTS: dict[MailProtocol, str] = {
    "IMAP": "IMAP usually runs on port 993 with SSL/TLS or 143 with STARTTLS",
    "SMTP": "SMTP usually runs on port 465 with SSL/TLS or 587 with STARTTLS",
}


class ImapServerInfo(BaseModel):
    """What a successful IMAP login tells us about the server and the mailbox."""

    capabilities: list[str]
    condstore: bool
    qresync: bool
    gmail_extensions: bool
    folders: list[FolderInfo]


class _PinnedIMAP4(imaplib.IMAP4):
    """imaplib on admitted addresses; implicit TLS verified against the typed host name."""

    def __init__(
        self, addresses: Sequence[ResolvedAddress], tls: ssl.SSLContext | None, timeout: float
    ) -> None:
        self._addresses = addresses
        self._tls = tls
        super().__init__(addresses[0].host, addresses[0].port, timeout)

    def _create_socket(self, timeout: float | None) -> socket.socket:
        sock = connect_checked(self._addresses, timeout or DEFAULT_TIMEOUT)
        if self._tls is None:
            return sock
        try:
            return self._tls.wrap_socket(sock, server_hostname=self.host)
        except OSError:
            sock.close()
            raise


class _PinnedIMAPClient(IMAPClient):  # type: ignore[misc]  # imapclient has no type hints
    """IMAPClient whose connection is a _PinnedIMAP4; STARTTLS still verifies `host`."""

    def __init__(
        self, addresses: Sequence[ResolvedAddress], tls: ssl.SSLContext | None, timeout: float
    ) -> None:
        self._pinned = addresses
        self._implicit_tls = tls
        first = addresses[0]
        super().__init__(
            first.host, port=first.port, ssl=tls is not None, ssl_context=tls, timeout=timeout
        )

    def _create_IMAP4(self) -> imaplib.IMAP4:
        return _PinnedIMAP4(self._pinned, self._implicit_tls, self._timeout.connect)


class _PinnedSMTP(smtplib.SMTP):
    """smtplib on admitted addresses; SMTPS and STARTTLS verify the typed host name."""

    def __init__(
        self, addresses: Sequence[ResolvedAddress], tls: ssl.SSLContext | None, timeout: float
    ) -> None:
        self._addresses = addresses
        self._implicit_tls = tls
        super().__init__(timeout=timeout)
        self._host = addresses[0].host  # what starttls() and our wrap verify against

    def _get_socket(self, host: str, port: int, timeout: float) -> socket.socket:
        sock = connect_checked(self._addresses, timeout)
        if self._implicit_tls is None:
            return sock
        try:
            return self._implicit_tls.wrap_socket(sock, server_hostname=self._host)
        except OSError:
            sock.close()
            raise


class ImapConnector:
    """Logs in to a user's IMAP server for real; every failure is a MailServerError."""

    def __init__(self, guard: HostGuard, timeout: float = DEFAULT_TIMEOUT) -> None:
        self._guard = guard
        self._timeout = timeout

    def login_check(
        self, endpoint: ServerEndpoint, username: str, password: str, cafile: CaFile = None
    ) -> ImapServerInfo:
        """Log in, read the capabilities and list the folders (with special-use flags)."""
        with self.session(endpoint, username, password, cafile=cafile) as client:
            capabilities = [c.decode("ascii", "replace").upper() for c in client.capabilities()]
            folders = [folder_info(*entry) for entry in client.list_folders()]
        return ImapServerInfo(
            capabilities=capabilities,
            condstore="CONDSTORE" in capabilities or "QRESYNC" in capabilities,
            qresync="QRESYNC" in capabilities,
            gmail_extensions="X-GM-EXT-1" in capabilities,
            folders=folders,
        )

    @contextmanager
    def session(
        self, endpoint: ServerEndpoint, username: str, password: str, cafile: CaFile = None
    ) -> Iterator[IMAPClient]:
        """A logged-in client; connection failures inside the block become MailServerError."""
        addresses = _admit(self._guard, endpoint)
        tls = verifying_tls_context(cafile) if endpoint.security != "none" else None
        with _translated(endpoint, "IMAP", password, self._timeout):
            implicit = tls if endpoint.security == "ssl" else None
            client = _PinnedIMAPClient(addresses, implicit, self._timeout)
        clean = False
        try:
            with _translated(endpoint, "IMAP", password, self._timeout):
                if endpoint.security == "starttls":
                    if b"STARTTLS" not in client.capabilities():
                        raise MailServerError(_no_starttls(endpoint))
                    client.starttls(tls)
                client.login(username, password)
                yield client
            clean = True
        finally:
            with suppress(OSError, imaplib.IMAP4.error):
                if clean:
                    client.logout()
                else:
                    client.shutdown()


class SmtpConnector:
    """Logs in to a user's SMTP server for real (AUTH); every failure is a MailServerError."""

    def __init__(self, guard: HostGuard, timeout: float = DEFAULT_TIMEOUT) -> None:
        self._guard = guard
        self._timeout = timeout

    def login_check(
        self, endpoint: ServerEndpoint, username: str, password: str, cafile: CaFile = None
    ) -> None:
        """Connect, secure the connection as configured and AUTH; returns only on success."""
        with self._session(endpoint, username, password, cafile):
            pass

    def send(
        self,
        endpoint: ServerEndpoint,
        username: str,
        password: str,
        envelope: SmtpEnvelope,
        cafile: CaFile = None,
    ) -> SmtpOutcome:
        """One SMTP transaction. The server's own reply decides (SPEC I2): recipients it
        refused are in the outcome with its code and words; a refused sender or message
        raises SmtpRefusedError. Connection and login failures raise MailServerError."""
        with self._session(endpoint, username, password, cafile) as smtp:
            try:
                refused = smtp.sendmail(envelope.mail_from, envelope.recipients, envelope.data)
            except smtplib.SMTPRecipientsRefused as exc:
                refused = exc.recipients
            except smtplib.SMTPResponseException as exc:
                raise SmtpRefusedError(exc.smtp_code, _said(exc.smtp_error)) from exc
        return SmtpOutcome(
            refused={
                rcpt: SmtpReply(code=code, text=_said(text))
                for rcpt, (code, text) in refused.items()
            }
        )

    @contextmanager
    def _session(
        self, endpoint: ServerEndpoint, username: str, password: str, cafile: CaFile
    ) -> Iterator[smtplib.SMTP]:
        addresses = _admit(self._guard, endpoint)
        tls = verifying_tls_context(cafile) if endpoint.security != "none" else None
        smtp = _PinnedSMTP(addresses, tls if endpoint.security == "ssl" else None, self._timeout)
        clean = False
        try:
            with _translated(endpoint, "SMTP", password, self._timeout):
                code, _greeting = smtp.connect(endpoint.host, endpoint.port)
                if code != 220:
                    raise MailServerError(_not_smtp(endpoint, code))
                smtp.ehlo()
                if endpoint.security == "starttls":
                    if not smtp.has_extn("starttls"):
                        raise MailServerError(_no_starttls(endpoint))
                    smtp.starttls(context=tls)
                    smtp.ehlo()
                smtp.login(username, password)
            with _translated(endpoint, "SMTP", password, self._timeout, refusals=False):
                yield smtp
            clean = True
        finally:
            with suppress(OSError, smtplib.SMTPException):
                if clean:
                    smtp.quit()
                else:
                    smtp.close()


class SmtpEnvelope(BaseModel):
    mail_from: str
    recipients: list[str]
    data: bytes


class SmtpReply(BaseModel):
    code: int
    text: str

    @property
    def permanent(self) -> bool:
        """5xx: the server will never accept it (RFC 5321 4.2.1); 4xx: try again later."""
        return 500 <= self.code < 600


class SmtpOutcome(BaseModel):
    refused: dict[str, SmtpReply]


class SmtpRefusedError(Exception):
    """The server refused the sender or the message itself (MAIL FROM or DATA)."""

    def __init__(self, code: int, text: str) -> None:
        super().__init__(f"{code} {text}")
        self.reply = SmtpReply(code=code, text=text)


def _said(value: bytes | str) -> str:
    text = value.decode("utf-8", "replace") if isinstance(value, bytes) else value
    return " ".join(text.split())[:500]


def _admit(guard: HostGuard, endpoint: ServerEndpoint) -> list[ResolvedAddress]:
    if endpoint.security == "none" and not guard.plaintext_allowed:
        raise MailServerError(
            ConnectionProblem(
                code="insecure_not_allowed",
                message=(
                    "Connections without encryption are not allowed: "
                    "the password would travel in clear text."
                ),
                action="Choose SSL/TLS or STARTTLS as the security setting.",
            )
        )
    return guard.resolve(endpoint.host, endpoint.port)


def folder_info(flags: Sequence[bytes], delimiter: bytes | None, name: Any) -> FolderInfo:
    """One entry of imapclient's list_folders(), with its special-use flag (RFC 6154)."""
    names = [flag.decode("ascii", "replace") for flag in flags]
    special = next((_SPECIAL_USE[f.lower()] for f in names if f.lower() in _SPECIAL_USE), None)
    return FolderInfo(
        name=str(name),
        delimiter=delimiter.decode("ascii", "replace") if delimiter else None,
        flags=names,
        special_use=special,
    )


@contextmanager
def _translated(
    endpoint: ServerEndpoint,
    protocol: MailProtocol,
    secret: str,
    timeout: float,
    *,
    refusals: bool = True,
) -> Iterator[None]:
    """Turn library and socket failures into the one problem a user can act on.

    `refusals=False` lets the server's SMTP replies through (the caller reads them)."""
    try:
        yield
    except LoginError as exc:
        raise MailServerError(_login_refused(str(exc), secret, endpoint)) from exc
    except smtplib.SMTPAuthenticationError as exc:
        raise MailServerError(_auth_failed()) from exc
    except smtplib.SMTPNotSupportedError as exc:
        raise MailServerError(
            _server_error(endpoint, "offers no login on this connection", secure=True)
        ) from exc
    except (smtplib.SMTPServerDisconnected, imaplib.IMAP4.abort) as exc:
        # Both libraries re-raise socket errors as these; the socket error says more.
        cause = exc.__context__
        if isinstance(cause, OSError):
            raise MailServerError(_network_problem(cause, endpoint, protocol, timeout)) from exc
        raise MailServerError(_hung_up(endpoint)) from exc
    except (smtplib.SMTPException, imaplib.IMAP4.error) as exc:
        if not refusals and isinstance(exc, smtplib.SMTPResponseException):
            raise
        raise MailServerError(_server_error(endpoint, "answered with an error")) from exc
    except OSError as exc:
        raise MailServerError(_network_problem(exc, endpoint, protocol, timeout)) from exc


def _network_problem(
    exc: OSError, endpoint: ServerEndpoint, protocol: MailProtocol, timeout: float
) -> ConnectionProblem:
    where = f"{endpoint.host}:{endpoint.port}"
    check_port = f"Check the server name, port and security setting ({_USUAL_PORTS[protocol]})."
    if isinstance(exc, ssl.SSLError):
        other = "STARTTLS" if endpoint.security == "ssl" else "SSL/TLS"
        detail = (
            f"its certificate could not be verified ({exc.verify_message})"
            if isinstance(exc, ssl.SSLCertVerificationError)
            else "the TLS handshake failed"
        )
        return ConnectionProblem(
            code="tls_failed",
            message=f"The secure connection to {where} failed: {detail}.",
            action=(
                f"Check the security setting (try {other} instead), or ask your provider "
                "which certificate and TLS settings the server uses."
            ),
        )
    if isinstance(exc, TimeoutError):
        return ConnectionProblem(
            code="timeout",
            message=f"The mail server at {where} did not answer within {timeout:g} s.",
            action=f"{check_port} A firewall may be dropping the connection; if not, try later.",
        )
    if isinstance(exc, ConnectionResetError | BrokenPipeError | ConnectionAbortedError):
        return _hung_up(endpoint)
    if isinstance(exc, ConnectionRefusedError):
        message = f"Nothing answers on {where}."
    else:
        message = f"{where} cannot be reached from here."
    return ConnectionProblem(code="connection_refused", message=message, action=check_port)


def _login_refused(text: str, secret: str, endpoint: ServerEndpoint) -> ConnectionProblem:
    """IMAP NO to LOGIN: wrong credentials, unless a response code says otherwise."""
    upper = text.upper()
    if "[UNAVAILABLE]" in upper:
        return _server_error(endpoint, "cannot log anyone in right now")
    if "[PRIVACYREQUIRED]" in upper:
        return _server_error(
            endpoint, "accepts the password only over an encrypted connection", secure=True
        )
    alert = text[upper.index("[ALERT]") + len("[ALERT]") :] if "[ALERT]" in upper else ""
    if alert and "PASSWORD" not in upper:
        said = " ".join((alert.replace(secret, "***") if secret else alert).split())[:200]
        return ConnectionProblem(
            code="server_error",
            message=f"The mail server refused the login and said: {said}",
            action="Follow the server's message, or ask your provider what it means.",
        )
    return _auth_failed()


def _auth_failed() -> ConnectionProblem:
    return ConnectionProblem(
        code="auth_failed",
        message="The mail server refused the user name or password.",
        action=(
            "Check the user name and password. If your provider uses two-factor "
            "authentication, create an app password and re-authenticate."
        ),
    )


def _not_smtp(endpoint: ServerEndpoint, code: int) -> ConnectionProblem:
    if code == -1:  # smtplib's code for a reply that is not SMTP at all
        return ConnectionProblem(
            code="server_error",
            message=f"{endpoint.host}:{endpoint.port} does not answer like an SMTP server.",
            action=f"Check the port and security setting ({_USUAL_PORTS['SMTP']}).",
        )
    return _server_error(endpoint, f"did not accept the connection (it answered {code})")


def _no_starttls(endpoint: ServerEndpoint) -> ConnectionProblem:
    return ConnectionProblem(
        code="tls_failed",
        message=f"The mail server at {endpoint.host}:{endpoint.port} does not offer STARTTLS.",
        action="Choose SSL/TLS as the security setting, with the port your provider gives.",
    )


def _hung_up(endpoint: ServerEndpoint) -> ConnectionProblem:
    return ConnectionProblem(
        code="server_error",
        message=(
            f"The mail server at {endpoint.host}:{endpoint.port} "
            "closed the connection unexpectedly."
        ),
        action=(
            "Try again in a few minutes. If it keeps happening, check the port and security "
            "setting, or ask your provider whether the server limits connections."
        ),
    )


def _server_error(
    endpoint: ServerEndpoint, what: str, *, secure: bool = False
) -> ConnectionProblem:
    action = (
        "Choose SSL/TLS or STARTTLS as the security setting."
        if secure
        else "Try again in a few minutes; if it keeps happening, ask your provider."
    )
    return ConnectionProblem(
        code="server_error",
        message=f"The mail server at {endpoint.host}:{endpoint.port} {what}.",
        action=action,
    )
