"""Open and click tracking end to end (SPEC T1-T4) on the local stack.

The sender is not part of this test: a message synced from Dovecot stands for the sent one
(the tracking report is readable by whoever may read the message), the tracking service
registers it and instruments one copy per recipient the way the sender does, and the pixel
and click URLs are then fetched over HTTP from the local API with the User-Agents of people,
Gmail's image proxy, Apple's privacy relay, link checkers and a security scanner.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import requests

from crmsync.models.directory import User, UserCreate
from crmsync.runtime import current_runtime
from crmsync.tracking.models import TrackedMessage
from tests.e2e.mailbox import Mailbox, mail, mailbox

__all__ = ["mailbox"]  # the fixture, used by name

pytestmark = pytest.mark.e2e

FIREFOX = "Mozilla/5.0 (X11; Linux x86_64; rv:125.0) Gecko/20100101 Firefox/125.0"
OUTLOOK = "Mozilla/4.0 (compatible; ms-office; MSOffice 16) Microsoft Outlook 16.0.17328; Pro"
GMAIL = "Mozilla/5.0 (Windows NT 5.1; rv:11.0) Gecko Firefox/11.0 (via ggpht.com GoogleImageProxy)"
SCANNER = "Mimecast-URL-Protect/1.0"
PRICING = "https://acme.example/pricing?plan=pro&seats=5"
HTML = (
    "<html><body><p>Dear Ann,</p>"
    f'<p>Our <a href="{PRICING.replace("&", "&amp;")}">prices</a> and '
    '<a href="mailto:sales@acme.example">write us</a>.</p></body></html>'
)
TEXT = f"Dear Ann,\nOur prices: {PRICING}\n"


def _synced_message(box: Mailbox) -> tuple[str, str]:
    box.append("INBOX", mail(box.user.email, "ann@customer.test", "Proposal", "See the prices."))
    box.sync()
    [thread] = box.threads()
    [message] = box.get(f"/v1/threads/{thread['id']}")["messages"]
    return str(message["id"]), str(thread["id"])


def _tracked(box: Mailbox, message_id: str, thread_id: str, **changes: Any) -> TrackedMessage:
    fields: dict[str, Any] = {
        "company_id": box.owner.company_id,
        "message_key": message_id,
        "account_id": box.account.id,
        "thread_id": thread_id,
        "owner_user_id": box.owner.user_id,
        "sender_email": box.user.email,
        "recipients": ["ann@customer.test", "bob@customer.test"],
        # sent a minute ago: hits now are past the delivery-scan window
        "sent_at": datetime.now(UTC) - timedelta(minutes=1),
        "opens": True,
        "clicks": True,
        "html": True,
    }
    fields.update(changes)
    message = TrackedMessage.model_validate(fields)
    current_runtime().tracking_service().register(message)
    return message


def _urls(box: Mailbox, message: TrackedMessage, recipient: str) -> tuple[str, str]:
    """The pixel URL and the tracked pricing link of one recipient's copy."""
    html, text = current_runtime().tracking_service().instrument(message, recipient, HTML, TEXT)
    assert html is not None
    assert text is not None
    base = re.escape(box.stack.url)
    pixel = re.search(rf'<img src="({base}/t/o/[A-Za-z0-9_-]+\.gif)"', html)
    links = re.findall(rf'href="({base}/t/c/[A-Za-z0-9_-]+)"', html)
    text_links = re.findall(rf"{base}/t/c/[A-Za-z0-9_-]+", text)
    assert pixel is not None
    assert len(links) == 1
    assert len(text_links) == 1
    assert 'href="mailto:sales@acme.example"' in html
    return pixel.group(1), links[0]


def _fetch(url: str, agent: str | None, method: str = "GET") -> requests.Response:
    headers = {"User-Agent": agent} if agent else {"User-Agent": ""}
    return requests.request(method, url, headers=headers, allow_redirects=False, timeout=10)


def _assert_gif(reply: requests.Response, method: str = "GET") -> None:
    assert reply.status_code == 200
    assert reply.headers["content-type"] == "image/gif"
    assert reply.headers["cache-control"] == "no-store, no-cache, must-revalidate, private"
    if method == "GET":
        assert len(reply.content) == 43
        assert reply.content.startswith(b"GIF89a")


def _report(box: Mailbox, message_id: str) -> dict[str, Any]:
    report: dict[str, Any] = box.get(f"/v1/messages/{message_id}/tracking")
    return report


def _events(box: Mailbox, message_id: str) -> list[dict[str, Any]]:
    return [
        event
        for event in box.stack.published_events()
        if event["detail"].get("message_id") == message_id
    ]


def test_opens_and_clicks_are_counted_per_recipient_with_machines_apart(
    mailbox: Callable[..., Mailbox],
) -> None:
    box = mailbox(sync_start="1_month")
    message_id, thread_id = _synced_message(box)
    message = _tracked(box, message_id, thread_id)
    ann_pixel, ann_link = _urls(box, message, "ann@customer.test")
    bob_pixel, _ = _urls(box, message, "bob@customer.test")
    own_pixel, _ = _urls(box, message, box.user.email)
    box.stack.published_events()  # forget what the sync published

    _assert_gif(_fetch(ann_pixel, FIREFOX))
    _assert_gif(_fetch(ann_pixel, OUTLOOK))
    _assert_gif(_fetch(ann_pixel, GMAIL))
    _assert_gif(_fetch(ann_pixel, FIREFOX, "HEAD"), "HEAD")
    _assert_gif(_fetch(bob_pixel, "Mozilla/5.0"))  # Apple Mail Privacy Protection
    _assert_gif(_fetch(own_pixel, FIREFOX))  # the sender reading the copy
    for agent, method in ((FIREFOX, "GET"), (FIREFOX, "HEAD"), (SCANNER, "GET")):
        reply = _fetch(ann_link, agent, method)
        assert reply.status_code == 302
        assert reply.headers["location"] == PRICING
        assert reply.headers["cache-control"] == "no-store"
        assert reply.headers["referrer-policy"] == "no-referrer"

    report = _report(box, message_id)

    assert (report["tracked"], report["pixel"], report["links_tracked"]) == (True, True, True)
    opens = {o["recipient"]: o for o in report["opens"]}
    counts = {r: (o["human_count"], o["machine_count"], o["own_count"]) for r, o in opens.items()}
    assert counts == {
        "ann@customer.test": (2, 2, 0),
        "bob@customer.test": (0, 1, 0),
        box.user.email: (0, 0, 1),
    }
    ann = opens["ann@customer.test"]
    assert ann["first_at"] <= ann["first_human_at"] <= ann["last_at"]
    clicks = [
        (c["url"], c["recipient"], c["human_count"], c["machine_count"]) for c in report["clicks"]
    ]
    assert clicks == [(PRICING, "ann@customer.test", 1, 2)]
    events = _events(box, message_id)
    assert sorted(e["detail-type"] for e in events) == ["link.clicked", "message.opened"]
    for event in events:
        detail = event["detail"]
        assert detail["company_id"] == box.owner.company_id
        assert (detail["thread_id"], detail["recipient"]) == (thread_id, "ann@customer.test")
        assert "html" not in detail
        assert "subject" not in detail
    clicked = next(e for e in events if e["detail-type"] == "link.clicked")
    assert clicked["detail"]["url"] == PRICING


def test_tampered_tokens_get_404_without_location_and_bad_pixels_record_nothing(
    mailbox: Callable[..., Mailbox],
) -> None:
    box = mailbox(sync_start="1_month")
    message_id, thread_id = _synced_message(box)
    message = _tracked(box, message_id, thread_id)
    pixel, link = _urls(box, message, "ann@customer.test")
    token = link.rsplit("/", 1)[1]
    pixel_token = pixel.rsplit("/", 1)[1].removesuffix(".gif")
    flipped = token[:10] + ("A" if token[10] != "A" else "B") + token[11:]
    base = f"{box.stack.url}/t/c/"
    box.stack.published_events()

    for forged in (
        flipped,
        token[:-1],
        token[: len(token) // 2],
        token + "AA",
        pixel_token,  # an open token is not a click token
        "aHR0cHM6Ly9ldmlsLmV4YW1wbGUv",  # base64 of https://evil.example/
        "garbage",
    ):
        for method in ("GET", "HEAD"):
            reply = _fetch(base + forged, FIREFOX, method)
            assert reply.status_code == 404, (forged, method)
            assert "location" not in reply.headers
    for bad in (pixel_token[:-2], "garbage", token):
        _assert_gif(_fetch(f"{box.stack.url}/t/o/{bad}.gif", FIREFOX))

    report = _report(box, message_id)
    assert all(o["human_count"] == o["machine_count"] == 0 for o in report["opens"])
    assert report["clicks"] == []
    assert _events(box, message_id) == []


def test_a_click_within_seconds_of_sending_is_a_scanner_and_plain_text_has_no_pixel(
    mailbox: Callable[..., Mailbox],
) -> None:
    box = mailbox(sync_start="1_month")
    message_id, thread_id = _synced_message(box)
    message = _tracked(box, message_id, thread_id, sent_at=datetime.now(UTC), html=False)
    _, text = (
        current_runtime().tracking_service().instrument(message, "bob@customer.test", None, TEXT)
    )
    assert text is not None
    [link] = re.findall(rf"{re.escape(box.stack.url)}/t/c/[A-Za-z0-9_-]+", text)
    box.stack.published_events()

    reply = _fetch(link, FIREFOX)

    assert (reply.status_code, reply.headers["location"]) == (302, PRICING)
    report = _report(box, message_id)
    assert (report["pixel"], report["pixel_reason"]) == (False, "plain_text_message")
    assert report["opens"] == []
    [click] = report["clicks"]
    assert (click["recipient"], click["human_count"], click["machine_count"]) == (
        "bob@customer.test",
        0,
        1,
    )
    assert _events(box, message_id) == []


def test_tracking_is_read_like_the_message(mailbox: Callable[..., Mailbox]) -> None:
    box = mailbox(sync_start="1_month")
    message_id, thread_id = _synced_message(box)
    _tracked(box, message_id, thread_id)
    url = f"{box.stack.url}/v1/messages/{message_id}/tracking"
    colleague = f"colleague-{uuid.uuid4().hex[:6]}"
    current_runtime().directory().create(
        box.owner.model_copy(update={"role": "admin"}),
        User,
        UserCreate(id=colleague, name="Carl Colleague", email=f"{colleague}@demo.test"),
    )
    admin = box.stack.token(colleague, box.owner.company_id, "admin")
    stranger = box.stack.token("owner-1", f"other-{uuid.uuid4().hex[:6]}", "admin")

    assert requests.get(url, timeout=10).status_code == 401
    # a private thread is the owner's alone, admins included
    assert (
        requests.get(url, headers={"Authorization": f"Bearer {admin}"}, timeout=10).status_code
        == 404
    )
    assert (
        requests.get(url, headers={"Authorization": f"Bearer {stranger}"}, timeout=10).status_code
        == 404
    )
    missing = requests.get(
        f"{box.stack.url}/v1/messages/no-such-message/tracking", headers=box.headers, timeout=10
    )
    assert missing.status_code == 404
    assert _report(box, message_id)["tracked"] is True


def test_an_untracked_message_says_so(mailbox: Callable[..., Mailbox]) -> None:
    box = mailbox(sync_start="1_month")
    message_id, _ = _synced_message(box)

    assert _report(box, message_id) == {
        "message_id": message_id,
        "tracked": False,
        "pixel": False,
        "pixel_reason": "not_tracked",
        "links_tracked": False,
        "opens": [],
        "clicks": [],
    }
