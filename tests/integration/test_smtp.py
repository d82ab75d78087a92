"""SMTP submission delivers into real Dovecot mailboxes and checks AUTH for real."""

from __future__ import annotations

import secrets
import smtplib
from email.message import EmailMessage
from email.utils import make_msgid

import pytest

from crmsync_local.testservers.dovecot import DovecotServer, MailUser
from crmsync_local.testservers.smtp import SmtpServer
from crmsync_local.testservers.tls import client_ssl_context

pytestmark = pytest.mark.integration


@pytest.fixture
def sender(dovecot: DovecotServer) -> MailUser:
    return dovecot.add_user(f"s-{secrets.token_hex(6)}@{dovecot.domain}", secrets.token_urlsafe(18))


def _email(sender: MailUser, to: str, subject: str) -> EmailMessage:
    message = EmailMessage()
    message["From"] = sender.email
    message["To"] = to
    message["Subject"] = subject
    message["Message-ID"] = make_msgid(domain="crmsync.test")
    message.set_content("Hello from the CRM.\n")
    return message


def _inbox_subjects_for(dovecot: DovecotServer, user: MailUser, msgid: str) -> list[bytes]:
    client = dovecot.connect(user)
    try:
        client.select_folder("INBOX", readonly=True)
        uids = client.search(["HEADER", "Message-ID", msgid])
        fetched = client.fetch(uids, ["BODY.PEEK[HEADER.FIELDS (SUBJECT MESSAGE-ID)]"])
    finally:
        client.logout()
    return [item[b"BODY[HEADER.FIELDS (SUBJECT MESSAGE-ID)]"] for item in fetched.values()]


def test_starttls_auth_send_is_readable_over_imap(
    smtp_server: SmtpServer, dovecot: DovecotServer, sender: MailUser, mail_user: MailUser
) -> None:
    message = _email(sender, mail_user.email, "Proposal via STARTTLS")
    with smtplib.SMTP(smtp_server.host, smtp_server.port, timeout=10) as client:
        client.starttls(context=client_ssl_context(smtp_server.cafile))
        client.login(sender.username, sender.password)
        assert client.send_message(message) == {}

    headers = _inbox_subjects_for(dovecot, mail_user, message["Message-ID"])
    assert len(headers) == 1
    assert message["Message-ID"].encode() in headers[0]
    assert b"Subject: Proposal via STARTTLS" in headers[0]
    envelope = next(e for e in smtp_server.received if message["Message-ID"].encode() in e.data)
    assert envelope.mail_from == sender.email
    assert envelope.rcpt_tos == [mail_user.email]
    assert envelope.auth_login == sender.username


def test_implicit_tls_send(
    smtp_server: SmtpServer, dovecot: DovecotServer, sender: MailUser, mail_user: MailUser
) -> None:
    message = _email(sender, mail_user.email, "Proposal via SMTPS")
    context = client_ssl_context(smtp_server.cafile)
    with smtplib.SMTP_SSL(smtp_server.host, smtp_server.ssl_port, context=context) as client:
        client.login(sender.username, sender.password)
        client.send_message(message)

    assert len(_inbox_subjects_for(dovecot, mail_user, message["Message-ID"])) == 1


def test_bad_password_is_535(smtp_server: SmtpServer, sender: MailUser) -> None:
    with smtplib.SMTP(smtp_server.host, smtp_server.port, timeout=10) as client:
        client.starttls(context=client_ssl_context(smtp_server.cafile))
        with pytest.raises(smtplib.SMTPAuthenticationError) as excinfo:
            client.login(sender.username, sender.password + "x")
    assert excinfo.value.smtp_code == 535


def test_mail_without_auth_is_refused(smtp_server: SmtpServer, mail_user: MailUser) -> None:
    with smtplib.SMTP(smtp_server.host, smtp_server.port, timeout=10) as client:
        client.ehlo()
        assert not client.has_extn("auth")  # AUTH is only offered after STARTTLS
        with pytest.raises(smtplib.SMTPSenderRefused) as excinfo:
            client.sendmail("spoof@example.org", [mail_user.email], b"Subject: x\r\n\r\nx\r\n")
    assert excinfo.value.smtp_code == 530


def test_unknown_recipient_is_relayed_not_delivered(
    smtp_server: SmtpServer, dovecot: DovecotServer, sender: MailUser, mail_user: MailUser
) -> None:
    outside = f"prospect-{secrets.token_hex(4)}@customer.example.org"
    message = _email(sender, outside, "Outbound")
    message["Cc"] = mail_user.email
    with smtplib.SMTP(smtp_server.host, smtp_server.port, timeout=10) as client:
        client.starttls(context=client_ssl_context(smtp_server.cafile))
        client.login(sender.username, sender.password)
        client.send_message(message)

    relayed = [e for e in smtp_server.relayed if message["Message-ID"].encode() in e.data]
    assert len(relayed) == 1
    assert relayed[0].rcpt_tos == [outside]
    assert relayed[0].mail_from == sender.email
    # The local Cc recipient still got it for real.
    assert len(_inbox_subjects_for(dovecot, mail_user, message["Message-ID"])) == 1


def test_unknown_local_user_is_rejected(smtp_server: SmtpServer, sender: MailUser) -> None:
    with smtplib.SMTP(smtp_server.host, smtp_server.port, timeout=10) as client:
        client.starttls(context=client_ssl_context(smtp_server.cafile))
        client.login(sender.username, sender.password)
        with pytest.raises(smtplib.SMTPRecipientsRefused) as excinfo:
            client.sendmail(sender.email, ["nobody-here@example.test"], b"Subject: x\r\n\r\nx\r\n")
    assert excinfo.value.recipients["nobody-here@example.test"][0] == 550
