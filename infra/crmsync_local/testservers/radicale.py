"""A real Radicale CalDAV server in a subprocess, private to one test session."""

from __future__ import annotations

import atexit
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Self

import requests

from crmsync_local.processes import Lifecycle, ServerStartError, kill_group, read_log, spawn
from crmsync_local.testservers.net import LOOPBACK, free_port


@dataclass(frozen=True)
class CalUser:
    """A Radicale account; `principal_url` is its home collection (/<username>/)."""

    username: str
    password: str
    principal_url: str


class RadicaleServer(Lifecycle):
    """Runs `python -m radicale` with htpasswd (plain) auth and owner-only rights.

    The rights come from a file (`[rights] type = from_file`) equivalent to owner_only,
    except for calendars made read-only with `make_read_only` (read, no write).
    """

    host = LOOPBACK

    def __init__(self, *, start_timeout: float = 10.0) -> None:
        self.start_timeout = start_timeout
        self.port = 0
        self._workdir: Path | None = None
        self._proc: subprocess.Popen[bytes] | None = None
        self._users: dict[str, CalUser] = {}
        self._read_only: set[tuple[str, str]] = set()
        self._lock = threading.Lock()

    @property
    def url(self) -> str:
        """Base URL, e.g. http://127.0.0.1:5232/ (what caldav.DAVClient takes)."""
        if not self.port:
            raise RuntimeError("RadicaleServer is not started")
        return f"http://{self.host}:{self.port}/"

    @property
    def workdir(self) -> Path:
        if self._workdir is None:
            raise RuntimeError("RadicaleServer is not started")
        return self._workdir

    @property
    def htpasswd_path(self) -> Path:
        return self.workdir / "users"

    @property
    def storage_path(self) -> Path:
        """Radicale's filesystem storage (collection-root/<user>/<calendar>/...)."""
        return self.workdir / "collections"

    @property
    def log_path(self) -> Path:
        return self.workdir / "radicale.log"

    @property
    def rights_path(self) -> Path:
        return self.workdir / "rights"

    def start(self) -> Self:
        """Write the config, start Radicale and wait until it answers HTTP."""
        if self._proc is not None:
            raise RuntimeError("RadicaleServer already started")
        self._workdir = Path(tempfile.mkdtemp(prefix="crmsync-radicale-"))
        atexit.register(self.stop)
        try:
            self.port = free_port()
            self.storage_path.mkdir()
            self.htpasswd_path.write_text("")
            self.rights_path.write_text(self._render_rights())
            (self.workdir / "config").write_text(self._render_config())
            self._spawn()
        except BaseException:
            self.stop()
            raise
        return self

    def _spawn(self) -> None:
        env = {k: v for k, v in os.environ.items() if k != "RADICALE_CONFIG"}
        self._proc = spawn(
            [sys.executable, "-m", "radicale", "--config", str(self.workdir / "config")],
            self.log_path,
            env=env,
            cwd=self.workdir,
        )
        self._wait_ready()

    def stop(self) -> None:
        """Kill Radicale and delete its temp directory (calendars included)."""
        atexit.unregister(self.stop)
        if self._proc is not None:
            kill_group(self._proc)
            self._proc = None
        if self._workdir is not None:
            shutil.rmtree(self._workdir)
            self._workdir = None
        self.port = 0
        self._users.clear()
        self._read_only.clear()

    def logs(self) -> str:
        return read_log(self.log_path)

    def _render_config(self) -> str:
        # delay = 0: Radicale otherwise sleeps after each failed login, slowing
        # wrong-password tests. htpasswd_cache off: the file is re-read per request, so
        # add_user takes effect at once. No web UI: nothing needs it.
        return f"""\
[server]
hosts = {self.host}:{self.port}

[auth]
type = htpasswd
htpasswd_filename = {self.htpasswd_path}
htpasswd_encryption = plain
htpasswd_cache = False
delay = 0

[rights]
type = from_file
file = {self.rights_path}

[storage]
filesystem_folder = {self.storage_path}

[web]
type = none

[logging]
level = info
mask_passwords = True
"""

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + self.start_timeout
        last_error = "no attempt made"
        while True:
            assert self._proc is not None
            if self._proc.poll() is not None:
                raise ServerStartError(
                    f"radicale exited with {self._proc.returncode}:\n{self.logs()}"
                )
            try:
                # Any HTTP answer (401 without credentials) means the server is serving.
                requests.request("OPTIONS", self.url, timeout=1)
            except requests.RequestException as exc:
                last_error = f"{type(exc).__name__}: {exc}"
            else:
                return
            if time.monotonic() >= deadline:
                raise ServerStartError(
                    f"radicale did not answer on {self.url} within {self.start_timeout}s "
                    f"({last_error}):\n{self.logs()}"
                )
            time.sleep(0.05)

    # -- rights ------------------------------------------------------------------------

    def make_read_only(self, username: str, calendar_path: str) -> None:
        """Leave `username` only read access to one of their calendars (`calendar_path`
        like "/alice/work/" or "alice/work"): PUT and DELETE in it get 403, and its
        current-user-privilege-set lists no write. Radicale reads the rights file only at
        start-up, so this restarts it (same port, same storage; about half a second)."""
        self._set_read_only(username, calendar_path, read_only=True)

    def make_writable(self, username: str, calendar_path: str) -> None:
        """Undo `make_read_only` (restarts Radicale as well)."""
        self._set_read_only(username, calendar_path, read_only=False)

    def _set_read_only(self, username: str, calendar_path: str, *, read_only: bool) -> None:
        path = calendar_path.strip("/")
        if path.count("/") != 1 or path.split("/")[0] != username:
            raise ValueError(f"{calendar_path!r} is not a calendar of {username!r}")
        with self._lock:
            if read_only:
                self._read_only.add((username, path))
            else:
                self._read_only.discard((username, path))
            tmp = self.rights_path.with_name("rights.tmp")
            tmp.write_text(self._render_rights())
            os.replace(tmp, self.rights_path)
            self._restart()

    def _restart(self) -> None:
        if self._proc is None:
            raise RuntimeError("RadicaleServer is not started")
        kill_group(self._proc)
        self._proc = None
        self._spawn()

    def _render_rights(self) -> str:
        """owner_only as rules (the first matching section wins), read-only calendars first.

        Radicale formats `{user}` into the patterns, so literal braces are doubled."""

        def literal(text: str) -> str:
            return re.escape(text).replace("{", "{{").replace("}", "}}")

        read_only = "".join(
            f"[read-only-{n}]\nuser: {literal(user)}\ncollection: {literal(path)}\n"
            "permissions: r\n\n"
            for n, (user, path) in enumerate(sorted(self._read_only))
        )
        return read_only + (
            "[root]\nuser: .+\ncollection:\npermissions: R\n\n"
            "[principal]\nuser: .+\ncollection: {user}\npermissions: RW\n\n"
            "[calendars]\nuser: .+\ncollection: {user}/[^/]+\npermissions: rw\n"
        )

    # -- users -------------------------------------------------------------------------

    def add_user(self, username: str, password: str) -> CalUser:
        """Add an htpasswd entry; Radicale re-reads the file, so it works immediately."""
        if not username or any(c in username for c in ":/\n\r") or username.startswith("."):
            raise ValueError(f"username {username!r} is not usable with htpasswd/Radicale")
        if any(c in password for c in "\n\r"):
            raise ValueError("password must be a single line")
        user = CalUser(username, password, f"{self.url}{username}/")
        with self._lock:
            if username in self._users:
                raise ValueError(f"user {username!r} exists already")
            self._users[username] = user
            self._write_htpasswd()
        return user

    def set_password(self, username: str, new_password: str) -> CalUser:
        """Change a password (effective with the next request)."""
        with self._lock:
            old = self._users[username]
            user = CalUser(username, new_password, old.principal_url)
            self._users[username] = user
            self._write_htpasswd()
        return user

    @property
    def users(self) -> list[CalUser]:
        with self._lock:
            return list(self._users.values())

    def _write_htpasswd(self) -> None:
        # Replace atomically so a concurrent request never reads a half-written file.
        tmp = self.htpasswd_path.with_name("users.tmp")
        tmp.write_text("".join(f"{u.username}:{u.password}\n" for u in self._users.values()))
        os.replace(tmp, self.htpasswd_path)
