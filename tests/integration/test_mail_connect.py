"""Real logins against the private Dovecot and SMTP servers, and every failure mapped."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator, Sequence

import pytest

from crmsync.mail.connect import ImapConnector, SmtpConnector
from crmsync.models.servers import MailServerError, Security, ServerEndpoint
from crmsync.security.network import HostGuard
from crmsync_local.testservers.dovecot import DovecotServer, MailUser
from crmsync_local.testservers.net import LOOPBACK, free_port
from crmsync_local.testservers.smtp import SmtpServer

pytestmark = pytest.mark.integration

APP_PASSWORD_HINT = (
    "If your provider uses two-factor authentication, create an app password and re-authenticate."
)


@pytest.fixture
def imap() -> ImapConnector:
    return ImapConnector(HostGuard("local"), timeout=5)


@pytest.fixture
def smtp() -> SmtpConnector:
    return SmtpConnector(HostGuard("local"), timeout=5)


def imap_endpoint(dovecot: DovecotServer, security: Security) -> ServerEndpoint:
    port = dovecot.ssl_port if security == "ssl" else dovecot.port
    return ServerEndpoint(host=dovecot.host, port=port, security=security)


def refused(exc: pytest.ExceptionInfo[MailServerError], password: str) -> str:
    """The problem's code, after checking the password shows up nowhere in it."""
    problem = exc.value.problem
    for text in (problem.message, problem.action, str(exc.value), repr(exc.value)):
        assert password not in text
    return problem.code


@pytest.fixture
def silent_server() -> Iterator[int]:
    """Accepts TCP connections (kernel backlog) and never says a word."""
    with socket.socket() as listener:
        listener.bind((LOOPBACK, 0))
        listener.listen(8)
        yield listener.getsockname()[1]


@pytest.fixture
def hang_up_server() -> Iterator[int]:
    """Greets like IMAP, reads the first command, then hangs up."""
    listener = socket.socket()
    listener.bind((LOOPBACK, 0))
    listener.listen(8)
    listener.settimeout(10)

    def serve() -> None:
        with listener, listener.accept()[0] as conn:
            conn.settimeout(10)
            conn.sendall(b"* OK [CAPABILITY IMAP4rev1 AUTH=PLAIN] Fake IMAP ready\r\n")
            conn.recv(1024)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield listener.getsockname()[1]
    thread.join(timeout=10)


@pytest.mark.parametrize("security", ["ssl", "starttls", "none"])
def test_imap_login_check(
    imap: ImapConnector, dovecot: DovecotServer, mail_user: MailUser, security: Security
) -> None:
    info = imap.login_check(
        imap_endpoint(dovecot, security), mail_user.username, mail_user.password, dovecot.cafile
    )
    assert info.condstore
    assert info.qresync
    assert not info.gmail_extensions
    assert "IMAP4REV1" in info.capabilities
    special = {f.special_use: f.name for f in info.folders if f.special_use}
    assert special["\\Sent"] == "Sent"
    assert special["\\Trash"] == "Trash"
    assert special["\\Drafts"] == "Drafts"
    inbox = next(f for f in info.folders if f.name == "INBOX")
    assert inbox.delimiter == "/"
    assert inbox.special_use is None


def test_imap_session_is_logged_in(
    imap: ImapConnector, dovecot: DovecotServer, mail_user: MailUser
) -> None:
    endpoint = imap_endpoint(dovecot, "ssl")
    with imap.session(endpoint, mail_user.username, mail_user.password, dovecot.cafile) as client:
        assert client.select_folder("INBOX", readonly=True)[b"EXISTS"] == 0
        assert client.socket().server_hostname == dovecot.host


def test_imap_wrong_password(
    imap: ImapConnector, dovecot: DovecotServer, mail_user: MailUser
) -> None:
    wrong = mail_user.password + "-wrong"
    with pytest.raises(MailServerError) as caught:
        imap.login_check(imap_endpoint(dovecot, "ssl"), mail_user.username, wrong, dovecot.cafile)
    assert refused(caught, wrong) == "auth_failed"
    assert caught.value.problem.message == "The mail server refused the user name or password."
    assert APP_PASSWORD_HINT in caught.value.problem.action


def test_imap_nothing_listening(imap: ImapConnector, mail_user: MailUser) -> None:
    port = free_port()
    endpoint = ServerEndpoint(host=LOOPBACK, port=port, security="ssl")
    with pytest.raises(MailServerError) as caught:
        imap.login_check(endpoint, mail_user.username, mail_user.password)
    assert refused(caught, mail_user.password) == "connection_refused"
    assert f"Nothing answers on {LOOPBACK}:{port}" in caught.value.problem.message
    assert "port" in caught.value.problem.action


def test_imap_implicit_tls_on_the_plain_port(
    imap: ImapConnector, dovecot: DovecotServer, mail_user: MailUser
) -> None:
    """The plain port greets in clear text, which the TLS handshake rejects at once."""
    endpoint = ServerEndpoint(host=dovecot.host, port=dovecot.port, security="ssl")
    with pytest.raises(MailServerError) as caught:
        imap.login_check(endpoint, mail_user.username, mail_user.password, dovecot.cafile)
    assert refused(caught, mail_user.password) == "tls_failed"
    assert "STARTTLS" in caught.value.problem.action


def test_imap_untrusted_certificate(
    imap: ImapConnector, dovecot: DovecotServer, mail_user: MailUser
) -> None:
    """Without the test CA the system store cannot verify the self-signed certificate."""
    with pytest.raises(MailServerError) as caught:
        imap.login_check(imap_endpoint(dovecot, "ssl"), mail_user.username, mail_user.password)
    assert refused(caught, mail_user.password) == "tls_failed"
    assert "certificate" in caught.value.problem.message


def test_imap_server_hangs_up(
    imap: ImapConnector, hang_up_server: int, mail_user: MailUser
) -> None:
    endpoint = ServerEndpoint(host=LOOPBACK, port=hang_up_server, security="none")
    with pytest.raises(MailServerError) as caught:
        imap.login_check(endpoint, mail_user.username, mail_user.password)
    assert refused(caught, mail_user.password) == "server_error"
    assert "closed the connection unexpectedly" in caught.value.problem.message


@pytest.mark.parametrize("security", ["ssl", "none"])
def test_imap_server_never_answers(
    silent_server: int, mail_user: MailUser, security: Security
) -> None:
    connector = ImapConnector(HostGuard("local"), timeout=1)
    endpoint = ServerEndpoint(host=LOOPBACK, port=silent_server, security=security)
    with pytest.raises(MailServerError) as caught:
        connector.login_check(endpoint, mail_user.username, mail_user.password)
    assert refused(caught, mail_user.password) == "timeout"
    assert "did not answer within 1 s." in caught.value.problem.message


def test_tls_is_verified_against_the_typed_name_not_the_ip(
    dovecot: DovecotServer, mail_user: MailUser
) -> None:
    """The connection goes to the checked IP, but the certificate must match the host name."""
    lookups: list[str] = []

    def resolver(host: str, port: int) -> Sequence[str]:
        lookups.append(host)
        return [LOOPBACK]

    connector = ImapConnector(HostGuard("local", resolver=resolver), timeout=5)
    good = ServerEndpoint(host="localhost", port=dovecot.ssl_port, security="ssl")
    info = connector.login_check(good, mail_user.username, mail_user.password, dovecot.cafile)
    assert info.folders
    assert lookups == ["localhost"]  # looked up once; the socket went to the checked address

    # The certificate also names 127.0.0.1, so only a check against the name can fail here.
    other = ServerEndpoint(host="imap.not-in-cert.test", port=dovecot.ssl_port, security="ssl")
    with pytest.raises(MailServerError) as caught:
        connector.login_check(other, mail_user.username, mail_user.password, dovecot.cafile)
    assert refused(caught, mail_user.password) == "tls_failed"
    assert "imap.not-in-cert.test" in caught.value.problem.message


@pytest.mark.parametrize("security", ["starttls", "ssl"])
def test_smtp_login_check(
    smtp: SmtpConnector, smtp_server: SmtpServer, mail_user: MailUser, security: Security
) -> None:
    port = smtp_server.ssl_port if security == "ssl" else smtp_server.port
    endpoint = ServerEndpoint(host=smtp_server.host, port=port, security=security)
    smtp.login_check(endpoint, mail_user.username, mail_user.password, smtp_server.cafile)


@pytest.mark.parametrize("security", ["starttls", "ssl"])
def test_smtp_wrong_password(
    smtp: SmtpConnector, smtp_server: SmtpServer, mail_user: MailUser, security: Security
) -> None:
    port = smtp_server.ssl_port if security == "ssl" else smtp_server.port
    endpoint = ServerEndpoint(host=smtp_server.host, port=port, security=security)
    wrong = mail_user.password + "-wrong"
    with pytest.raises(MailServerError) as caught:
        smtp.login_check(endpoint, mail_user.username, wrong, smtp_server.cafile)
    assert refused(caught, wrong) == "auth_failed"
    assert APP_PASSWORD_HINT in caught.value.problem.action


def test_smtp_without_tls_offers_no_login(
    smtp: SmtpConnector, smtp_server: SmtpServer, mail_user: MailUser
) -> None:
    """The submission server hides AUTH until STARTTLS, as real providers do."""
    endpoint = ServerEndpoint(host=smtp_server.host, port=smtp_server.port, security="none")
    with pytest.raises(MailServerError) as caught:
        smtp.login_check(endpoint, mail_user.username, mail_user.password)
    assert refused(caught, mail_user.password) == "server_error"
    assert "STARTTLS" in caught.value.problem.action


def test_smtp_nothing_listening(smtp: SmtpConnector, mail_user: MailUser) -> None:
    endpoint = ServerEndpoint(host=LOOPBACK, port=free_port(), security="ssl")
    with pytest.raises(MailServerError) as caught:
        smtp.login_check(endpoint, mail_user.username, mail_user.password)
    assert refused(caught, mail_user.password) == "connection_refused"


def test_smtp_server_never_answers(silent_server: int, mail_user: MailUser) -> None:
    connector = SmtpConnector(HostGuard("local"), timeout=1)
    endpoint = ServerEndpoint(host=LOOPBACK, port=silent_server, security="starttls")
    with pytest.raises(MailServerError) as caught:
        connector.login_check(endpoint, mail_user.username, mail_user.password)
    assert refused(caught, mail_user.password) == "timeout"


@pytest.fixture
def no_connections(monkeypatch: pytest.MonkeyPatch) -> None:
    """Any connection attempt fails the test: refusals must come before the network."""

    def refuse(*args: object) -> None:
        raise AssertionError(f"connected although the guard should have refused: {args!r}")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)


@pytest.mark.usefixtures("no_connections")
@pytest.mark.parametrize("host", [LOOPBACK, "localhost", "::1", "169.254.169.254", "10.0.0.1"])
def test_production_refuses_internal_hosts_before_connecting(
    dovecot: DovecotServer, mail_user: MailUser, host: str
) -> None:
    endpoint = ServerEndpoint(host=host, port=dovecot.ssl_port, security="ssl")
    guard = HostGuard("production")
    for connector in (ImapConnector(guard), SmtpConnector(guard)):
        with pytest.raises(MailServerError) as caught:
            connector.login_check(endpoint, mail_user.username, mail_user.password)
        assert refused(caught, mail_user.password) == "host_not_allowed"


@pytest.mark.usefixtures("no_connections")
def test_production_refuses_plaintext_before_resolving(
    monkeypatch: pytest.MonkeyPatch, mail_user: MailUser
) -> None:
    def no_dns(host: str, port: int) -> Sequence[str]:
        raise AssertionError("resolved a host although plaintext is refused anyway")

    guard = HostGuard("production", resolver=no_dns)
    endpoint = ServerEndpoint(host="imap.example.com", port=143, security="none")
    for connector in (ImapConnector(guard), SmtpConnector(guard)):
        with pytest.raises(MailServerError) as caught:
            connector.login_check(endpoint, mail_user.username, mail_user.password)
        assert refused(caught, mail_user.password) == "insecure_not_allowed"
        assert "SSL/TLS or STARTTLS" in caught.value.problem.action
