"""The public tracking function (functions/tracking/app.py) with API Gateway v2 events: the
pixel is always a GIF, the redirect only ever goes to the signed URL; and the key set."""

from __future__ import annotations

import base64
import importlib.util
import io
import json
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import ModuleType, SimpleNamespace
from typing import Any

import pytest

from crmsync.tracking.keys import (
    TrackingKeysError,
    main,
    new_key_set,
    retired,
    rotated,
    signer_from_parameter,
)
from crmsync.tracking.models import TrackedMessage
from crmsync.tracking.service import TrackingService
from crmsync.tracking.tokens import TokenSigner
from tests.unit.fakes import FakeClock, FakeEventPublisher
from tests.unit.fakes_tracking import FakeTrackingStore

ROOT = Path(__file__).resolve().parents[2]
SENT = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
SIGNER = TokenSigner({"k1": b"0123456789abcdef0123456789abcdef"}, "k1")
HUMAN = "Mozilla/5.0 (X11; Linux x86_64; rv:125.0) Gecko/20100101 Firefox/125.0"


def load_app() -> ModuleType:
    spec = importlib.util.spec_from_file_location(
        "tracking_app_under_test", ROOT / "functions" / "tracking" / "app.py"
    )
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def store() -> FakeTrackingStore:
    store = FakeTrackingStore()
    store.register(
        TrackedMessage(
            company_id="acme",
            message_key="m-1",
            account_id="acc-1",
            thread_id="t-1",
            owner_user_id="u-1",
            sender_email="alex@acme.example",
            recipients=["ann@customer.example"],
            sent_at=SENT,
            opens=True,
            clicks=True,
            html=True,
        )
    )
    return store


@pytest.fixture
def app(monkeypatch: pytest.MonkeyPatch, store: FakeTrackingStore) -> ModuleType:
    module = load_app()
    service = TrackingService(
        store,
        lambda: SIGNER,
        FakeEventPublisher(),
        FakeClock(SENT + timedelta(minutes=5)).now,
        base_url="https://t.example",
    )
    monkeypatch.setattr(module, "tracking_runtime", lambda: SimpleNamespace(service=service))
    return module


def event(method: str, route: str, token: str, user_agent: str | None = HUMAN) -> dict[str, Any]:
    path = route.replace("{token}", token)
    headers = {"host": "t.example"}
    if user_agent is not None:
        headers["user-agent"] = user_agent
    return {
        "version": "2.0",
        "routeKey": f"{method} {route}",
        "rawPath": path,
        "headers": headers,
        "pathParameters": {"token": token},
        "requestContext": {
            "http": {"method": method, "path": path, "sourceIp": "203.0.113.9"},
        },
        "isBase64Encoded": False,
    }


def open_token() -> str:
    return SIGNER.open_token("acme", "m-1", "ann@customer.example")


def click_token(url: str = "https://acme.example/pricing?a=1&b=2") -> str:
    return SIGNER.click_token("acme", "m-1", "ann@customer.example", url)


def assert_pixel(reply: dict[str, Any]) -> None:
    assert reply["statusCode"] == 200
    assert reply["isBase64Encoded"] is True
    gif = base64.b64decode(reply["body"])
    assert len(gif) == 43
    assert gif.startswith(b"GIF89a\x01\x00\x01\x00")
    assert reply["headers"]["Content-Type"] == "image/gif"
    assert reply["headers"]["Cache-Control"] == "no-store, no-cache, must-revalidate, private"


def test_pixel_records_an_open(app: ModuleType, store: FakeTrackingStore) -> None:
    reply = app.handler(event("GET", "/t/o/{token}", open_token() + ".gif"), None)

    assert_pixel(reply)
    (hit,) = store.hits[("acme", "m-1")]
    assert (hit.kind, hit.ua_class, hit.recipient) == ("open", "human", "ann@customer.example")


@pytest.mark.parametrize("token", ["nope.gif", ".gif", "x" * 500, open_token()[:-3] + ".gif"])
def test_pixel_with_a_bad_token_is_still_a_gif_and_records_nothing(
    app: ModuleType, store: FakeTrackingStore, token: str
) -> None:
    assert_pixel(app.handler(event("GET", "/t/o/{token}", token), None))
    assert store.hits == {}


def test_pixel_head_is_counted_as_a_machine(app: ModuleType, store: FakeTrackingStore) -> None:
    assert_pixel(app.handler(event("HEAD", "/t/o/{token}", open_token() + ".gif"), None))
    assert store.hits[("acme", "m-1")][0].ua_class == "head_request"


def test_pixel_is_served_when_the_store_is_down(app: ModuleType, store: FakeTrackingStore) -> None:
    store.broken = True

    assert_pixel(app.handler(event("GET", "/t/o/{token}", open_token() + ".gif"), None))


def test_click_redirects_to_the_signed_url_only(app: ModuleType, store: FakeTrackingStore) -> None:
    reply = app.handler(event("GET", "/t/c/{token}", click_token()), None)

    assert reply["statusCode"] == 302
    assert reply["headers"]["Location"] == "https://acme.example/pricing?a=1&b=2"
    assert reply["headers"]["Cache-Control"] == "no-store"
    assert reply["headers"]["Referrer-Policy"] == "no-referrer"
    assert store.hits[("acme", "m-1")][0].url == "https://acme.example/pricing?a=1&b=2"


def test_click_head_redirects_and_is_counted_apart(
    app: ModuleType, store: FakeTrackingStore
) -> None:
    reply = app.handler(event("HEAD", "/t/c/{token}", click_token()), None)

    assert reply["statusCode"] == 302
    assert store.hits[("acme", "m-1")][0].machine


@pytest.mark.parametrize(
    "token",
    [
        click_token()[:-1],
        click_token()[:20],
        click_token() + "A",
        "A" + click_token(),
        click_token().replace("A", "B", 1) if "A" in click_token() else click_token()[1:],
        open_token(),
        "garbage",
        "%2F%2Fevil.example",
    ],
)
def test_forged_or_tampered_click_is_404_without_location(
    app: ModuleType, store: FakeTrackingStore, token: str
) -> None:
    reply = app.handler(event("GET", "/t/c/{token}", token), None)

    assert reply["statusCode"] == 404
    assert "Location" not in reply["headers"]
    assert reply["body"] == "Not found.\n"
    assert store.hits == {}


def test_click_when_the_store_is_down_is_503_not_a_redirect(
    app: ModuleType, store: FakeTrackingStore
) -> None:
    store.broken = True

    reply = app.handler(event("GET", "/t/c/{token}", click_token()), None)

    assert reply["statusCode"] == 503
    assert "Location" not in reply["headers"]


def test_other_methods_and_paths_are_404(app: ModuleType) -> None:
    assert app.handler(event("POST", "/t/c/{token}", click_token()), None)["statusCode"] == 404
    other = event("GET", "/t/x/{token}", click_token())
    assert app.handler(other, None)["statusCode"] == 404


def test_handler_module_imports_neither_boto3_nor_the_api_runtime() -> None:
    """The cold start stays small: boto3 and crmsync.runtime load on the first request only."""
    source = str(ROOT / "functions" / "tracking" / "app.py")
    code = (
        "import importlib.util, sys\n"
        f"spec = importlib.util.spec_from_file_location('app', {source!r})\n"
        "module = importlib.util.module_from_spec(spec); spec.loader.exec_module(module)\n"
        "heavy = ('boto3', 'botocore.client', 'crmsync.runtime', 'aws_xray_sdk')\n"
        "print(','.join(m for m in heavy if m in sys.modules))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    assert result.stdout.strip() == ""


# -- the key set ------------------------------------------------------------------------------


def test_key_set_rotation_and_retirement() -> None:
    first = new_key_set()
    old = signer_from_parameter(first)
    token = old.open_token("acme", "m", "a@b.example")

    second = rotated(first)
    assert second["current"] == "k2"
    assert signer_from_parameter(second).verify(token) is not None
    third = retired(second, "k1")
    assert signer_from_parameter(third).verify(token) is None
    with pytest.raises(TrackingKeysError, match="current"):
        retired(second, "k2")


@pytest.mark.parametrize(
    "value",
    [
        {},
        {"current": "k1"},
        {"current": "k1", "keys": {}},
        {"current": "k2", "keys": {"k1": base64.b64encode(b"x" * 32).decode()}},
        {"current": "k1", "keys": {"k1": "not base64!"}},
        {"current": "k1", "keys": {"k1": base64.b64encode(b"short").decode()}},
        {"current": "k1", "keys": {"k1": 42}},
    ],
)
def test_malformed_key_sets_are_refused(value: dict[str, Any]) -> None:
    with pytest.raises(TrackingKeysError):
        signer_from_parameter(value)


def test_keys_command_line(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["new"]) == 0
    created = json.loads(capsys.readouterr().out)
    monkeypatch.setattr(sys, "stdin", io.StringIO(json.dumps(created)))
    assert main(["rotate"]) == 0
    rotated_set = json.loads(capsys.readouterr().out)

    assert created["current"] == "k1"
    assert rotated_set["current"] == "k2"
    assert rotated_set["keys"]["k1"] == created["keys"]["k1"]
    assert main(["bogus"]) == 2
