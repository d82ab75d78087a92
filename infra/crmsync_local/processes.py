"""Subprocess plumbing shared by the servers that run as external programs."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Self


class ServerStartError(RuntimeError):
    """A test server did not come up; the message carries its log."""


def spawn(
    argv: Sequence[str],
    log_path: Path,
    env: Mapping[str, str] | None = None,
    cwd: Path | None = None,
) -> subprocess.Popen[bytes]:
    """Start `argv` as the leader of a new process group, output appended to `log_path`.

    A group of its own lets `kill_group` take down every child the program forks
    (Dovecot's login/imap/auth processes) without touching anything else.
    """
    with log_path.open("ab") as log:
        return subprocess.Popen(
            list(argv),
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            env=dict(env) if env is not None else None,
            cwd=cwd,
            start_new_session=True,
        )


def kill_group(proc: subprocess.Popen[bytes], timeout: float = 5.0) -> None:
    """Terminate the process group led by `proc`; SIGKILL whatever survives `timeout` s."""
    _signal_group(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        _signal_group(proc.pid, signal.SIGKILL)
        proc.wait(timeout)
    # Children may outlive their leader for a moment; they still carry its pgid, and a
    # pgid is never reused while members exist, so signalling it cannot hit a stranger.
    deadline = time.monotonic() + timeout
    while _group_alive(proc.pid):
        if time.monotonic() >= deadline:
            _signal_group(proc.pid, signal.SIGKILL)
            break
        time.sleep(0.01)


def _group_alive(pgid: int) -> bool:
    """Whether any non-zombie process is still in the group.

    Zombies are ignored: in containers whose init does not reap orphans they would
    otherwise keep the group "alive" forever although they hold no ports or files.
    """
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            text = stat.read_text()
        except OSError:  # the process exited while we were looking
            continue
        # Fields after the parenthesised command name: state ppid pgrp ...
        fields = text[text.rfind(")") + 2 :].split()
        if len(fields) > 2 and fields[0] != "Z" and int(fields[2]) == pgid:
            return True
    return False


def _signal_group(pgid: int, sig: signal.Signals) -> None:
    # ProcessLookupError: the group is already empty, which is the goal.
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pgid, sig)


def read_log(path: Path, limit: int = 20_000) -> str:
    """The tail of a server log, for error messages when a server fails to start."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return "(no log written)"
    return data[-limit:].decode("utf-8", "replace")


class Lifecycle:
    """`with server:` for anything that has start() and stop()."""

    def start(self) -> Self:
        raise NotImplementedError

    def stop(self) -> None:
        raise NotImplementedError

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
