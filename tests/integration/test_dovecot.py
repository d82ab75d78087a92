"""The private Dovecot behaves like a real IMAP provider (login, TLS, extensions)."""

from __future__ import annotations

import ssl
from email.utils import make_msgid

import pytest
from imapclient import IMAPClient
from imapclient.exceptions import LoginError

from crmsync_local.testservers.dovecot import SPECIAL_USE_FOLDERS, DovecotServer, MailUser
from crmsync_local.testservers.tls import client_ssl_context

pytestmark = pytest.mark.integration


def _message(msgid: str, subject: str = "Quarterly review") -> bytes:
    return (
        f"From: Carol <carol@example.org>\r\nTo: someone@example.test\r\n"
        f"Subject: {subject}\r\nMessage-ID: {msgid}\r\n"
        "Date: Mon, 05 Jan 2026 10:00:00 +0000\r\n\r\nSee you there.\r\n"
    ).encode()


def _fetch_by_msgid(client: IMAPClient, folder: str, msgid: str) -> tuple[int, dict[bytes, object]]:
    client.select_folder(folder, readonly=True)
    uids = client.search(["HEADER", "Message-ID", msgid])
    assert len(uids) == 1, f"{msgid} found {len(uids)} times in {folder}"
    data = client.fetch(uids, ["BODY.PEEK[]", "FLAGS"])
    return uids[0], data[uids[0]]


def test_plain_imap_login_append_fetch(dovecot: DovecotServer, mail_user: MailUser) -> None:
    msgid = make_msgid(domain="crmsync.test")
    raw = _message(msgid)
    uid = dovecot.append(mail_user, "INBOX", raw, flags=[r"\Flagged"])

    client = IMAPClient(dovecot.host, port=dovecot.port, ssl=False, timeout=10)
    try:
        assert b"STARTTLS" in client.capabilities()
        client.login(mail_user.username, mail_user.password)
        fetched_uid, data = _fetch_by_msgid(client, "INBOX", msgid)
    finally:
        client.logout()
    assert fetched_uid == uid
    assert data[b"BODY[]"] == raw
    assert rb"\Flagged" in data[b"FLAGS"]  # type: ignore[operator]


def test_implicit_tls_verifies_certificate(dovecot: DovecotServer, mail_user: MailUser) -> None:
    msgid = make_msgid(domain="crmsync.test")
    dovecot.append(mail_user, "INBOX", _message(msgid))
    context = client_ssl_context(dovecot.cafile)

    client = IMAPClient(
        dovecot.host, port=dovecot.ssl_port, ssl=True, ssl_context=context, timeout=10
    )
    try:
        sock = client.socket()
        assert isinstance(sock, ssl.SSLSocket)
        assert sock.getpeercert()  # only filled in for a verified peer
        client.login(mail_user.username, mail_user.password)
        _fetch_by_msgid(client, "INBOX", msgid)
    finally:
        client.logout()


def test_implicit_tls_rejected_without_the_ca(dovecot: DovecotServer) -> None:
    with pytest.raises(ssl.SSLCertVerificationError):
        IMAPClient(
            dovecot.host,
            port=dovecot.ssl_port,
            ssl=True,
            ssl_context=ssl.create_default_context(),
            timeout=10,
        )


def test_starttls_login_append_fetch(dovecot: DovecotServer, mail_user: MailUser) -> None:
    client = IMAPClient(dovecot.host, port=dovecot.port, ssl=False, timeout=10)
    try:
        client.starttls(client_ssl_context(dovecot.cafile))
        assert isinstance(client.socket(), ssl.SSLSocket)
        client.login(mail_user.username, mail_user.password)
        msgid = make_msgid(domain="crmsync.test")
        raw = _message(msgid, subject="Over STARTTLS")
        client.append("INBOX", raw)
        _, data = _fetch_by_msgid(client, "INBOX", msgid)
    finally:
        client.logout()
    assert data[b"BODY[]"] == raw


def test_wrong_password_raises_login_error(dovecot: DovecotServer, mail_user: MailUser) -> None:
    client = IMAPClient(dovecot.host, port=dovecot.port, ssl=False, timeout=10)
    try:
        with pytest.raises(LoginError):
            client.login(mail_user.username, mail_user.password + "-wrong")
    finally:
        client.shutdown()


def test_sha512_crypt_user_and_password_change(dovecot: DovecotServer) -> None:
    user = dovecot.add_user("crypt-user@example.test", "first-Pass:1", scheme="SHA512-CRYPT")
    assert (dovecot.workdir / "users" / user.username).read_text().count("{SHA512-CRYPT}$6$") == 1
    dovecot.connect(user).logout()

    dovecot.set_password(user.username, "second-Pass:2")

    dovecot.connect(user.username).logout()
    client = IMAPClient(dovecot.host, port=dovecot.port, ssl=False, timeout=10)
    try:
        with pytest.raises(LoginError):
            client.login(user.username, "first-Pass:1")
    finally:
        client.shutdown()


def test_condstore_and_qresync(dovecot: DovecotServer, mail_user: MailUser) -> None:
    dovecot.append(mail_user, "INBOX", _message(make_msgid(domain="crmsync.test")))
    client = dovecot.connect(mail_user)
    try:
        capabilities = client.capabilities()
        assert b"CONDSTORE" in capabilities
        assert b"QRESYNC" in capabilities
        assert client.enable("CONDSTORE") == [b"CONDSTORE"]
        selected = client.select_folder("INBOX")
        assert int(selected[b"HIGHESTMODSEQ"]) > 0
        changed = client.fetch("1:*", ["FLAGS"], modifiers=["CHANGEDSINCE 0"])
        assert all(b"MODSEQ" in item for item in changed.values())
    finally:
        client.logout()


def test_special_use_folders_listed_with_flags(dovecot: DovecotServer, mail_user: MailUser) -> None:
    client = dovecot.connect(mail_user, mode="ssl")
    try:
        assert b"SPECIAL-USE" in client.capabilities()
        flags_by_name = {name: flags for flags, _sep, name in client.list_folders()}
        for name, flag in SPECIAL_USE_FOLDERS.items():
            assert flag.encode() in flags_by_name[name], (name, flags_by_name)
        assert client.find_special_folder(rb"\Sent") == "Sent"
    finally:
        client.logout()


def test_create_folder_and_append_lands_in_maildir(
    dovecot: DovecotServer, mail_user: MailUser
) -> None:
    dovecot.create_folder(mail_user, "Clients/ACME")
    msgid = make_msgid(domain="crmsync.test")
    dovecot.append(mail_user, "Clients/ACME", _message(msgid), flags=[r"\Seen"])

    client = dovecot.connect(mail_user, mode="starttls")
    try:
        assert "Clients/ACME" in [name for _f, _s, name in client.list_sub_folders()]
        _fetch_by_msgid(client, "Clients/ACME", msgid)
    finally:
        client.logout()
    folder = dovecot.maildir_path(mail_user) / ".Clients.ACME"
    stored = [p.read_bytes() for sub in ("cur", "new") for p in (folder / sub).iterdir()]
    assert any(msgid.encode() in body for body in stored)
