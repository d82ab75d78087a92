"""`make run`'s program: the stack and the demo come up, sync, answer, and stop cleanly."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests

from crmsync_local.testservers.net import free_port

pytestmark = pytest.mark.e2e


def _descendants(root: int) -> dict[int, str]:
    """Every live process below `root`, with its command line."""
    parents: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        parents[int(entry.name)] = int(stat.rsplit(")", 1)[1].split()[1])
    found: dict[int, str] = {}
    frontier = [root]
    while frontier:
        pid = frontier.pop()
        for child, parent in parents.items():
            if parent == pid and child not in found:
                try:
                    found[child] = (Path("/proc") / str(child) / "cmdline").read_text()
                except OSError:
                    continue
                frontier.append(child)
    return found


def _alive(pid: int, cmdline: str) -> bool:
    try:
        return (Path("/proc") / str(pid) / "cmdline").read_text() == cmdline
    except OSError:
        return False


def test_run_serves_health_syncs_the_demo_and_stops_everything(tmp_path: Path) -> None:
    port = free_port()
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "crmsync_local",
            "run",
            "--port",
            str(port),
            "--state-dir",
            str(tmp_path),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    output: list[str] = []
    children: dict[int, str] = {}
    try:
        assert proc.stdout is not None
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            line = proc.stdout.readline()
            if not line:
                break
            output.append(line)
            if "Ctrl-C stops everything" in line:
                break
        banner = "".join(output)
        assert "crmsync local stack is up" in banner, banner

        health = requests.get(f"http://127.0.0.1:{port}/health", timeout=10).json()
        assert set(health["runtime"]["emulators"]) == {"dynamodb_local", "moto"}
        assert re.fullmatch(r"\d+\.\d+\.\d+", health["runtime"]["emulators"]["dynamodb_local"])
        # The corpus drops replies that would lie in the future, so the count depends on
        # the hour the demo is seeded; the banner must say what the server then holds.
        seeded = re.search(r"mailbox +(\d+) messages", banner)
        assert seeded is not None, banner
        assert int(seeded.group(1)) > 250
        assert re.search(r"CRM +15 organizations, 33 persons, 21 deals", banner), banner

        token = re.search(r"export USER_TOKEN=(\S+)", banner)
        assert token is not None
        runs: list[dict[str, str]] = []
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and not runs:
            runs = requests.get(
                f"http://127.0.0.1:{port}/v1/mail-accounts/demo-account/sync-runs",
                headers={"Authorization": f"Bearer {token.group(1)}"},
                timeout=10,
            ).json()["items"]
            time.sleep(0.5)
        persons = requests.get(
            f"http://127.0.0.1:{port}/v1/persons?limit=100",
            headers={"Authorization": f"Bearer {token.group(1)}"},
            timeout=10,
        ).json()["items"]
        assert len(persons) == 33
        assert runs, "the demo account was never synced"
        assert runs[0]["outcome"] == "ok"
        # STATUS of INBOX and Sent, for real
        assert runs[0]["messages_on_server"] == int(seeded.group(1))

        threads: list[dict[str, object]] = []
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not any(t["links"] for t in threads):
            threads = requests.get(
                f"http://127.0.0.1:{port}/v1/threads?account_id=demo-account&limit=100",
                headers={"Authorization": f"Bearer {token.group(1)}"},
                timeout=10,
            ).json()["items"]
            time.sleep(0.5)
        assert threads, "the demo mail was never synced"
        linked = [t for t in threads if t["links"]]
        assert linked, "no demo thread was linked to a person or deal"
        assert {link["reason"] for t in linked for link in t["links"]} <= {  # type: ignore[attr-defined]
            "auto:person",
            "auto:deal",
        }
        children = _descendants(proc.pid)
        assert any("dovecot" in c for c in children.values())
        assert any("DynamoDBLocal.jar" in c for c in children.values())
    finally:
        proc.send_signal(signal.SIGINT)
        rest, _ = proc.communicate(timeout=60)
        output.append(rest)
    assert proc.returncode == 0, "".join(output)
    time.sleep(0.5)
    left = [cmd for pid, cmd in children.items() if _alive(pid, cmd)]
    assert left == []
    assert "invoke function=MailSyncFunction source=sqs:" in "".join(output)
