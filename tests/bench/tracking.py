"""Bench of the public tracking function (SPEC T1, T2): cold start and warm latency.

- **Cold start**: a fresh Python process per run imports `functions/tracking/app.py` and
  handles one request (the pixel, or the click redirect) against the emulators: import
  time, first call (boto3 imported, clients built, the key set read from SSM, the table
  read and written), and both together.
- **Warm, in-process**: the same handler called directly with API Gateway v2 events,
  sequentially, against DynamoDB Local and moto (real reads and writes), then against an
  in-memory store and publisher (the handler's own cost: token check, classification,
  models).
- **Warm, over HTTP**: the pixel and the redirect through the local API Gateway emulation.

Runs on a stack of its own (emulators started here) and takes seconds.
"""

from __future__ import annotations

import importlib.util
import json
import os
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import requests

from crmsync.runtime import current_runtime
from crmsync.tracking.models import TrackedMessage
from crmsync.tracking.service import TrackingService
from crmsync.tracking.tokens import TokenSigner
from crmsync_local.stack import REPO_ROOT, Emulators, LocalStack, StackOptions
from crmsync_local.testservers.net import free_port
from tests.bench.common import BenchFailure, Results, percentile, say, timer
from tests.unit.fakes import FakeEventPublisher
from tests.unit.fakes_tracking import FakeTrackingStore

COLD_RUNS = 5
WARM_REQUESTS = 200
WARM_WARMUP = 10
MEMORY_REQUESTS = 2000
HTTP_REQUESTS = 100
APP = REPO_ROOT / "functions" / "tracking" / "app.py"
BROWSER = "Mozilla/5.0 (X11; Linux x86_64; rv:125.0) Gecko/20100101 Firefox/125.0"
TARGET = "https://acme.example/pricing?plan=pro"

# Runs in a fresh interpreter: what Lambda does on a cold start, minus the runtime's own init.
COLD_SCRIPT = """
import importlib.util, json, sys, time
started = time.perf_counter()
spec = importlib.util.spec_from_file_location("tracking_app", sys.argv[1])
module = importlib.util.module_from_spec(spec)
spec.loader.exec_module(module)
imported = time.perf_counter()
reply = module.handler(json.loads(sys.argv[2]), None)
called = time.perf_counter()
print(json.dumps({"import_ms": (imported - started) * 1000,
                  "first_ms": (called - imported) * 1000,
                  "status": reply["statusCode"]}))
"""


@dataclass
class TrackingReport:
    results: Results = field(default_factory=Results)
    facts: dict[str, str] = field(default_factory=dict)


def event(method: str, route: str, token: str, agent: str = BROWSER) -> dict[str, Any]:
    path = route.replace("{token}", token)
    return {
        "version": "2.0",
        "routeKey": f"{method} {route}",
        "rawPath": path,
        "headers": {"user-agent": agent, "host": "bench.local"},
        "pathParameters": {"token": token},
        "requestContext": {"http": {"method": method, "path": path, "sourceIp": "203.0.113.5"}},
        "isBase64Encoded": False,
    }


def _message(key: str) -> TrackedMessage:
    return TrackedMessage(
        company_id="bench-co",
        message_key=key,
        account_id="bench-account",
        thread_id="bench-thread",
        owner_user_id="bench-user",
        sender_email="alex@bench.example",
        recipients=["ann@customer.example"],
        sent_at=datetime.now(UTC) - timedelta(minutes=5),
        opens=True,
        clicks=True,
        html=True,
    )


def _tokens(signer: TokenSigner, message: TrackedMessage) -> tuple[str, str]:
    recipient = message.recipients[0]
    return (
        signer.open_token(message.company_id, message.message_key, recipient) + ".gif",
        signer.click_token(message.company_id, message.message_key, recipient, TARGET),
    )


def _expect(reply: dict[str, Any], status: int) -> None:
    if reply["statusCode"] != status:
        raise BenchFailure(f"tracking handler answered {reply['statusCode']}, not {status}")


def _latency_row(
    results: Results, label: str, samples: list[float], wall: float, note: str
) -> None:
    results.add(
        "Tracking",
        label,
        f"p50 {percentile(samples, 50):.2f} ms, p95 {percentile(samples, 95):.2f} ms",
        f"{len(samples) / wall:.0f} req/s sequential; {note}",
    )


def cold_starts(stack: LocalStack, results: Results, pixel: str, click: str) -> None:
    env = {**os.environ, **stack.functions["TrackingFunction"].environment}
    for label, request, status in (
        ("pixel", event("GET", "/t/o/{token}", pixel), 200),
        ("click", event("GET", "/t/c/{token}", click), 302),
    ):
        say(f"{COLD_RUNS} cold starts of the tracking function ({label}) ...")
        runs: list[dict[str, float]] = []
        for _ in range(COLD_RUNS):
            out = subprocess.run(
                [sys.executable, "-c", COLD_SCRIPT, str(APP), json.dumps(request)],
                capture_output=True,
                text=True,
                env=env,
                timeout=120,
                check=True,
            )
            run = json.loads(out.stdout.strip().splitlines()[-1])
            if run["status"] != status:
                raise BenchFailure(f"cold {label} answered {run['status']}: {out.stderr[-500:]}")
            runs.append(run)
        imports = [r["import_ms"] for r in runs]
        firsts = [r["first_ms"] for r in runs]
        totals = [r["import_ms"] + r["first_ms"] for r in runs]
        results.add(
            "Tracking",
            f"Cold start, {label}: import + first call, median (min-max)",
            f"{statistics.median(totals):.0f} ms ({min(totals):.0f}-{max(totals):.0f})",
            f"import {statistics.median(imports):.0f} ms + first call "
            f"{statistics.median(firsts):.0f} ms (boto3, clients, SSM key set, DynamoDB); "
            f"{COLD_RUNS} fresh processes",
        )


def warm_in_process(stack: LocalStack, results: Results, pixel: str, click: str) -> None:
    handler = stack.functions["TrackingFunction"].handler()
    for label, request, status, note in (
        ("pixel", event("GET", "/t/o/{token}", pixel), 200, "GetItem + PutItem per hit"),
        (
            "click",
            event("GET", "/t/c/{token}", click),
            302,
            "GetItem + PutItem + PutEvents (a human click) per hit",
        ),
    ):
        say(f"{WARM_REQUESTS} warm in-process calls ({label}, DynamoDB Local + moto) ...")
        for _ in range(WARM_WARMUP):
            _expect(handler(request, None), status)
        samples: list[float] = []
        with timer() as wall:
            for _ in range(WARM_REQUESTS):
                started = time.perf_counter()
                reply = handler(request, None)
                samples.append((time.perf_counter() - started) * 1000)
                _expect(reply, status)
        _latency_row(
            results, f"Warm, in-process, {label} (DynamoDB Local + moto)", samples, wall(), note
        )


def warm_in_memory(results: Results) -> None:
    """The handler with an in-memory store and publisher: its own CPU per request."""
    spec = importlib.util.spec_from_file_location("tracking_bench_memory", APP)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    store = FakeTrackingStore()
    signer = TokenSigner({"k1": os.urandom(32)}, "k1")
    message = _message("in-memory")
    store.register(message)
    service = TrackingService(
        store, lambda: signer, FakeEventPublisher(), lambda: datetime.now(UTC), base_url=None
    )
    module.tracking_runtime = lambda: SimpleNamespace(service=service)
    pixel, click = _tokens(signer, message)
    for label, request, status in (
        ("pixel", event("GET", "/t/o/{token}", pixel), 200),
        ("click", event("GET", "/t/c/{token}", click), 302),
    ):
        say(f"{MEMORY_REQUESTS} warm in-process calls ({label}, in-memory store) ...")
        samples: list[float] = []
        with timer() as wall:
            for _ in range(MEMORY_REQUESTS):
                started = time.perf_counter()
                reply = module.handler(request, None)
                samples.append((time.perf_counter() - started) * 1000)
                _expect(reply, status)
        recorded = len(store.hits.get(("bench-co", "in-memory"), []))
        if recorded != MEMORY_REQUESTS:
            raise BenchFailure(f"{recorded} of {MEMORY_REQUESTS} in-memory {label} hits recorded")
        store.hits.clear()
        _latency_row(
            results,
            f"Warm, in-process, {label} (in-memory store)",
            samples,
            wall(),
            "token check, classification, models, logging: no I/O",
        )


def warm_http(stack: LocalStack, results: Results, pixel: str, click: str) -> None:
    with requests.Session() as http:
        for label, url, status in (
            ("pixel", f"{stack.url}/t/o/{pixel}", 200),
            ("click", f"{stack.url}/t/c/{click}", 302),
        ):
            say(f"{HTTP_REQUESTS} x GET {label} through the local HTTP API ...")
            headers = {"User-Agent": BROWSER}
            samples: list[float] = []
            with timer() as wall:
                for _ in range(HTTP_REQUESTS):
                    started = time.perf_counter()
                    reply = http.get(url, headers=headers, allow_redirects=False, timeout=10)
                    samples.append((time.perf_counter() - started) * 1000)
                    if reply.status_code != status:
                        raise BenchFailure(f"{label} over HTTP answered {reply.status_code}")
            _latency_row(
                results,
                f"Warm, over the local HTTP API, {label}",
                samples,
                wall(),
                "one keep-alive session; DynamoDB Local + moto",
            )


def run(state_dir: Path) -> TrackingReport:
    report = TrackingReport()
    say("-- tracking (SPEC T1, T2): starting emulators and a stack of its own --")
    with timer() as elapsed:
        emulators = Emulators.start()
        try:
            stack = LocalStack(
                StackOptions(
                    api_port=free_port(),
                    stage="benchtrack",
                    state_dir=state_dir,
                    run_schedules=False,
                    run_pollers=False,
                    parameters={"LogLevel": "WARNING"},
                ),
                emulators=emulators,
            ).start()
            try:
                service = current_runtime().tracking_service()
                signer = current_runtime().tracking_signer()
                message = _message("bench-message")
                service.register(message)
                pixel, click = _tokens(signer, message)
                cold_starts(stack, report.results, pixel, click)
                warm_in_process(stack, report.results, pixel, click)
                warm_in_memory(report.results)
                warm_http(stack, report.results, pixel, click)
                if service.report("bench-co", "bench-message").opens[0].human_count < 1:
                    raise BenchFailure("the pixel hits were not recorded")
            finally:
                stack.stop()
        finally:
            emulators.stop()
    report.facts = {
        "Emulators": ", ".join(f"{k} {v}" for k, v in stack.runtime_info["emulators"].items()),
        "Section wall time": f"{elapsed():.0f} s (its stack's start included)",
    }
    return report


def markdown(report: TrackingReport, command: str, machine: dict[str, str]) -> list[str]:
    host = ", ".join(f"{key} {value}" for key, value in machine.items())
    return [
        "## Tracking (SPEC T1, T2)",
        "",
        f"- Command: `{command}` (this section: `tests/bench/tracking.py`; alone, updating only",
        "  this section: `.venv/bin/python -m tests.bench.run --only tracking`)",
        f"- Machine: {host}",
        *(f"- {key}: {value}" for key, value in report.facts.items()),
        "",
        *report.results.table(),
        "",
        "### How tracking is measured",
        "",
        f"1. **Cold start**: {COLD_RUNS} fresh `python` processes per route, each importing",
        "   `functions/tracking/app.py` and handling one API Gateway v2 event (a human pixel",
        "   fetch, or a human click) against DynamoDB Local and moto (SSM, EventBridge). The",
        "   import is the module's own (Powertools Logger, pydantic, the tracking package; no",
        "   boto3); the first call imports boto3, builds the DynamoDB and EventBridge",
        "   clients, reads the key set from SSM and reads and writes the table. Lambda's own",
        "   runtime start (and the layer's unpacking) is not in these figures.",
        f"2. **Warm, in-process**: the handler called {WARM_REQUESTS} times per route after",
        f"   {WARM_WARMUP} unmeasured calls, one after the other, in this process; then",
        f"   {MEMORY_REQUESTS} times with an in-memory store and publisher, which leaves the",
        "   handler's own work (token verification, classification, pydantic models, logging).",
        f"3. **Over HTTP**: {HTTP_REQUESTS} GETs per route through the local API Gateway",
        "   emulation on loopback, one keep-alive `requests.Session`, no redirect followed.",
        "",
        "Speed is reported, never asserted. These are local-stack numbers: on Lambda the",
        "network to DynamoDB and EventBridge and the runtime's start differ.",
        "",
    ]


def update_doc(doc: Path, section: list[str]) -> None:
    """Replace this section in an existing benchmarks.md (or append it)."""
    text = doc.read_text() if doc.exists() else "# Benchmarks\n"
    lines = text.splitlines()
    title = section[0]
    if title in lines:
        start = lines.index(title)
        end = next(
            (i for i in range(start + 1, len(lines)) if lines[i].startswith("## ")), len(lines)
        )
        lines[start:end] = section
    else:
        lines += ["", *section]
    doc.write_text("\n".join(lines).rstrip("\n") + "\n")
