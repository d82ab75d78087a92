"""A real SMTP submission server (aiosmtpd) that delivers local mail into Dovecot."""

from __future__ import annotations

import asyncio
import logging
import shutil
import tempfile
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Self

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword, Session

from crmsync_local.processes import Lifecycle
from crmsync_local.testservers.dovecot import DeliveryError, DovecotServer
from crmsync_local.testservers.net import LOOPBACK, free_ports
from crmsync_local.testservers.tls import make_self_signed_cert, server_ssl_context

Credentials = Callable[[str, str], bool]
DROP = "DROP"


class _DropLoginDataDeprecation(logging.Filter):
    """aiosmtpd warns about its own deprecated Session.login_data on every AUTH."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "login_data is deprecated" not in record.getMessage()


logging.getLogger("mail.log").addFilter(_DropLoginDataDeprecation())


@dataclass(frozen=True)
class SmtpEnvelope:
    """One accepted message: envelope sender, recipients and the raw bytes as received."""

    mail_from: str
    rcpt_tos: list[str]
    data: bytes
    auth_login: str | None = None


@dataclass
class _Handler:
    """aiosmtpd hooks: check recipients, deliver local ones into Dovecot, keep the rest."""

    dovecot: DovecotServer | None
    # What the next DATA commands answer instead of delivering: an SMTP reply such as
    # "451 4.3.0 Try again later", or DROP to hang up without a reply (tests of retries).
    planned: list[str] = field(default_factory=list)
    received: list[SmtpEnvelope] = field(default_factory=list)
    relayed: list[SmtpEnvelope] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    async def handle_RCPT(
        self,
        server: SMTP,
        session: Session,
        envelope: Envelope,
        address: str,
        rcpt_options: list[str],
    ) -> str:
        dovecot = self.dovecot
        if (
            dovecot is not None
            and dovecot.is_local_domain(address)
            and dovecot.user_for_address(address) is None
        ):
            # Like a real MX for the domain: unknown local users bounce at RCPT time.
            return "550 5.1.1 User unknown"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        with self.lock:
            planned = self.planned.pop(0) if self.planned else None
        if planned == DROP:
            transport = server.transport
            if isinstance(transport, asyncio.Transport):
                transport.abort()
            return "421 4.3.0 Connection dropped"
        if planned is not None:
            return planned
        data = envelope.original_content or b""
        mail_from = envelope.mail_from or ""
        login = _login_name(session)
        remote: list[str] = []
        dovecot = self.dovecot
        for rcpt in envelope.rcpt_tos:
            user = dovecot.user_for_address(rcpt) if dovecot is not None else None
            if dovecot is None or user is None:
                remote.append(rcpt)
                continue
            try:
                # Delivered before "250" so the message is in the INBOX once sendmail returns.
                await asyncio.to_thread(dovecot.deliver, user, data, mail_from=mail_from)
            except DeliveryError as exc:
                return f"451 4.3.0 Local delivery to {rcpt} failed: {exc}"
        with self.lock:
            self.received.append(
                SmtpEnvelope(mail_from, list(envelope.rcpt_tos), data, auth_login=login)
            )
            if remote:
                self.relayed.append(SmtpEnvelope(mail_from, remote, data, auth_login=login))
        return "250 2.0.0 Message accepted for delivery"


def _login_name(session: Session) -> str | None:
    auth_data = session.auth_data
    if isinstance(auth_data, LoginPassword):
        return auth_data.login.decode("utf-8", "replace")
    return None


class _ImplicitTlsSMTP(SMTP):
    """SMTP for the SMTPS port.

    aiosmtpd counts only STARTTLS as encryption for `auth_require_tls`, so it would hide
    AUTH on an implicit-TLS connection, which is encrypted from the first byte.
    """

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)
        if transport.get_extra_info("ssl_object") is not None:
            self._auth_require_tls = False


class _ImplicitTlsController(Controller):
    def factory(self) -> SMTP:
        return _ImplicitTlsSMTP(self.handler, **self.SMTP_kwargs)


class SmtpServer(Lifecycle):
    """Submission with STARTTLS plus implicit-TLS SMTPS, both on free loopback ports.

    AUTH PLAIN/LOGIN is checked against `credentials` (default: the linked Dovecot's
    users) and only offered after TLS. Mail to the Dovecot's users is delivered to their
    INBOX with dovecot-lda; other recipients are recorded in `relayed`, nothing leaves.
    """

    host = LOOPBACK

    def __init__(
        self,
        dovecot: DovecotServer | None = None,
        *,
        credentials: Credentials | None = None,
        require_auth: bool = True,
        implicit_tls: bool = True,
        hostname: str = "localhost",
    ) -> None:
        if credentials is None and dovecot is not None:
            credentials = dovecot.check_password
        if require_auth and credentials is None:
            raise ValueError("require_auth needs a credentials callback or a DovecotServer")
        self.dovecot = dovecot
        self.credentials = credentials
        self.require_auth = require_auth
        self.implicit_tls = implicit_tls
        self.hostname = hostname
        self._workdir: Path | None = None
        self._handler = _Handler(dovecot)
        self._controllers: list[Controller] = []
        self.port = 0
        self.ssl_port = 0

    @property
    def received(self) -> list[SmtpEnvelope]:
        """Every accepted message, in order (a snapshot copy)."""
        with self._handler.lock:
            return list(self._handler.received)

    @property
    def relayed(self) -> list[SmtpEnvelope]:
        """Accepted messages for non-local recipients; `rcpt_tos` lists only those."""
        with self._handler.lock:
            return list(self._handler.relayed)

    def plan(self, *replies: str) -> None:
        """The next DATA commands answer these (in order) instead of delivering; DROP
        hangs up without an answer."""
        with self._handler.lock:
            self._handler.planned.extend(replies)

    def clear(self) -> None:
        """Forget what was received so far."""
        with self._handler.lock:
            self._handler.received.clear()
            self._handler.relayed.clear()
            self._handler.planned.clear()

    @property
    def cafile(self) -> Path:
        """The self-signed certificate clients must trust for STARTTLS and SMTPS."""
        if self._workdir is None:
            raise RuntimeError("SmtpServer is not started")
        return self._workdir / "cert.pem"

    def start(self) -> Self:
        """Generate the certificate and start one aiosmtpd controller per port."""
        if self._controllers:
            raise RuntimeError("SmtpServer already started")
        self._workdir = Path(tempfile.mkdtemp(prefix="crmsync-smtp-"))
        try:
            certfile, keyfile = make_self_signed_cert(self._workdir, self.hostname)
            context = server_ssl_context(certfile, keyfile)
            self.port, self.ssl_port = free_ports(2)
            common: dict[str, Any] = {
                "hostname": self.host,
                "server_hostname": self.hostname,
                "authenticator": self._authenticate,
                "auth_required": self.require_auth,
                "auth_require_tls": True,
            }
            submission = Controller(self._handler, port=self.port, tls_context=context, **common)
            self._controllers.append(submission)
            submission.start()
            if self.implicit_tls:
                smtps = _ImplicitTlsController(
                    self._handler, port=self.ssl_port, ssl_context=context, **common
                )
                self._controllers.append(smtps)
                smtps.start()
            else:
                self.ssl_port = 0
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        """Stop the controllers and remove the certificate directory."""
        while self._controllers:
            controller = self._controllers.pop()
            controller.stop()
            controller.loop.close()
        if self._workdir is not None:
            shutil.rmtree(self._workdir)
            self._workdir = None

    def _authenticate(
        self,
        server: SMTP,
        session: Session,
        envelope: Envelope,
        mechanism: str,
        auth_data: Any,
    ) -> AuthResult:
        # aiosmtpd turns an unhandled failure into "535 5.7.8 Authentication credentials invalid".
        if not isinstance(auth_data, LoginPassword) or self.credentials is None:
            return AuthResult(success=False, handled=False)
        try:
            login = auth_data.login.decode("utf-8")
            password = auth_data.password.decode("utf-8")
        except UnicodeDecodeError:
            return AuthResult(success=False, handled=False)
        if not self.credentials(login, password):
            return AuthResult(success=False, handled=False)
        return AuthResult(success=True, auth_data=auth_data)
