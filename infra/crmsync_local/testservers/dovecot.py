"""A private, real Dovecot IMAP server for integration tests.

Each instance gets its own config, sockets, state, logs, users and maildirs inside one
temporary directory; nothing under /etc or /var is read or written. Written for the
Dovecot 2.3 configuration syntax (2.4 changed it incompatibly, so it is refused).
"""

from __future__ import annotations

import atexit
import base64
import datetime as dt
import grp
import os
import pwd
import re
import shutil
import socket
import ssl
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, Self

from imapclient import IMAPClient

from crmsync_local.processes import Lifecycle, ServerStartError, kill_group, read_log, spawn
from crmsync_local.testservers.net import LOOPBACK, free_ports
from crmsync_local.testservers.tls import client_ssl_context, make_self_signed_cert

# Dovecot refuses to run mail processes as root (uid 0 is rejected whatever
# first_valid_uid says), so as root the mailboxes belong to this otherwise unused
# numeric uid/gid. It needs no /etc/passwd entry.
ROOT_MAIL_UID = 60999
ROOT_MAIL_GID = 60999

SPECIAL_USE_FOLDERS: dict[str, str] = {
    "Drafts": "\\Drafts",
    "Sent": "\\Sent",
    "Trash": "\\Trash",
    "Archive": "\\Archive",
    "Junk": "\\Junk",
}
FOLDER_SEPARATOR = "/"

# Dovecot's default auth_username_chars, minus upper case (usernames are lower-cased).
_USERNAME_RE = re.compile(r"[a-z0-9_-][a-z0-9._@-]*")
_SAFE_PATH_RE = re.compile(r"[A-Za-z0-9_./+-]+")
_APPENDUID_RE = re.compile(rb"APPENDUID \d+ (\d+)")

ImapMode = Literal["plain", "starttls", "ssl"]
PasswordScheme = Literal["PLAIN", "SHA512-CRYPT"]


class DeliveryError(RuntimeError):
    """dovecot-lda refused or failed to deliver a message."""


@dataclass(frozen=True)
class MailUser:
    """A mailbox owner: IMAP login name, clear-text password, and e-mail address."""

    username: str
    password: str
    email: str


def _find_binary(name: str, *candidates: str) -> str:
    """Locate a Dovecot binary; sbin and libexec dirs are often not on a non-root PATH."""
    found = shutil.which(name)
    if found:
        return found
    for candidate in candidates:
        if os.access(candidate, os.X_OK):
            return candidate
    raise FileNotFoundError(f"{name} not found; install the Debian package dovecot-imapd")


def dovecot_version(binary: str | None = None) -> str:
    """The installed Dovecot version, e.g. "2.3.19.1"."""
    binary = binary or _find_binary("dovecot", "/usr/sbin/dovecot")
    out = subprocess.run(
        [binary, "--version"], check=True, capture_output=True, text=True, timeout=10
    ).stdout
    return out.split()[0]


class DovecotServer(Lifecycle):
    """Runs `dovecot -F` on two free loopback ports: IMAP (+STARTTLS) and IMAPS."""

    host = LOOPBACK

    def __init__(
        self,
        *,
        domain: str = "example.test",
        hostname: str = "localhost",
        start_timeout: float = 10.0,
    ) -> None:
        self.domain = domain
        self.hostname = hostname
        self.start_timeout = start_timeout
        self.port = 0
        self.ssl_port = 0
        self.version = ""
        self._workdir: Path | None = None
        self._proc: subprocess.Popen[bytes] | None = None
        self._users: dict[str, MailUser] = {}
        self._lock = threading.Lock()
        self._dovecot_bin = _find_binary("dovecot", "/usr/sbin/dovecot")
        self._lda_bin = _find_binary(
            "dovecot-lda", "/usr/lib/dovecot/dovecot-lda", "/usr/libexec/dovecot/dovecot-lda"
        )
        self._doveadm_bin = _find_binary("doveadm", "/usr/bin/doveadm")
        if os.geteuid() == 0:
            self._mail_uid, self._mail_gid = ROOT_MAIL_UID, ROOT_MAIL_GID
        else:
            self._mail_uid, self._mail_gid = os.getuid(), os.getgid()

    # -- lifecycle ---------------------------------------------------------------------

    @property
    def workdir(self) -> Path:
        """The temp directory holding everything of this instance (only while started)."""
        if self._workdir is None:
            raise RuntimeError("DovecotServer is not started")
        return self._workdir

    @property
    def config_path(self) -> Path:
        return self.workdir / "dovecot.conf"

    @property
    def log_path(self) -> Path:
        return self.workdir / "dovecot.log"

    @property
    def cafile(self) -> Path:
        """The self-signed certificate clients must trust to verify both TLS ports."""
        return self.workdir / "tls" / "cert.pem"

    def start(self) -> Self:
        """Write a private config, start Dovecot and wait until both ports greet."""
        if self._proc is not None:
            raise RuntimeError("DovecotServer already started")
        self.version = dovecot_version(self._dovecot_bin)
        if not self.version.startswith("2.3."):
            raise RuntimeError(f"config is written for Dovecot 2.3, found {self.version}")
        self._workdir = Path(tempfile.mkdtemp(prefix="crmsync-dovecot-"))
        atexit.register(self.stop)
        try:
            self._prepare_workdir()
            self.port, self.ssl_port = free_ports(2)
            self.config_path.write_text(self._render_config())
            self._proc = spawn(
                [self._dovecot_bin, "-F", "-c", str(self.config_path)],
                self.workdir / "dovecot.out",
            )
            self._wait_ready()
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        """Kill the whole Dovecot process group and delete the temp directory."""
        atexit.unregister(self.stop)
        if self._proc is not None:
            kill_group(self._proc)
            self._proc = None
        if self._workdir is not None:
            shutil.rmtree(self._workdir)
            self._workdir = None
        self._users.clear()

    def logs(self) -> str:
        """Dovecot's own log plus the master's stdout/stderr (config errors land there)."""
        return (read_log(self.workdir / "dovecot.out") + "\n" + read_log(self.log_path)).strip()

    def _prepare_workdir(self) -> None:
        workdir = self.workdir
        if not _SAFE_PATH_RE.fullmatch(str(workdir)):
            raise RuntimeError(f"temp dir {workdir} has characters Dovecot's config can't take")
        # Mail processes run as the mail uid and must traverse into their home dirs.
        workdir.chmod(0o711)
        for sub in ("run", "state", "users", "home"):
            (workdir / sub).mkdir()
        (workdir / "users").chmod(0o700)
        (workdir / "home").chmod(0o711)
        make_self_signed_cert(workdir / "tls", self.hostname)

    def _render_config(self) -> str:
        w = self.workdir
        uid, gid = self._mail_uid, self._mail_gid
        mailboxes = "".join(
            f"  mailbox {name} {{\n    special_use = {flag}\n    auto = subscribe\n  }}\n"
            for name, flag in SPECIAL_USE_FOLDERS.items()
        )
        if os.geteuid() == 0:
            # passwd files stay root-only; the auth process would otherwise run as the
            # "dovecot" user and need read access to them.
            privileges = "service auth {\n  user = root\n}\n"
        else:
            # Non-root Dovecot: every service runs as us and nothing can chroot.
            me = pwd.getpwuid(os.getuid()).pw_name
            my_group = grp.getgrgid(os.getgid()).gr_name
            privileges = (
                f"default_internal_user = {me}\n"
                f"default_internal_group = {my_group}\n"
                f"default_login_user = {me}\n"
                "service imap-login {\n  chroot =\n}\n"
                "service anvil {\n  chroot =\n}\n"
            )
        return f"""\
# Generated by crmsync_local.testservers.dovecot for Dovecot {self.version}.
# Private throw-away instance: everything lives in {w}.
protocols = imap
listen = {self.host}
base_dir = {w}/run
state_dir = {w}/state
instance_name = crmsync-{w.name}
log_path = {w}/dovecot.log
auth_verbose = yes

ssl = yes
ssl_cert = <{w}/tls/cert.pem
ssl_key = <{w}/tls/key.pem
ssl_min_protocol = TLSv1.2
# Tests log in over plain IMAP too.
disable_plaintext_auth = no
auth_mechanisms = plain login
# Failed logins are part of the tests: answer at once instead of after 2 s.
auth_failure_delay = 0
auth_username_format = %Lu

first_valid_uid = {uid}
last_valid_uid = {uid}
first_valid_gid = {gid}
last_valid_gid = {gid}
mail_location = maildir:~/Maildir
# No plugins: nothing may switch off CONDSTORE/QRESYNC from the default capabilities.
mail_plugins =
mail_fsync = never
{privileges}
# One passwd-file per user: Dovecot re-reads a passwd-file at most once per second,
# so a single shared file would hide users added within the same second.
passdb {{
  driver = passwd-file
  args = username_format=%u {w}/users/%u
}}
userdb {{
  driver = passwd-file
  args = username_format=%u {w}/users/%u
}}

namespace inbox {{
  inbox = yes
  separator = {FOLDER_SEPARATOR}
{mailboxes}}}

service imap-login {{
  inet_listener imap {{
    address = {self.host}
    port = {self.port}
  }}
  inet_listener imaps {{
    address = {self.host}
    port = {self.ssl_port}
    ssl = yes
  }}
}}

# No auth penalty: after a wrong-password test every later login from 127.0.0.1 would
# otherwise be delayed for seconds. (The auth process logs one connect error for it.)
service anvil {{
  unix_listener anvil-auth-penalty {{
    mode = 0
  }}
}}

protocol imap {{
  mail_max_userip_connections = 200
}}

protocol lda {{
  postmaster_address = postmaster@{self.domain}
}}
"""

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + self.start_timeout
        tls = client_ssl_context(self.cafile)
        pending = {self.port: False, self.ssl_port: True}
        last_error = "no attempt made"
        while pending:
            assert self._proc is not None
            if self._proc.poll() is not None:
                raise ServerStartError(
                    f"dovecot exited with {self._proc.returncode}:\n{self.logs()}"
                )
            if time.monotonic() >= deadline:
                raise ServerStartError(
                    f"dovecot did not greet on {sorted(pending)} within "
                    f"{self.start_timeout}s ({last_error}):\n{self.logs()}"
                )
            for port, implicit_tls in list(pending.items()):
                try:
                    _read_greeting(self.host, port, tls if implicit_tls else None)
                except (OSError, ValueError) as exc:
                    last_error = f"{type(exc).__name__}: {exc}"
                else:
                    del pending[port]
            if pending:
                time.sleep(0.02)

    # -- users -------------------------------------------------------------------------

    @property
    def users(self) -> list[MailUser]:
        with self._lock:
            return list(self._users.values())

    def add_user(
        self, username: str, password: str, *, scheme: PasswordScheme = "PLAIN"
    ) -> MailUser:
        """Create a mailbox user; usable for IMAP login right away.

        A username containing "@" is also the address; otherwise the address is
        username@domain. Usernames are lower-cased, as Dovecot does at login.
        """
        username = username.lower()
        if not _USERNAME_RE.fullmatch(username):
            raise ValueError(f"username {username!r} has characters Dovecot will not accept")
        email = username if "@" in username else f"{username}@{self.domain}"
        user = MailUser(username=username, password=password, email=email.lower())
        with self._lock:
            if username in self._users:
                raise ValueError(f"user {username!r} exists already")
            if any(u.email == user.email for u in self._users.values()):
                raise ValueError(f"address {user.email!r} is taken")
            home = self._home(username)
            home.mkdir()
            os.chown(home, self._mail_uid, self._mail_gid)
            home.chmod(0o700)
            self._write_passwd(username, self._hash(password, scheme), replacing=False)
            self._users[username] = user
        return user

    def set_password(
        self, username: str, new_password: str, *, scheme: PasswordScheme = "PLAIN"
    ) -> MailUser:
        """Change a password; returns once Dovecot is certain to see the new one.

        That can take up to a second: Dovecot re-checks a passwd-file at most once per
        second and compares only its mtime (seconds) and size.
        """
        username = username.lower()
        with self._lock:
            old = self._users[username]
            self._write_passwd(username, self._hash(new_password, scheme), replacing=True)
            user = MailUser(username=username, password=new_password, email=old.email)
            self._users[username] = user
        written = time.time()
        time.sleep(int(written) + 1.02 - written)
        return user

    def get_user(self, user: MailUser | str) -> MailUser:
        """Resolve a username (or a MailUser) to the current MailUser record."""
        name = user.username if isinstance(user, MailUser) else user.lower()
        with self._lock:
            return self._users[name]

    def check_password(self, username: str, password: str) -> bool:
        """Whether `username`/`password` would log in to IMAP (used for SMTP AUTH)."""
        with self._lock:
            user = self._users.get(username.lower())
        return user is not None and user.password == password

    def user_for_address(self, address: str) -> MailUser | None:
        """The local user that owns `address`, if any (case-insensitive)."""
        address = address.strip().strip("<>").lower()
        with self._lock:
            return next((u for u in self._users.values() if u.email == address), None)

    def is_local_domain(self, address: str) -> bool:
        """Whether `address` belongs to the domain this server is authoritative for."""
        return address.strip().strip("<>").lower().rpartition("@")[2] == self.domain.lower()

    def maildir_path(self, user: MailUser | str) -> Path:
        """The user's Maildir (INBOX); other folders are ".Name" subdirs (Maildir++)."""
        return self._home(self.get_user(user).username) / "Maildir"

    def _home(self, username: str) -> Path:
        return self.workdir / "home" / username

    def _hash(self, password: str, scheme: PasswordScheme) -> str:
        if scheme == "PLAIN":
            # Base64 so that ":" or newlines in a password cannot break the passwd line.
            return "{PLAIN.BASE64}" + base64.b64encode(password.encode()).decode()
        out = subprocess.run(
            [self._doveadm_bin, "-c", str(self.config_path), "pw", "-s", scheme, "-p", password],
            check=True,
            capture_output=True,
            text=True,
            timeout=10,
        ).stdout.strip()
        if not out.startswith("{" + scheme + "}"):
            raise RuntimeError(f"doveadm pw gave an unexpected hash: {out!r}")
        return out

    def _write_passwd(self, username: str, hashed: str, *, replacing: bool) -> None:
        path = self.workdir / "users" / username
        line = f"{username}:{hashed}:{self._mail_uid}:{self._mail_gid}::{self._home(username)}::\n"
        tmp = path.with_name(f".{username}.tmp")
        tmp.touch(mode=0o600)
        tmp.write_text(line)
        if replacing:
            # Guarantee a different mtime even when rewritten within the same second.
            mtime = max(int(time.time()), int(path.stat().st_mtime) + 1)
            os.utime(tmp, (mtime, mtime))
        os.replace(tmp, path)

    # -- IMAP helpers ------------------------------------------------------------------

    def connect(
        self, user: MailUser | str | None = None, *, mode: ImapMode = "plain"
    ) -> IMAPClient:
        """An IMAPClient on the plain, STARTTLS or implicit-TLS port; logged in if `user`.

        TLS modes verify the server certificate against `cafile`. The caller logs out.
        """
        context = client_ssl_context(self.cafile)
        if mode == "ssl":
            client = IMAPClient(
                self.host, port=self.ssl_port, ssl=True, ssl_context=context, timeout=10
            )
        else:
            client = IMAPClient(self.host, port=self.port, ssl=False, timeout=10)
            if mode == "starttls":
                client.starttls(context)
        if user is not None:
            account = self.get_user(user)
            client.login(account.username, account.password)
        return client

    def append(
        self,
        user: MailUser | str,
        folder: str,
        raw_message: bytes,
        flags: Iterable[str | bytes] = (),
        msg_time: dt.datetime | None = None,
    ) -> int:
        """APPEND a message over a real IMAP login; return its UID (from APPENDUID)."""
        client = self.connect(user)
        try:
            response = client.append(folder, raw_message, tuple(flags), msg_time)
        finally:
            client.logout()
        match = _APPENDUID_RE.search(response)
        if match is None:
            raise RuntimeError(f"APPEND gave no APPENDUID: {response!r}")
        return int(match.group(1))

    def create_folder(self, user: MailUser | str, name: str) -> None:
        """CREATE and SUBSCRIBE a folder over IMAP ("/" separates hierarchy levels)."""
        client = self.connect(user)
        try:
            client.create_folder(name)
            client.subscribe_folder(name)
        finally:
            client.logout()

    def deliver(
        self,
        user: MailUser | str,
        raw_message: bytes,
        *,
        mail_from: str = "",
        folder: str | None = None,
    ) -> None:
        """Deliver like an MTA would, through dovecot-lda (INBOX unless `folder`)."""
        account = self.get_user(user)
        argv = [self._lda_bin, "-c", str(self.config_path), "-d", account.username]
        argv += ["-f", mail_from or "MAILER-DAEMON"]
        if folder is not None:
            argv += ["-m", folder]
        result = subprocess.run(
            argv,
            input=raw_message,
            capture_output=True,
            timeout=30,
            env={"PATH": os.environ.get("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")},
        )
        if result.returncode != 0:
            raise DeliveryError(
                f"dovecot-lda exit {result.returncode} for {account.username}: "
                f"{result.stderr.decode(errors='replace').strip()}"
            )


def _read_greeting(host: str, port: int, tls: ssl.SSLContext | None) -> None:
    """Connect, optionally do the TLS handshake, and require an IMAP "* OK" greeting."""
    with socket.create_connection((host, port), timeout=1.0) as raw:
        if tls is not None:
            with tls.wrap_socket(raw, server_hostname=host) as wrapped:
                greeting = wrapped.recv(256)
        else:
            greeting = raw.recv(256)
    if not greeting.startswith(b"* OK"):
        raise ValueError(f"unexpected greeting {greeting[:60]!r}")
