"""Calendar sync bench (SPEC C5, C6), a section of `make bench`: push, pull, idle, vdirsyncer.

A real Radicale (htpasswd, filesystem storage on tmpfs) and a stack of its own (DynamoDB Local and
moto, the template provisioned, queue pollers off): the calendar sync engine is called in
this thread exactly as the runtime wires it (`current_runtime().calendar_sync().run(job)`,
what `functions/calendar_sync/app.py` calls per SQS record), so one run is one measurement.

- **Push**: a one-way account; PUSH_ACTIVITIES activities of the selected type created after
  set-up through the directory service (which writes the push markers) -> one sync run.
- **Pull**: a two-way account on a second calendar; PULL_EVENTS events written into it with
  the `caldav` client after set-up, as another calendar app would -> the first sync run.
- **Idle**: IDLE_SYNCS more runs of each account with nothing changed.
- **vdirsyncer** (Debian package) syncs the pull calendar, the same PULL_EVENTS events, to a
  local folder of `.ics` files: first sync and an idle second sync.

HTTP requests are counted twice for crmsync (the run's own count, and Radicale's log, which
prints one line per request received) and from the log for the others. DynamoDB writes are
counted by a botocore hook on the calls made from this thread. Speed is reported, never
asserted; the bench fails when work is lost (an activity without its event, an event
without its activity).
"""

from __future__ import annotations

import os
import re
import shutil
import statistics
import subprocess
import tempfile
import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from importlib.metadata import version
from pathlib import Path
from typing import Any

import boto3
import caldav
from pydantic import SecretStr

from crmsync.config import Settings
from crmsync.models.activities import Activity, ActivityCreate, Participant
from crmsync.models.calendar import CalendarAccount, CalendarSyncJob
from crmsync.models.calendar_accounts import CalendarAccountPatch, CalendarConnect
from crmsync.models.calendar_sync import CalendarRun
from crmsync.models.identity import Principal
from crmsync.runtime import build_runtime, current_runtime
from crmsync_local.stack import LocalStack, StackOptions
from crmsync_local.testservers.net import free_port
from crmsync_local.testservers.radicale import CalUser, RadicaleServer
from tests.bench.common import BenchFailure, CallCounter, Results, say, timer
from tests.bench.mail_sync import start_emulators

PUSH_ACTIVITIES = 1000
PULL_EVENTS = 1000
IDLE_SYNCS = 5
CREATE_THREADS = 4  # the set-up's activities are created by this many threads (not measured)
ACTIVITY_TYPE = "meeting"
SPREAD_DAYS = 60  # activities and events start within the next 60 days (inside the window)
COMPANY = "bench-cal"
PUSH_USER = "bench-push"
PULL_USER = "bench-pull"
PUSH_CALENDAR = "crm"
PULL_CALENDAR = "other-app"
VDIRSYNCER_TIMEOUT = 600
DYNAMODB_WRITES = frozenset(
    {"PutItem", "UpdateItem", "DeleteItem", "BatchWriteItem", "TransactWriteItems"}
)
S_SETUP = "Calendar set-up"
S_PUSH = "Push (one-way)"
S_PULL = "Pull (two-way)"
S_IDLE = "Idle sync"
S_VDIR = "vdirsyncer"
# Radicale (log level info) prints one line per request it receives.
REQUEST_LINE = re.compile(r"\] ([A-Z]+) request for '[^']*'.* using '([^']*)'")
RESPONSE_LINE = re.compile(r"\] ([A-Z]+) response status for '[^']*'.* in ([0-9.]+) seconds")
TMPFS = Path("/dev/shm")


@dataclass
class CalendarReport:
    results: Results = field(default_factory=Results)
    facts: dict[str, str] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)


# -- counting -------------------------------------------------------------------------------
class WrittenItems:
    """DynamoDB items written from the watching thread (or from every thread): a
    TransactWriteItems or BatchWriteItem call counts each item it writes, where CallCounter
    counts the calls."""

    def __init__(self) -> None:
        self._thread: int | None = None
        self._all = False
        self._lock = threading.Lock()
        self.items = 0

    def __call__(self, event_name: str = "", params: Any = None, **_: Any) -> None:
        if not isinstance(params, dict):
            return
        if not self._all and (self._thread is None or self._thread != threading.get_ident()):
            return
        operation = event_name.rsplit(".", 1)[-1]
        if operation == "TransactWriteItems":
            items = sum(1 for op in params.get("TransactItems", []) if "ConditionCheck" not in op)
        elif operation == "BatchWriteItem":
            items = sum(len(ops) for ops in params.get("RequestItems", {}).values())
        else:
            items = 1 if operation in DYNAMODB_WRITES else 0
        with self._lock:
            self.items += items

    @contextmanager
    def watch(self, *, all_threads: bool = False) -> Iterator[None]:
        self.items = 0
        self._thread = threading.get_ident()
        self._all = all_threads
        try:
            yield
        finally:
            self._thread = None
            self._all = False


def install_item_counter() -> WrittenItems:
    """On boto3's default session, before the stack builds the runtime's clients (clients
    copy the session's event hooks when they are made)."""
    if boto3.DEFAULT_SESSION is None:
        boto3.setup_default_session()
    session = boto3.DEFAULT_SESSION
    assert session is not None
    items = WrittenItems()
    session.events.register(
        "before-parameter-build.dynamodb", items, unique_id="crmsync-bench-written-items"
    )
    return items


@dataclass
class Seen:
    """What Radicale's log shows for a block: requests by (user agent, method), and the
    seconds Radicale itself spent answering them (its "response status ... in N seconds")."""

    requests: Counter[tuple[str, str]] = field(default_factory=Counter)
    server_seconds: float = 0.0
    put_seconds: list[float] = field(default_factory=list)  # each PUT's, in order

    def methods(self, agent: str | None = None) -> Counter[str]:
        return Counter({m: n for (a, m), n in self.requests.items() if agent is None or a == agent})


class RadicaleLog:
    def __init__(self, path: Path) -> None:
        self.path = path

    @contextmanager
    def window(self) -> Iterator[Seen]:
        seen = Seen()
        start = self.path.stat().st_size
        try:
            yield seen
        finally:
            time.sleep(0.05)  # the response line is written after the reply is sent
            with self.path.open("rb") as log:
                log.seek(start)
                text = log.read().decode("utf-8", "replace")
            for line in text.splitlines():
                if match := REQUEST_LINE.search(line):
                    seen.requests[(match.group(2).split("/")[0], match.group(1))] += 1
                elif match := RESPONSE_LINE.search(line):
                    seconds = float(match.group(2))
                    seen.server_seconds += seconds
                    if match.group(1) == "PUT":
                        seen.put_seconds.append(seconds)


def _describe(counts: Counter[str]) -> str:
    return ", ".join(f"{name} {n}" for name, n in counts.most_common())


def _per_item(counts: Counter[str], items: int) -> str:
    """Counts per item; one made only a few times in all is shown as its count."""
    return ", ".join(
        f"{name} {n / items:.2f}" if n * 10 >= items else f"{name} ({n} in all)"
        for name, n in sorted(counts.items())
    )


def _is_write(call: str) -> bool:
    service, _, operation = call.partition(".")
    return service == "dynamodb" and operation in DYNAMODB_WRITES


@dataclass
class Measured:
    seconds: float
    seen: Seen  # Radicale's log
    calls: Counter[str]  # AWS calls
    written: int  # DynamoDB items written

    @property
    def requests(self) -> Counter[str]:
        return self.seen.methods()

    @property
    def write_calls(self) -> Counter[str]:
        return Counter({k: n for k, n in self.calls.items() if _is_write(k)})

    @property
    def other_calls(self) -> Counter[str]:
        return Counter({k: n for k, n in self.calls.items() if not _is_write(k)})


@dataclass
class Bench:
    stack: LocalStack
    radicale: RadicaleServer
    counter: CallCounter
    items: WrittenItems
    log: RadicaleLog
    report: CalendarReport

    @contextmanager
    def measure(self, *, all_threads: bool = False) -> Iterator[list[Measured]]:
        """`with bench.measure() as measured:` ... `measured[0]` after the block."""
        out: list[Measured] = []
        with (
            self.log.window() as seen,
            self.counter.watch(all_threads=all_threads) as calls,
            self.items.watch(all_threads=all_threads),
            timer() as elapsed,
        ):
            yield out
        out.append(Measured(elapsed(), seen, Counter(calls), self.items.items))


# -- set-up -----------------------------------------------------------------------------------
def start_radicale() -> tuple[RadicaleServer, str]:
    """Radicale with its storage on tmpfs where there is one: on this VM's disk a PUT into
    a 100-event calendar took Radicale 41 ms against 12 ms on tmpfs (its writes are
    fsynced), which would hide the sync's own cost."""
    if TMPFS.is_dir() and os.access(TMPFS, os.W_OK):
        saved = tempfile.tempdir
        tempfile.tempdir = str(TMPFS)
        try:
            return RadicaleServer().start(), f"tmpfs ({TMPFS})"
        finally:
            tempfile.tempdir = saved
    return RadicaleServer().start(), "the temp directory's disk"


def _connect(
    bench: Bench, owner: Principal, user: CalUser, calendar_url: str, **choices: Any
) -> CalendarAccount:
    """Through the calendar accounts service: a real login, the password sealed with KMS;
    then the PATCH's choices (the calendar, `choices`), which start the sync."""
    service = current_runtime().calendar_accounts_service()
    account = service.connect(
        owner,
        CalendarConnect(
            provider="caldav",
            url=bench.radicale.url,
            username=user.username,
            password=SecretStr(user.password),
        ),
    )
    chosen = [c for c in account.calendars if c.url.rstrip("/") == calendar_url.rstrip("/")]
    if len(chosen) != 1:
        raise BenchFailure(f"{calendar_url} not among the calendars found: {account.calendars}")
    patch = CalendarAccountPatch(calendar_id=chosen[0].id, **choices)
    return service.update(owner, account.id, patch)


def _when(i: int, now: datetime) -> datetime:
    day = now.replace(hour=8, minute=0, second=0, microsecond=0)
    return day + timedelta(days=1 + i % SPREAD_DAYS, minutes=30 * ((i // SPREAD_DAYS) % 18))


def _activity(i: int, now: datetime) -> ActivityCreate:
    return ActivityCreate(
        type=ACTIVITY_TYPE,
        subject=f"Bench meeting {i:04d} with Acme",
        start=_when(i, now),
        duration_minutes=(30, 45, 60)[i % 3],
        location=f"Room {i % 12}",
        note=f"Agenda item {i}: pricing, rollout, next steps.",
        participants=[Participant(email=f"contact-{i % 50:02d}@acme.example")],
        busy=i % 5 != 0,
    )


def create_activities(bench: Bench, owner: Principal) -> list[str]:
    """Through the directory service, whose change hook writes each activity's push marker
    (and queues a sync job, left unread). Set-up, not measured: CREATE_THREADS threads, each
    with a runtime of its own (boto3 resources are not shared across threads)."""
    say(
        f"creating {PUSH_ACTIVITIES} '{ACTIVITY_TYPE}' activities "
        f"(directory service, {CREATE_THREADS} threads) ..."
    )
    now = datetime.now(UTC)

    def create(indexes: range) -> list[str]:
        directory = build_runtime(Settings.from_env(os.environ)).directory()
        return [directory.create(owner, Activity, _activity(i, now)).id for i in indexes]

    slices = [range(t, PUSH_ACTIVITIES, CREATE_THREADS) for t in range(CREATE_THREADS)]
    with bench.measure(all_threads=True) as measured, ThreadPoolExecutor(CREATE_THREADS) as pool:
        ids = [activity_id for chunk in pool.map(create, slices) for activity_id in chunk]
    (m,) = measured
    bench.report.results.add(
        S_SETUP,
        f"{PUSH_ACTIVITIES:,} activities created (not part of the sync)",
        f"{m.seconds:.2f} s",
        f"{CREATE_THREADS} threads; per activity: DynamoDB items written "
        f"{m.written / PUSH_ACTIVITIES:.2f} (the record, its push marker), AWS calls "
        f"{_per_item(m.calls, PUSH_ACTIVITIES)}",
    )
    return ids


def _stamp(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y%m%dT%H%M%SZ")


def _other_app_event(i: int, now: datetime) -> str:
    start = _when(i, now) + timedelta(minutes=15)
    return (
        "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//Another calendar app//bench//EN\r\n"
        f"BEGIN:VEVENT\r\nUID:other-app-{i:04d}-{uuid.uuid4().hex[:8]}@other.example\r\n"
        f"DTSTAMP:{_stamp(now)}\r\nCREATED:{_stamp(now)}\r\nLAST-MODIFIED:{_stamp(now)}\r\n"
        f"DTSTART:{_stamp(start)}\r\nDTEND:{_stamp(start + timedelta(minutes=45))}\r\n"
        f"SUMMARY:Call with supplier {i:04d}\r\nLOCATION:Phone\r\n"
        f"DESCRIPTION:Written by another app (event {i}).\r\n"
        f"ATTENDEE;CN=Supplier {i % 40}:mailto:supplier-{i % 40:02d}@vendor.example\r\n"
        "END:VEVENT\r\nEND:VCALENDAR\r\n"
    )


def write_events(bench: Bench, user: CalUser, calendar_url: str, since: datetime) -> None:
    # LAST-MODIFIED has whole seconds: written in the second of the set-up, an event could
    # look older than the set-up and be taken for one that was there before it.
    while datetime.now(UTC).replace(microsecond=0) <= since:
        time.sleep(0.1)
    say(f"writing {PULL_EVENTS} events with the caldav client (another app) ...")
    now = datetime.now(UTC)
    radicale = bench.radicale
    with (
        bench.measure() as measured,
        caldav.DAVClient(radicale.url, username=user.username, password=user.password) as dav,
    ):
        calendar = dav.calendar(url=calendar_url)
        for i in range(PULL_EVENTS):
            calendar.save_event(_other_app_event(i, now))
    (m,) = measured
    bench.report.results.add(
        S_SETUP,
        f"{PULL_EVENTS:,} events written by the `caldav` client (not part of the sync)",
        f"{m.seconds:.2f} s",
        f"{PULL_EVENTS / m.seconds:.0f} events/s; requests {_describe(m.requests)}; "
        f"Radicale's own time {m.seen.server_seconds:.2f} s",
    )
    _put_growth(bench, S_SETUP, m.seen)


# -- the engine's runs ------------------------------------------------------------------------
def sync_once(bench: Bench, account: CalendarAccount) -> tuple[CalendarRun, Measured]:
    """One run, as functions/calendar_sync/app.py makes it for an SQS record."""
    job = CalendarSyncJob(
        job_id=f"{account.id}:bench:{uuid.uuid4().hex}",
        company_id=account.company_id,
        account_id=account.id,
        reason="manual",
        enqueued_at=datetime.now(UTC),
    )
    engine = current_runtime().calendar_sync()
    with bench.measure() as measured:
        run = engine.run(job)
    if run.outcome != "ok":
        raise BenchFailure(f"sync of {account.id} ({account.sync_type}): {run}")
    return run, measured[0]


def _engine_rows(
    bench: Bench, section: str, item: str, items: str, run: CalendarRun, m: Measured, n: int
) -> None:
    results = bench.report.results
    results.add(
        section,
        f"One sync run, {n:,} {items}: wall time",
        f"{m.seconds:.2f} s",
        f"{n / m.seconds:.0f} {items}/s; Radicale's own time {m.seen.server_seconds:.2f} s "
        "(from its log)",
    )
    results.add(
        section,
        f"CalDAV requests per {item}",
        f"{run.requests / n:.3f}",
        f"{run.requests} in the run (its own count); Radicale logged {sum(m.requests.values())}: "
        f"{_describe(m.requests)}",
    )
    results.add(
        section,
        f"DynamoDB writes per {item}",
        f"{m.written / n:.2f} items",
        f"{m.written} items in {sum(m.write_calls.values())} write calls; calls per {item}: "
        f"{_per_item(m.write_calls, n)}",
    )
    results.add(
        section,
        f"Other AWS calls per {item}",
        _per_item(m.other_calls, n) or "none",
        "reads, KMS Decrypt of the password, EventBridge `activity.synced` events",
    )


def push(bench: Bench, account: CalendarAccount, ids: list[str]) -> None:
    say(f"push: one sync run of the one-way account ({len(ids)} new activities) ...")
    run, m = sync_once(bench, account)
    stored = _events_in(bench.radicale, account.username, PUSH_CALENDAR)
    if run.pushed != len(ids) or stored != len(ids):
        raise BenchFailure(
            f"push: {len(ids)} activities, run pushed {run.pushed}, Radicale holds {stored}"
        )
    _engine_rows(bench, S_PUSH, "activity", "activities", run, m, len(ids))
    _put_growth(bench, S_PUSH, m.seen)


def _put_growth(bench: Bench, section: str, seen: Seen) -> None:
    """Radicale's own time per PUT, at the start and at the end of a series of writes."""
    puts = seen.put_seconds
    tenth = len(puts) // 10
    if tenth < 1:
        return
    first = statistics.mean(puts[:tenth]) * 1000
    last = statistics.mean(puts[-tenth:]) * 1000
    bench.report.results.add(
        section,
        f"Radicale's own time per PUT, first / last {tenth} PUTs",
        f"{first:.0f} / {last:.0f} ms",
        "from its log: it grows with the events already in the calendar, and is part of "
        "the wall time above",
    )


def pull(bench: Bench, account: CalendarAccount, owner: Principal) -> None:
    say(f"pull: the first sync run of the two-way account ({PULL_EVENTS} new events) ...")
    run, m = sync_once(bench, account)
    made = _activities_of(owner)
    if run.pulled_created != PULL_EVENTS or made != PULL_EVENTS:
        raise BenchFailure(
            f"pull: {PULL_EVENTS} events, run created {run.pulled_created} activities, "
            f"the directory holds {made}"
        )
    _engine_rows(bench, S_PULL, "event", "events", run, m, PULL_EVENTS)


def idle(bench: Bench, account: CalendarAccount, label: str) -> None:
    say(f"idle: {IDLE_SYNCS} sync runs of the {label} account, nothing changed ...")
    runs = [sync_once(bench, account) for _ in range(IDLE_SYNCS)]
    changed = [r.pulled_created + r.pulled_updated + r.pulled_deleted + r.pushed for r, _ in runs]
    if any(changed):
        raise BenchFailure(f"idle runs of the {label} account changed something: {changed}")
    requests = [run.requests for run, _ in runs]
    writes = [m.written for _, m in runs]
    wall = [m.seconds * 1000 for _, m in runs]
    methods: Counter[str] = Counter()
    calls: Counter[str] = Counter()
    for _, m in runs:
        methods.update(m.requests)
        calls.update(m.calls)
    results = bench.report.results
    results.add(
        S_IDLE,
        f"{label}: CalDAV requests per run, median (each run)",
        f"{statistics.median(requests):g} ({', '.join(map(str, requests))})",
        f"Radicale logged {_describe(methods)} over the {IDLE_SYNCS} runs",
    )
    results.add(
        S_IDLE,
        f"{label}: DynamoDB items written per run, median (each run)",
        f"{statistics.median(writes):g} ({', '.join(map(str, writes))})",
        f"AWS calls over the {IDLE_SYNCS} runs: {_describe(calls)}",
    )
    results.add(
        S_IDLE,
        f"{label}: wall time per run, median (max)",
        f"{statistics.median(wall):.0f} ms ({max(wall):.0f} ms)",
        "KMS Decrypt of the password, DynamoDB Local reads, the REPORT",
    )


def _events_in(radicale: RadicaleServer, username: str, calendar: str) -> int:
    folder = radicale.storage_path / "collection-root" / username / calendar
    return sum(1 for _ in folder.glob("*.ics"))


def _activities_of(owner: Principal) -> int:
    directory = current_runtime().directory()
    now = datetime.now(UTC)
    since, until = now - timedelta(days=1), now + timedelta(days=SPREAD_DAYS + 30)
    count, cursor = 0, None
    while True:
        page = directory.activities(owner, owner.user_id, since, until, 100, cursor)
        count += len(page.items)
        cursor = page.next_cursor
        if cursor is None:
            return count


# -- vdirsyncer -----------------------------------------------------------------------------
def _vdirsyncer_config(workdir: Path, calendar_url: str, user: CalUser) -> Path:
    config = workdir / "config"
    config.write_text(
        f"""[general]
status_path = "{workdir / "status"}/"

[pair bench]
a = "bench_radicale"
b = "bench_folder"
collections = null
conflict_resolution = "a wins"

[storage bench_radicale]
type = "caldav"
url = "{calendar_url}"
username = "{user.username}"
password = "{user.password}"
read_only = true

[storage bench_folder]
type = "filesystem"
path = "{workdir / "calendar"}/"
fileext = ".ics"
"""
    )
    (workdir / "calendar").mkdir()
    return config


def _vdirsyncer(binary: str, config: Path, workdir: Path, *args: str) -> None:
    # Debian's vdirsyncer runs on the system Python: none of this process's environment.
    env = {"PATH": "/usr/local/bin:/usr/bin:/bin", "HOME": str(workdir), "LANG": "C.UTF-8"}
    done = subprocess.run(
        [binary, "-c", str(config), *args],
        capture_output=True,
        text=True,
        env=env,
        cwd=workdir,
        timeout=VDIRSYNCER_TIMEOUT,
        check=False,
    )
    if done.returncode != 0:
        raise BenchFailure(
            f"vdirsyncer {' '.join(args)} exited {done.returncode}: {done.stderr[-800:]}"
        )


def vdirsyncer(bench: Bench, user: CalUser, calendar_url: str, workdir: Path) -> None:
    results = bench.report.results
    binary = shutil.which("vdirsyncer")
    if binary is None:
        results.add(
            S_VDIR,
            f"vdirsyncer sync of the same {PULL_EVENTS:,} events",
            "not measured",
            "`vdirsyncer` is not installed (Debian package `vdirsyncer`; `make bench` installs it)",
        )
        bench.report.facts["vdirsyncer"] = "not installed: not measured"
        return
    found = subprocess.run([binary, "--version"], capture_output=True, text=True, check=False)
    bench.report.facts["vdirsyncer"] = (
        f"{found.stdout.strip().rsplit(' ', 1)[-1]} (Debian package, system Python)"
    )
    workdir.mkdir(parents=True)
    config = _vdirsyncer_config(workdir, calendar_url, user)
    say("vdirsyncer discover (collections = null: the calendar's URL itself) ...")
    with bench.log.window() as discovered, timer() as discover_time:
        _vdirsyncer(binary, config, workdir, "discover", "bench")
    say(f"vdirsyncer sync, first ({PULL_EVENTS} events to a folder) ...")
    with bench.log.window() as first, timer() as first_time:
        _vdirsyncer(binary, config, workdir, "sync")
    files = sum(1 for _ in (workdir / "calendar").glob("*.ics"))
    if files != PULL_EVENTS:
        raise BenchFailure(f"vdirsyncer wrote {files} files for {PULL_EVENTS} events")
    say("vdirsyncer sync, idle ...")
    with bench.log.window() as second, timer() as second_time:
        _vdirsyncer(binary, config, workdir, "sync")
    agent = "vdirsyncer"
    first_requests = first.methods(agent)
    results.add(
        S_VDIR,
        f"First sync, {PULL_EVENTS:,} events to a folder: wall time",
        f"{first_time():.2f} s",
        f"{PULL_EVENTS / first_time():.0f} events/s; the process's start included; "
        f"Radicale's own time {first.server_seconds:.2f} s",
    )
    results.add(
        S_VDIR,
        "First sync: requests per event",
        f"{sum(first_requests.values()) / PULL_EVENTS:.3f}",
        f"{sum(first_requests.values())} in all (Radicale's log): {_describe(first_requests)}",
    )
    idle_requests = second.methods(agent)
    results.add(
        S_VDIR,
        "Idle second sync: wall time / requests",
        f"{second_time():.2f} s / {sum(idle_requests.values())}",
        f"{_describe(idle_requests)}; the process's start included",
    )
    discover_requests = discovered.methods(agent)
    results.add(
        S_VDIR,
        "`vdirsyncer discover` (once, before the first sync): wall time / requests",
        f"{discover_time():.2f} s / {sum(discover_requests.values())}",
        _describe(discover_requests) or "no request",
    )


# -- the section --------------------------------------------------------------------------------
def run(counter: CallCounter, state_dir: Path) -> CalendarReport:
    report = CalendarReport()
    say("-- calendar sync (SPEC C5, C6): Radicale, emulators and a stack of its own --")
    items = install_item_counter()
    load_before = os.getloadavg()[0]
    with timer() as elapsed:
        radicale, storage = start_radicale()
        try:
            emulators, moto_patched = start_emulators()
            try:
                stack = LocalStack(
                    StackOptions(
                        api_port=free_port(),
                        stage="benchcal",
                        state_dir=state_dir,
                        run_schedules=False,
                        run_pollers=False,
                        parameters={"LogLevel": "WARNING"},
                    ),
                    emulators=emulators,
                ).start()
                try:
                    log = RadicaleLog(radicale.log_path)
                    measure(Bench(stack, radicale, counter, items, log, report), state_dir)
                finally:
                    stack.stop()
            finally:
                emulators.stop()
        finally:
            radicale.stop()
    report.facts = {
        "Radicale": f"{version('radicale')} (storage on {storage}, htpasswd, log level info)",
        "caldav client": version("caldav"),
        **report.facts,
        "Emulators": ", ".join(f"{k} {v}" for k, v in stack.runtime_info["emulators"].items())
        + ("; moto's SQS patched as in the mail sync section" if moto_patched else "; moto stock"),
        "Load average (1 min) at the section's start / end": (
            f"{load_before:.2f} / {os.getloadavg()[0]:.2f}"
        ),
        "Section wall time": f"{elapsed():.0f} s (Radicale's and the stack's start included)",
    }
    return report


def measure(bench: Bench, state_dir: Path) -> None:
    radicale = bench.radicale
    user = radicale.add_user("bench-cal", uuid.uuid4().hex)
    with caldav.DAVClient(radicale.url, username=user.username, password=user.password) as dav:
        principal = dav.principal()
        push_url = str(principal.make_calendar(name="CRM", cal_id=PUSH_CALENDAR).url)
        pull_url = str(principal.make_calendar(name="Other app", cal_id=PULL_CALENDAR).url)
    pusher = Principal(user_id=PUSH_USER, company_id=COMPANY, role="user")
    puller = Principal(user_id=PULL_USER, company_id=COMPANY, role="user")
    say("connecting the one-way and the two-way calendar accounts ...")
    with timer() as connect_time:
        one_way = _connect(
            bench, pusher, user, push_url, sync_type="one_way", activity_types=[ACTIVITY_TYPE]
        )
        two_way = _connect(
            bench,
            puller,
            user,
            pull_url,
            sync_type="two_way",
            activity_types=[ACTIVITY_TYPE],
            default_activity_type=ACTIVITY_TYPE,
        )
    bench.report.results.add(
        S_SETUP,
        "Two calendar accounts connected and set up",
        f"{connect_time():.2f} s",
        "a real login and calendar listing each, the password sealed with the local KMS key",
    )
    ids = create_activities(bench, pusher)
    push(bench, one_way, ids)
    assert two_way.sync_since is not None
    write_events(bench, user, pull_url, two_way.sync_since)
    pull(bench, two_way, puller)
    idle(bench, one_way, "one-way")
    idle(bench, two_way, "two-way")
    vdirsyncer(bench, user, pull_url, state_dir / "vdirsyncer")


def markdown(report: CalendarReport, command: str, machine: dict[str, str]) -> list[str]:
    host = ", ".join(f"{key} {value}" for key, value in machine.items())
    return [
        "## Calendar sync (SPEC C5, C6)",
        "",
        f"- Command: `{command}` (this section: `tests/bench/calendar_sync.py`; alone,",
        "  updating only this section: `.venv/bin/python -m tests.bench.run --only calendar`)",
        f"- Machine: {host}",
        *(f"- {key}: {value}" for key, value in report.facts.items()),
        "",
        *report.results.table(),
        "",
        "### How calendar sync is measured",
        "",
        "A real Radicale server (a subprocess on loopback, htpasswd login, its filesystem",
        "storage on tmpfs where the machine has `/dev/shm`: on this VM's disk a PUT into a",
        "100-event calendar took Radicale 41 ms against 12 ms on tmpfs, which would hide",
        "the sync's own cost) and a stack of the section's own: DynamoDB Local and moto",
        "server (its SQS patched as in the mail sync section) with `template.yaml`",
        "provisioned, queue pollers off. The calendar sync engine runs in the bench's thread",
        "exactly as the runtime wires it, `current_runtime().calendar_sync().run(job)`, which",
        "is what `functions/calendar_sync/app.py` calls for each SQS record; so one run is",
        "one measurement, without queue latency. Both accounts are connected through the",
        "calendar accounts service (a real login, the password sealed with the local KMS",
        "key) and set up with PATCH's fields (calendar, sync type, activity types), which",
        "starts their sync at that moment.",
        "",
        f"1. **Push**: {PUSH_ACTIVITIES:,} `{ACTIVITY_TYPE}` activities (a location, a note,",
        f"   one participant, spread over the next {SPREAD_DAYS} days) are created after",
        "   set-up through the directory service, whose change hook writes a push marker",
        "   per activity and queues a sync job (left unread); this set-up runs in",
        f"   {CREATE_THREADS} threads and is not part of the figures. Then one sync run of the",
        "   one-way account; the bench fails unless it pushed every activity and Radicale's",
        "   storage holds exactly that many events.",
        f"2. **Pull**: {PULL_EVENTS:,} events are written into a second calendar with the",
        "   `caldav` client, one PUT each, after the two-way account was set up",
        "   (LAST-MODIFIED later than its set-up). Then that account's first sync run; the",
        "   bench fails unless it created one activity per event (counted in the directory).",
        f"3. **Idle**: {IDLE_SYNCS} more runs of each account right after, with nothing",
        "   changed, listed in order. The one-way account's first run after the push still",
        "   sees the push's own writes (the sync token it keeps is from before the push):",
        "   the per-run figures show what that costs; the runs after it are the steady",
        "   state.",
        "4. **vdirsyncer** (Debian package, run as a subprocess): a `caldav` storage on the",
        "   pull calendar's URL (read-only) paired with a `filesystem` storage (`.ics`",
        "   files) with `collections = null`; `vdirsyncer discover` once (it refuses to sync",
        "   before), then `vdirsyncer sync` twice, the second with nothing changed. Wall",
        "   times include the process's start-up. It writes files where crmsync writes the",
        "   CRM's activities and DynamoDB items: the comparison is of the protocol cost, not",
        "   of equal work.",
        "",
        "**Counting.** CalDAV requests: the run's own count (`CalendarRun.requests`, every",
        "HTTP request its transport sent) beside the requests Radicale logged during the run",
        "(its info log prints one line per request received, with method and user agent);",
        "vdirsyncer's from that log only. Radicale's own time is the sum of the durations",
        "its log gives for each answer. DynamoDB writes: a botocore hook on boto3's default",
        "session counting the items in every PutItem, UpdateItem, DeleteItem, BatchWriteItem",
        "and TransactWriteItems call made from the bench's thread (a transaction counts each",
        "item it writes), beside the write calls themselves (the bench's `CallCounter`).",
        "Wall time is `perf_counter` around `run(job)`: KMS Decrypt, DynamoDB Local and",
        "Radicale all share this machine's CPUs.",
        "",
        "Speed is reported, never asserted. These are local numbers: on AWS the CalDAV",
        "server is across the internet, so a push or pull costs about its request count",
        "times the server's round trip, and DynamoDB's latency differs from DynamoDB Local's.",
        *report.notes,
        "",
    ]
