"""What the bench's sections share: progress output, timing, AWS call counting, results.

Kept apart from `run.py` because `python -m tests.bench.run` runs that file as `__main__`:
a section module importing `tests.bench.run` would load a second copy of it, with its own
`BenchFailure` class that `__main__` would not catch.
"""

from __future__ import annotations

import os
import platform
import statistics
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import boto3


def say(message: str) -> None:
    sys.stdout.write(f"[bench] {message}\n")
    sys.stdout.flush()


class BenchFailure(RuntimeError):
    """The pipeline did not do its work: the run is void."""


# -- counting AWS calls -------------------------------------------------------------------
class CallCounter:
    """Counts AWS API calls by botocore's `before-call` event.

    Registered on boto3's default session before the handlers build their clients, so
    every client they create (clients copy the session's emitter) reports here. By default
    only calls from the watching thread count: the dispatcher runs in the thread that fires
    the schedule, while the queue pollers (and mail_sync) run in threads of their own.
    `watch(all_threads=True)` counts every thread (a whole pipeline run).
    """

    def __init__(self) -> None:
        self._thread: int | None = None
        self._all = False
        self._lock = threading.Lock()
        self.calls: Counter[str] = Counter()

    def __call__(self, event_name: str = "", **kwargs: Any) -> None:
        # Returning anything but None from before-call would short-circuit the request.
        if self._all or (self._thread is not None and threading.get_ident() == self._thread):
            _, service, operation = event_name.split(".", 2)
            with self._lock:
                self.calls[f"{service}.{operation}"] += 1

    @contextmanager
    def watch(self, *, all_threads: bool = False) -> Iterator[Counter[str]]:
        self.calls = Counter()
        self._thread = threading.get_ident()
        self._all = all_threads
        try:
            yield self.calls
        finally:
            self._thread = None
            self._all = False


def install_counter() -> CallCounter:
    if boto3.DEFAULT_SESSION is None:
        boto3.setup_default_session()
    session = boto3.DEFAULT_SESSION
    assert session is not None
    counter = CallCounter()
    session.events.register("before-call", counter, unique_id="crmsync-bench-counter")
    return counter


# -- results --------------------------------------------------------------------------------
@dataclass
class Row:
    section: str
    metric: str
    value: str
    note: str = ""


@dataclass
class Results:
    rows: list[Row] = field(default_factory=list)
    emulators: dict[str, str] = field(default_factory=dict)
    settings: dict[str, str] = field(default_factory=dict)
    floor_ms: float | None = None

    def add(self, section: str, metric: str, value: str, note: str = "") -> None:
        self.rows.append(Row(section, metric, value, note))
        say(f"  {metric}: {value}" + (f"  ({note})" if note else ""))

    def table(self) -> list[str]:
        return [
            "| Section | Measurement | Result | Notes |",
            "|---|---|---|---|",
            *(
                f"| {row.section} | {row.metric} | {row.value} | {row.note.replace('|', '/')} |"
                for row in self.rows
            ),
        ]


@contextmanager
def timer() -> Iterator[Callable[[], float]]:
    """`with timer() as elapsed:` ... `elapsed()` is the seconds spent inside the block."""
    started = time.perf_counter()
    ended: float | None = None

    def elapsed() -> float:
        return (ended if ended is not None else time.perf_counter()) - started

    try:
        yield elapsed
    finally:
        ended = time.perf_counter()


def percentile(samples: list[float], pct: int) -> float:
    return statistics.quantiles(samples, n=100, method="inclusive")[pct - 1]


# -- the machine ----------------------------------------------------------------------------
def _proc_field(path: str, key: str) -> str | None:
    try:
        for line in Path(path).read_text().splitlines():
            name, _, value = line.partition(":")
            if name.strip() == key:
                return value.strip()
    except OSError:
        return None
    return None


def machine() -> dict[str, str]:
    mem_kb = _proc_field("/proc/meminfo", "MemTotal")
    ram = f"{int(mem_kb.split()[0]) / 1024 / 1024:.1f} GiB" if mem_kb else "unknown"
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return {
        "Platform": platform.platform(),
        "CPU": _proc_field("/proc/cpuinfo", "model name") or platform.processor() or "unknown",
        "CPUs (nproc)": str(cpus),
        "RAM": ram,
        "Python": f"{platform.python_implementation()} {platform.python_version()}",
    }
