"""Benchmark of the local stack: `make bench` (`python -m tests.bench.run`).

Not a pytest test: it measures speed and never asserts it. It does fail loudly when the
pipeline loses work (fewer sync runs than accounts), because then the numbers mean nothing.
The results are written to docs/benchmarks.md (overwritten on every full run).

Sections: "stack" (stack start, dispatch of 200 accounts, idle ticks, HTTP latency) and
"mail-sync" (tests/bench/mail_sync.py: a 10,000-message mailbox synced by crmsync and by
mbsync, idle polls, processor cost) and "tracking" (tests/bench/tracking.py: the tracking
function's cold start and warm latency, seconds) and "calendar" (tests/bench/calendar_sync.py:
push of 1,000 activities and pull of 1,000 events against Radicale, idle syncs, and vdirsyncer
on the same calendar). `--only SECTION` runs one of them (no doc written, except that a run with
"tracking" or "calendar" replaces that section of the doc in place).

What runs is the local stack (handlers in this process, DynamoDB Local, moto server), so
the numbers describe that stack on this machine, not AWS.
"""

from __future__ import annotations

import argparse
import logging
import os
import statistics
import sys
import tempfile
import time
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import boto3
import requests
from boto3.dynamodb.conditions import Attr
from pydantic import SecretStr

from crmsync.models.accounts import MailAccount
from crmsync.models.identity import Principal
from crmsync.models.servers import ServerEndpoint
from crmsync.runtime import current_runtime
from crmsync.services.accounts import ConnectAccount
from crmsync_local.stack import REPO_ROOT, Emulators, LocalStack, StackOptions
from crmsync_local.testservers.dovecot import DovecotServer
from crmsync_local.testservers.net import free_port
from crmsync_local.testservers.smtp import SmtpServer
from crmsync_local.testservers.tls import write_ca_bundle
from tests.bench import calendar_sync as calendar_bench
from tests.bench import mail_sync, tracking
from tests.bench.common import (
    BenchFailure,
    CallCounter,
    Results,
    install_counter,
    machine,
    percentile,
    say,
    timer,
)

SCHEDULE = "PollDispatcherFunction.Every"
COMMAND = "make bench"
DOC_PATH = REPO_ROOT / "docs" / "benchmarks.md"
ACCOUNTS = 200
COMPANIES = 50
IDLE_REPEATS = 10  # idle ticks after the first one, for a median
HTTP_REQUESTS = 300
HTTP_WARMUP = 5  # requests per route sent (and not counted) before measuring
HTTP_FLOOR_REQUESTS = 50
NAGLE_SUSPECT_MS = 20.0  # a route-less 404 slower than this on loopback is not the handler
DRAIN_TIMEOUT = 300.0
SQS_SENDS = ("sqs.SendMessage", "sqs.SendMessageBatch")
SECTIONS = ("stack", "mail-sync", "tracking", "calendar")

log = logging.getLogger("bench")


# -- the measurements ---------------------------------------------------------------------
def start_stack(results: Results, state_dir: Path) -> tuple[LocalStack, Emulators]:
    say("starting emulators (DynamoDB Local, moto server) ...")
    with timer() as emulators_time:
        emulators = Emulators.start()
    try:
        say("provisioning template.yaml and starting the HTTP API ...")
        options = StackOptions(
            api_port=free_port(),
            stage="bench",
            state_dir=state_dir,
            visibility_timeout=5,
            run_schedules=False,
            # Powertools would print a JSON line per record to stdout; the bench's own
            # progress should stay readable. Handlers still run their logging calls.
            parameters={"LogLevel": "WARNING"},
        )
        with timer() as provision_time:
            stack = LocalStack(options, emulators=emulators)
            stack.start()
        say("importing the handlers ...")
        with timer() as import_time:
            for function in stack.functions.values():
                function.handler()
    except BaseException:
        emulators.stop()
        raise
    total = emulators_time() + provision_time() + import_time()
    section = "Stack start"
    results.add(
        section,
        "Stack start, total",
        f"{total:.2f} s",
        "emulators + provisioning + HTTP API + handlers imported",
    )
    results.add(section, "Emulators started", f"{emulators_time():.2f} s", "in parallel")
    results.add(
        section,
        "Template provisioned, API and pollers up",
        f"{provision_time():.2f} s",
        f"{len(stack.provisioned.queues)} queues, {len(stack.functions)} functions",
    )
    results.add(section, "Handlers imported", f"{import_time():.2f} s")
    results.emulators = dict(stack.runtime_info["emulators"])
    return stack, emulators


def cold_tick(stack: LocalStack, counter: CallCounter, results: Results) -> int:
    """First dispatch with nothing due: builds the runtime and its clients (a cold start)."""
    say("cold tick (first dispatcher invocation, no account seeded) ...")
    with counter.watch() as calls, timer() as elapsed:
        reply = stack.fire(SCHEDULE)
    if reply["enqueued"] != 0:
        raise BenchFailure(f"nothing was seeded yet, but the dispatcher enqueued: {reply}")
    queries = calls["dynamodb.Query"]
    if queries == 0:
        raise BenchFailure(
            "the call counter saw no DynamoDB Query from the dispatcher: "
            "it is not hooked into the dispatcher's client"
        )
    results.add(
        "Dispatcher, cold",
        "First tick (runtime + clients built), nothing due",
        f"{elapsed() * 1000:.0f} ms",
        f"{queries} Query calls",
    )
    return queries


def seed(
    stack: LocalStack, dovecot: DovecotServer, smtp: SmtpServer, results: Results
) -> list[MailAccount]:
    """Real mailboxes, connected through the accounts service (a real IMAP + SMTP login each,
    credentials sealed with the local KMS key), so every sync in the pipeline logs in."""
    say(f"connecting {ACCOUNTS} Dovecot mailboxes across {COMPANIES} companies ...")
    service = current_runtime().accounts_service()
    accounts = []
    with timer() as elapsed:
        for i in range(ACCOUNTS):
            user = dovecot.add_user(f"user-{i:04d}@{dovecot.domain}", f"password-{i:04d}")
            owner = Principal(
                user_id=f"user-{i:04d}", company_id=f"co-{i % COMPANIES:03d}", role="user"
            )
            accounts.append(
                service.connect(
                    owner,
                    ConnectAccount(
                        email=user.email,
                        password=SecretStr(user.password),
                        imap=ServerEndpoint(
                            host="localhost", port=dovecot.ssl_port, security="ssl"
                        ),
                        smtp=ServerEndpoint(host="localhost", port=smtp.port, security="starttls"),
                    ),
                    account_id=f"acc-{i:04d}",
                )
            )
    results.add(
        "Dispatch + sync",
        "Connecting (real IMAP + SMTP login each; not part of the pipeline)",
        f"{elapsed():.2f} s",
        f"{ACCOUNTS / elapsed():.0f} accounts/s",
    )
    return accounts


def pipeline(
    stack: LocalStack, counter: CallCounter, accounts: list[MailAccount], results: Results
) -> None:
    section = "Dispatch + sync"
    say(f"firing {SCHEDULE} with {len(accounts)} accounts due ...")
    fired_at = datetime.now(UTC)
    with timer() as total:
        with counter.watch() as calls, timer() as dispatch:
            reply = stack.fire(SCHEDULE)
        say(f"  dispatcher returned {reply} in {dispatch():.2f} s; draining the sync queue ...")
        stack.drain(timeout=DRAIN_TIMEOUT)
    if reply["enqueued"] < len(accounts):
        raise BenchFailure(f"{len(accounts)} accounts due, dispatcher reply {reply}")
    results.add(
        section,
        "Dispatcher wall time (`fire`)",
        f"{dispatch():.2f} s",
        f"{reply['enqueued'] / dispatch():.0f} accounts/s; {reply['enqueued']} enqueued, "
        f"{reply['lost_claims']} lost claims",
    )
    results.add(
        section,
        "Dispatcher AWS calls",
        ", ".join(f"{name} {n}" for name, n in sorted(calls.items())),
        "from the dispatcher's thread only",
    )
    drain = total() - dispatch()
    results.add(
        section,
        "Drain after dispatch returned (`drain`)",
        f"{drain:.2f} s",
        "mail_sync already runs while the dispatcher sends",
    )
    results.add(
        section,
        "End to end, fire to queues idle",
        f"{total():.2f} s",
        f"{reply['enqueued'] / total():.1f} jobs/s through the FIFO queue (BatchSize 1)",
    )

    say("verifying the sync runs in DynamoDB ...")
    runs = sync_runs(stack)
    seeded = {a.id for a in accounts}
    per_account = Counter(run["account_id"] for run in runs if run["account_id"] in seeded)
    outcomes = Counter(str(run["outcome"]) for run in runs)
    missing = len(seeded) - len(per_account)
    duplicated = sum(1 for n in per_account.values() if n > 1)
    if missing or len(runs) < len(accounts):
        raise BenchFailure(
            f"{len(runs)} sync runs stored for {len(accounts)} accounts; "
            f"{missing} accounts have none"
        )
    if outcomes != Counter({"ok": len(runs)}):
        raise BenchFailure(f"sync runs that are not ok: {dict(outcomes)}")
    last_finished = max(datetime.fromisoformat(str(run["finished_at"])) for run in runs)
    e2e_by_data = (last_finished - fired_at).total_seconds()
    results.add(
        section,
        "Sync runs stored (DynamoDB scan)",
        f"{len(runs)} for {len(accounts)} accounts",
        f"outcomes {dict(outcomes)}; {duplicated} accounts with more than one run",
    )
    results.add(
        section,
        "End to end by the data, fire to last run finished",
        f"{e2e_by_data:.2f} s",
        f"{len(runs) / e2e_by_data:.1f} jobs/s (no drain polling in this figure)",
    )


def sync_runs(stack: LocalStack) -> list[dict[str, Any]]:
    table = boto3.resource("dynamodb").Table(stack.resource("MainTable"))
    query: dict[str, Any] = {
        "FilterExpression": Attr("kind").eq("sync_run"),
        "ProjectionExpression": "#d.account_id, #d.outcome, #d.finished_at",
        "ExpressionAttributeNames": {"#d": "data"},
    }
    runs: list[dict[str, Any]] = []
    while True:
        page = table.scan(**query)
        for item in page["Items"]:
            data: Any = item["data"]
            runs.append(dict(data))
        if "LastEvaluatedKey" not in page:
            return runs
        query["ExclusiveStartKey"] = page["LastEvaluatedKey"]


def idle_ticks(stack: LocalStack, counter: CallCounter, shard_count: int, results: Results) -> None:
    section = "Idle tick"
    say("idle tick right after the sync (no account due) ...")
    sqs = boto3.client("sqs")
    durations: list[float] = []
    queries: list[int] = []
    sends = 0
    for _ in range(1 + IDLE_REPEATS):
        with counter.watch() as calls, timer() as elapsed:
            reply = stack.fire(SCHEDULE)
        if reply["due"] or reply["enqueued"]:
            raise BenchFailure(f"every account was just synced, but the dispatcher did {reply}")
        durations.append(elapsed() * 1000)
        queries.append(calls["dynamodb.Query"])
        sends += sum(calls[name] for name in SQS_SENDS)
    visible = sqs.get_queue_attributes(
        QueueUrl=stack.resource("SyncQueue"), AttributeNames=["ApproximateNumberOfMessages"]
    )["Attributes"]["ApproximateNumberOfMessages"]
    results.add(
        section,
        "First idle tick, dispatcher wall time",
        f"{durations[0]:.0f} ms",
        f"{queries[0]} DynamoDB Query calls ({shard_count} shards)",
    )
    results.add(
        section,
        f"Next {IDLE_REPEATS} idle ticks, median / max",
        f"{statistics.median(durations[1:]):.0f} / {max(durations[1:]):.0f} ms",
        f"Query calls per tick: {sorted(set(queries))}",
    )
    results.add(
        section,
        "SQS sends during idle ticks",
        str(sends),
        f"SendMessage(Batch) over {1 + IDLE_REPEATS} ticks; sync queue holds {visible} messages",
    )
    if sends:
        raise BenchFailure(f"idle ticks sent {sends} SQS messages")


def http_latency(stack: LocalStack, account: MailAccount, results: Results) -> None:
    section = "HTTP API"
    token = stack.token(account.user_id, account.company_id, "user")
    routes = [
        ("GET /health", f"{stack.url}/health", {}),
        (
            "GET /v1/mail-accounts/{id}/sync-runs",
            f"{stack.url}/v1/mail-accounts/{account.id}/sync-runs",
            {"Authorization": f"Bearer {token}"},
        ),
    ]
    with requests.Session() as http:
        for label, url, headers in routes:
            say(f"{HTTP_REQUESTS} x {label} ...")
            for _ in range(HTTP_WARMUP):
                http.get(url, headers=headers, timeout=10).raise_for_status()
            samples: list[float] = []
            with timer() as elapsed:
                for _ in range(HTTP_REQUESTS):
                    started = time.perf_counter()
                    reply = http.get(url, headers=headers, timeout=10)
                    samples.append((time.perf_counter() - started) * 1000)
                    if reply.status_code != 200:
                        raise BenchFailure(f"{label}: {reply.status_code} {reply.text[:200]}")
            if "sync-runs" in url:
                items = reply.json()["items"]
                if [item["outcome"] for item in items] != ["ok"]:
                    raise BenchFailure(f"the API serves {items} for a synced account")
            results.add(
                section,
                label,
                f"p50 {percentile(samples, 50):.1f} ms, p95 {percentile(samples, 95):.1f} ms, "
                f"max {max(samples):.1f} ms",
                f"{HTTP_REQUESTS / elapsed():.0f} req/s sequential, one keep-alive session",
            )
        # The local server's own floor: a route-less 404 answered without calling a function.
        say(f"{HTTP_FLOOR_REQUESTS} x GET of an unknown route (server floor) ...")
        floor: list[float] = []
        for _ in range(HTTP_FLOOR_REQUESTS):
            started = time.perf_counter()
            reply = http.get(f"{stack.url}/v1/no-such-route", timeout=10)
            floor.append((time.perf_counter() - started) * 1000)
            if reply.status_code != 404:
                raise BenchFailure(f"unknown route answered {reply.status_code}")
    results.floor_ms = statistics.median(floor)
    results.add(
        section,
        "GET unknown route (404, no function called)",
        f"p50 {results.floor_ms:.1f} ms",
        f"{HTTP_FLOOR_REQUESTS} requests on the same session: the local server's floor",
    )


# -- the report -----------------------------------------------------------------------------
def http_floor_note(floor_ms: float | None) -> list[str]:
    if floor_ms is None or floor_ms < NAGLE_SUSPECT_MS:
        return []
    return [
        f"**HTTP floor.** A 404 for an unknown route takes {floor_ms:.0f} ms on a keep-alive",
        "connection although no function runs: the local server (`http.server`, HTTP/1.1)",
        "sends the headers and the body in separate writes without `TCP_NODELAY`, so Nagle's",
        "algorithm holds the body until the client's delayed ACK (about 40 ms on Linux).",
        "Setting `disable_nagle_algorithm = True` on the handler class in",
        "`infra/crmsync_local/http_api.py` removes it; until then, subtract the floor from the",
        "route latencies above to see the handler's own time.",
        "",
    ]


def write_doc(
    results: Results,
    mail: mail_sync.MailSyncReport,
    started: datetime,
    wall: float,
    tracked: tracking.TrackingReport,
    calendared: calendar_bench.CalendarReport,
) -> None:
    lines = [
        "# Benchmarks",
        "",
        "Written by `make bench` (`tests/bench/run.py`); every run overwrites this file.",
        "",
        "> These numbers measure the **local stack**: the template's handlers called in one",
        "> Python process, DynamoDB Local (Java) and moto server on loopback, all on the",
        "> machine below. They are not AWS numbers: Lambda concurrency, cold starts, network",
        "> latency and service throttling are all different there. Use them to compare runs",
        "> of this benchmark on the same machine, not to size production.",
        "",
        f"- Date: {started.strftime('%Y-%m-%d %H:%M:%S UTC')}",
        f"- Command: `{COMMAND}` (runs `.venv/bin/python -m tests.bench.run`)",
        f"- Bench wall time: {wall:.0f} s",
    ]
    lines += [f"- {key}: {value}" for key, value in machine().items()]
    lines += [f"- Emulator `{name}`: {version}" for name, version in results.emulators.items()]
    lines += [f"- {key}: {value}" for key, value in results.settings.items()]
    lines += [
        "",
        "## Results",
        "",
        *results.table(),
    ]
    lines += [
        "",
        "## What is measured",
        "",
        "1. **Stack start**: DynamoDB Local and moto server started (in parallel), the",
        "   template provisioned on them (tables, queues, buckets, bus), HTTP API server and",
        "   queue pollers started, then every handler module imported.",
        f"2. **Dispatch + sync**: {ACCOUNTS} Dovecot mailboxes across {COMPANIES} companies",
        "   are connected through the accounts service (a real IMAP + SMTP login each, the",
        "   password sealed with the local KMS key), so they are due at once; then the",
        "   `PollDispatcherFunction.Every` schedule is fired once by",
        "   hand. The dispatcher queries the PollDue index shard by shard, claims each",
        "   account with a conditional update and sends one `SyncAccount` job to the sync",
        "   FIFO queue; the poller hands the jobs to `MailSyncFunction` one at a time",
        "   (BatchSize 1), while the dispatcher is still sending (one process, one GIL).",
        "   Each sync opens the sealed password (KMS Decrypt), logs in over verified TLS,",
        "   lists the folders and runs one STATUS per folder (6 folders per mailbox).",
        "   `drain()` returns once the queues have been empty with no poller busy for two",
        "   rounds (about 0.2 s of polling granularity). The runs are then counted with a",
        "   DynamoDB scan; the bench fails if any account has no run or a run is not `ok`.",
        "   Connecting is timed but is not part of the pipeline figure.",
        "3. **Idle tick**: the schedule fired again right after, when no account is due. AWS",
        "   calls are counted with a botocore `before-call` hook on boto3's default session",
        "   (the handlers' clients inherit it), counting only the dispatcher's thread. The",
        "   bench fails if an idle tick sends anything to SQS. The cold tick before seeding is",
        "   the dispatcher's first invocation, which also builds the runtime and its clients.",
        f"4. **HTTP API**: {HTTP_REQUESTS} sequential GETs per route through the local",
        "   API Gateway emulation on loopback (JWT verified on the authorized route), one",
        f"   `requests.Session`, after {HTTP_WARMUP} unmeasured warm-up requests per route.",
        "   The sync-runs route reads one account's runs from DynamoDB Local.",
        "",
        *http_floor_note(results.floor_ms),
        "Speed is reported, never asserted. The stack runs with `LogLevel=WARNING` so",
        "Powertools does not print a JSON line per record during the run.",
        "",
        *mail_sync.markdown(mail, COMMAND, machine()),
        "",
        *tracking.markdown(tracked, COMMAND, machine()),
        "",
        *calendar_bench.markdown(calendared, COMMAND, machine()),
    ]
    DOC_PATH.parent.mkdir(parents=True, exist_ok=True)
    DOC_PATH.write_text("\n".join(lines))


def stack_sections(
    results: Results,
    counter: CallCounter,
    dovecot: DovecotServer,
    smtp: SmtpServer,
    state_dir: Path,
) -> None:
    """Stack start, dispatch + sync of ACCOUNTS mailboxes, idle ticks, HTTP latency."""
    stack, emulators = start_stack(results, state_dir)
    try:
        shard_count = current_runtime().settings.poll_shards
        results.settings = {
            "Poll shards": str(shard_count),
            "Queue visibility timeout": "5 s",
            "Stage": "bench",
        }
        cold_tick(stack, counter, results)
        accounts = seed(stack, dovecot, smtp, results)
        pipeline(stack, counter, accounts, results)
        idle_ticks(stack, counter, shard_count, results)
        http_latency(stack, accounts[0], results)
    finally:
        say("stopping the stack ...")
        stack.stop()
        emulators.stop()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.bench.run", description=__doc__)
    parser.add_argument(
        "--only",
        action="append",
        choices=SECTIONS,
        help=f"run only this section (repeatable; {DOC_PATH.name} is written by a full run; "
        "tracking and calendar also replace their own section of it)",
    )
    chosen = set(parser.parse_args(argv).only or SECTIONS)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    started = datetime.now(UTC)
    results = Results()
    mail: mail_sync.MailSyncReport | None = None
    tracked: tracking.TrackingReport | None = None
    calendared: calendar_bench.CalendarReport | None = None
    with timer() as wall, tempfile.TemporaryDirectory(prefix="crmsync-bench-") as tmp:
        counter = install_counter()
        dovecot = DovecotServer().start()
        try:
            smtp = SmtpServer(dovecot).start()
            try:
                bundle = write_ca_bundle([dovecot.cafile, smtp.cafile], Path(tmp) / "ca.pem")
                os.environ["CRMSYNC_LOCAL_CA_FILE"] = str(bundle)
                if "stack" in chosen:
                    stack_sections(results, counter, dovecot, smtp, Path(tmp) / "state")
                if "mail-sync" in chosen:
                    say("-- mail sync (SPEC S1-S6), on a stack of its own --")
                    mail = mail_sync.run(dovecot, smtp, counter, Path(tmp) / "mail-sync")
                if "tracking" in chosen:
                    tracked = tracking.run(Path(tmp) / "tracking")
                if "calendar" in chosen:
                    calendared = calendar_bench.run(counter, Path(tmp) / "calendar")
            finally:
                smtp.stop()
        finally:
            dovecot.stop()
        total = wall()
    if chosen != set(SECTIONS):
        partial = ", ".join(sorted(chosen))
        updated: list[str] = []
        if tracked is not None:
            tracking.update_doc(DOC_PATH, tracking.markdown(tracked, COMMAND, machine()))
            updated.append("tracking")
        if calendared is not None:
            section = calendar_bench.markdown(calendared, COMMAND, machine())
            tracking.update_doc(DOC_PATH, section)
            updated.append("calendar")
        if updated:
            say(f"done in {total:.0f} s; partial run ({partial}): {', '.join(updated)} updated")
            return 0
        say(f"done in {total:.0f} s; partial run ({partial}): {DOC_PATH.name} not written")
        return 0
    assert mail is not None
    assert tracked is not None
    assert calendared is not None
    write_doc(results, mail, started, total, tracked, calendared)
    say(f"done in {total:.0f} s; wrote {DOC_PATH.relative_to(REPO_ROOT)}")
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except BenchFailure as failure:
        say(f"FAILED: {failure}")
        sys.exit(1)
