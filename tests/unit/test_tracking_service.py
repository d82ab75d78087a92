"""TrackingService (SPEC T1-T4) with an in-memory store: instrumenting, recording, events,
and the report's aggregation."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import pytest

from crmsync.tracking.models import TrackedMessage
from crmsync.tracking.service import TrackingNotConfigured, TrackingService
from crmsync.tracking.tokens import TokenSigner
from tests.unit.fakes import FakeClock, FakeEventPublisher
from tests.unit.fakes_tracking import FakeTrackingStore

SENT = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
BASE = "https://t.crmsync.example"
HUMAN = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 Chrome/124.0 Safari/537.36"
GMAIL = "Mozilla/5.0 (Windows NT 5.1; rv:11.0) Gecko Firefox/11.0 (via ggpht.com GoogleImageProxy)"
SIGNER = TokenSigner({"k1": b"0123456789abcdef0123456789abcdef"}, "k1")
HTML = '<html><body><p><a href="https://acme.example/pricing">Prices</a></p></body></html>'
TEXT = "Prices: https://acme.example/pricing\n"


def message(**changes: object) -> TrackedMessage:
    fields: dict[str, object] = {
        "company_id": "acme",
        "message_key": "m-1",
        "account_id": "acc-1",
        "thread_id": "t-1",
        "owner_user_id": "u-1",
        "sender_email": "Alex@Acme.example",
        "recipients": ["Ann@Customer.example", "bob@customer.example"],
        "sent_at": SENT,
        "opens": True,
        "clicks": True,
        "html": True,
    }
    fields.update(changes)
    return TrackedMessage.model_validate(fields)


class World:
    def __init__(self, base_url: str | None = BASE) -> None:
        self.store = FakeTrackingStore()
        self.events = FakeEventPublisher()
        self.clock = FakeClock(SENT + timedelta(minutes=1))
        self.service = TrackingService(
            self.store, lambda: SIGNER, self.events, self.clock.now, base_url=base_url
        )

    def pixel_token(self, recipient: str, msg: TrackedMessage | None = None) -> str:
        url = self.service.open_url(msg or message(), recipient)
        return url.removeprefix(f"{BASE}/t/o/").removesuffix(".gif")

    def click_token(self, recipient: str, url: str, msg: TrackedMessage | None = None) -> str:
        return self.service.click_url(msg or message(), recipient, url).removeprefix(f"{BASE}/t/c/")


@pytest.fixture
def world() -> World:
    w = World()
    w.service.register(message())
    return w


# -- instrumenting ----------------------------------------------------------------------------


def test_instrument_puts_pixel_and_tracked_links_for_one_recipient(world: World) -> None:
    html, text = world.service.instrument(message(), "ann@customer.example", HTML, TEXT)

    assert html is not None
    assert text is not None
    pixel = re.search(r'<img src="([^"]+)" width="1" height="1"', html)
    assert pixel is not None
    assert pixel.group(1).startswith(f"{BASE}/t/o/")
    assert pixel.group(1).endswith(".gif")
    token = pixel.group(1).removeprefix(f"{BASE}/t/o/").removesuffix(".gif")
    payload = SIGNER.verify(token)
    assert payload is not None
    assert (payload.kind, payload.recipient, payload.message_key) == (
        "open",
        "ann@customer.example",
        "m-1",
    )
    links = re.findall(r'href="([^"]+)"', html) + re.findall(r"https://\S+", text)
    assert len(links) == 2
    for link in links:
        click = SIGNER.verify(link.removeprefix(f"{BASE}/t/c/"))
        assert click is not None
        assert (click.url, click.recipient) == (
            "https://acme.example/pricing",
            "ann@customer.example",
        )


def test_plain_text_message_gets_no_pixel_but_tracked_links(world: World) -> None:
    plain = message(html=False)

    html, text = world.service.instrument(plain, "ann@customer.example", None, TEXT)

    assert html is None
    assert text is not None
    assert text.startswith(f"Prices: {BASE}/t/c/")


def test_opens_only_leaves_links_alone_and_clicks_only_has_no_pixel(world: World) -> None:
    opens_html, opens_text = world.service.instrument(
        message(clicks=False), "ann@customer.example", HTML, TEXT
    )
    clicks_html, _ = world.service.instrument(
        message(opens=False), "ann@customer.example", HTML, TEXT
    )

    assert opens_html is not None
    assert 'href="https://acme.example/pricing"' in opens_html
    assert "/t/o/" in opens_html
    assert opens_text == TEXT
    assert clicks_html is not None
    assert "/t/o/" not in clicks_html
    assert "/t/c/" in clicks_html


def test_untracked_message_is_left_alone(world: World) -> None:
    untracked = message(opens=False, clicks=False)

    assert world.service.instrument(untracked, "ann@customer.example", HTML, TEXT) == (HTML, TEXT)


def test_instrumenting_without_a_base_url_says_what_to_set() -> None:
    assert World().service.configured
    assert not World(base_url=None).service.configured
    with pytest.raises(TrackingNotConfigured, match="CRMSYNC_TRACKING_BASE_URL"):
        World(base_url=None).service.instrument(message(), "ann@customer.example", HTML, TEXT)


# -- recording --------------------------------------------------------------------------------


def test_first_human_open_publishes_message_opened_once(world: World) -> None:
    token = world.pixel_token("ann@customer.example")

    first = world.service.record_open(token, HUMAN, "203.0.113.7")
    world.clock.advance(timedelta(minutes=1))
    second = world.service.record_open(token, HUMAN, "203.0.113.7")

    assert first is not None
    assert second is not None
    assert (first.human, second.human) == (True, True)
    assert [e.detail_type for e in world.events.events] == ["message.opened"]
    event = world.events.events[0]
    assert event.company_id == "acme"
    assert event.detail == {
        "message_id": "m-1",
        "thread_id": "t-1",
        "account_id": "acc-1",
        "owner_user_id": "u-1",
        "recipient": "ann@customer.example",
        "opened_at": first.at.isoformat(),
    }


def test_machine_and_own_opens_publish_nothing(world: World) -> None:
    world.service.record_open(world.pixel_token("ann@customer.example"), GMAIL, None)
    world.service.record_open(world.pixel_token("ann@customer.example"), "Mozilla/5.0", None)
    own = world.service.record_open(world.pixel_token("alex@acme.example"), HUMAN, None)

    assert own is not None
    assert own.own
    assert world.events.events == []
    assert world.store.first_opens == {}


def test_each_human_click_publishes_link_clicked_and_returns_the_url(world: World) -> None:
    token = world.click_token("bob@customer.example", "https://acme.example/demo?x=1")

    urls = [world.service.record_click(token, HUMAN, "198.51.100.1") for _ in range(2)]
    head = world.service.record_click(token, HUMAN, None, method="HEAD")

    assert urls == ["https://acme.example/demo?x=1"] * 2
    assert head == "https://acme.example/demo?x=1"  # a HEAD is answered, but counted apart
    assert [e.detail_type for e in world.events.events] == ["link.clicked", "link.clicked"]
    assert world.events.events[0].detail["url"] == "https://acme.example/demo?x=1"
    assert world.events.events[0].detail["recipient"] == "bob@customer.example"


def test_click_right_after_sending_is_a_scanner(world: World) -> None:
    world.clock.set(SENT + timedelta(seconds=2))
    token = world.click_token("ann@customer.example", "https://acme.example/")

    assert world.service.record_click(token, HUMAN, None) == "https://acme.example/"
    assert world.events.events == []
    hit = world.store.hits[("acme", "m-1")][0]
    assert (hit.ua_class, hit.machine) == ("too_soon", True)


def test_bad_tokens_record_nothing_and_redirect_nowhere(world: World) -> None:
    open_token = world.pixel_token("ann@customer.example")
    click_token = world.click_token("ann@customer.example", "https://acme.example/")

    assert world.service.record_open("garbage", HUMAN, None) is None
    assert world.service.record_open(click_token, HUMAN, None) is None  # wrong kind
    assert world.service.record_click(open_token, HUMAN, None) is None
    assert world.service.record_click(click_token[:-2], HUMAN, None) is None
    assert world.store.hits == {}


def test_unregistered_message_is_not_recorded_or_redirected(world: World) -> None:
    other = message(message_key="never-registered")
    token = world.click_token("ann@customer.example", "https://acme.example/", other)

    assert world.service.record_click(token, HUMAN, None) is None
    assert (
        world.service.record_open(world.pixel_token("ann@customer.example", other), HUMAN, None)
        is None
    )
    assert world.store.hits == {}


def test_ip_is_stored_only_as_a_keyed_hash(world: World) -> None:
    hit = world.service.record_open(world.pixel_token("ann@customer.example"), HUMAN, "203.0.113.7")

    assert hit is not None
    assert hit.ip_hash is not None
    assert "203.0.113.7" not in hit.model_dump_json()
    assert hit.ip_hash == SIGNER.ip_hash("acme", "203.0.113.7")
    assert hit.ip_hash != SIGNER.ip_hash("globex", "203.0.113.7")


# -- the report -------------------------------------------------------------------------------


def test_report_counts_per_recipient_and_link_human_machine_and_own_apart(world: World) -> None:
    ann_open = world.pixel_token("ann@customer.example")
    alex_open = world.pixel_token("alex@acme.example")
    pricing = world.click_token("ann@customer.example", "https://acme.example/pricing")
    demo = world.click_token("ann@customer.example", "https://acme.example/demo")
    bob_pricing = world.click_token("bob@customer.example", "https://acme.example/pricing")

    world.service.record_open(ann_open, GMAIL, None)  # machine, 09:01
    world.clock.advance(timedelta(minutes=1))
    world.service.record_open(ann_open, HUMAN, None)  # human, 09:02
    world.clock.advance(timedelta(minutes=1))
    world.service.record_open(ann_open, HUMAN, None)  # human, 09:03
    world.service.record_open(alex_open, HUMAN, None)  # own
    world.service.record_click(pricing, HUMAN, None)
    world.service.record_click(pricing, "Proofpoint URL Defense", None)
    world.service.record_click(demo, HUMAN, None, method="HEAD")
    world.service.record_click(bob_pricing, HUMAN, None)

    report = world.service.report("acme", "m-1").model_dump(mode="json")

    assert (
        report["tracked"],
        report["pixel"],
        report["pixel_reason"],
        report["links_tracked"],
    ) == (
        True,
        True,
        None,
        True,
    )
    opens = {o["recipient"]: o for o in report["opens"]}
    assert set(opens) == {"ann@customer.example", "bob@customer.example", "alex@acme.example"}
    ann = opens["ann@customer.example"]
    assert (ann["human_count"], ann["machine_count"], ann["own_count"]) == (2, 1, 0)
    assert ann["first_at"] == "2026-03-02T09:01:00Z"
    assert ann["last_at"] == "2026-03-02T09:03:00Z"
    assert ann["first_human_at"] == "2026-03-02T09:02:00Z"
    bob = opens["bob@customer.example"]
    assert (bob["human_count"], bob["machine_count"], bob["first_at"]) == (0, 0, None)
    assert opens["alex@acme.example"]["own_count"] == 1
    clicks = [
        (c["url"], c["recipient"], c["human_count"], c["machine_count"]) for c in report["clicks"]
    ]
    assert clicks == [
        ("https://acme.example/demo", "ann@customer.example", 0, 1),
        ("https://acme.example/pricing", "ann@customer.example", 1, 1),
        ("https://acme.example/pricing", "bob@customer.example", 1, 0),
    ]


def test_report_of_a_plain_text_message_says_why_there_is_no_pixel() -> None:
    w = World()
    w.service.register(message(html=False))

    report = w.service.report("acme", "m-1")

    assert (report.pixel, report.pixel_reason, report.links_tracked) == (
        False,
        "plain_text_message",
        True,
    )
    assert report.opens == []


def test_report_of_an_untracked_message() -> None:
    report = World().service.report("acme", "m-404")

    assert report.model_dump() == {
        "message_id": "m-404",
        "tracked": False,
        "pixel": False,
        "pixel_reason": "not_tracked",
        "links_tracked": False,
        "opens": [],
        "clicks": [],
    }
