"""Open and click tracking (SPEC T1-T4): register, instrument, record, report.

The sender registers a message before sending it and instruments each recipient's copy;
the public tracking function records pixel fetches and link follows; the API reports them
to whoever may read the message. The company and message of a hit come only from a token
this service signed, never from the request.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Protocol

from crmsync.errors import CrmSyncError
from crmsync.models.events import DomainEvent
from crmsync.tracking.classify import DEFAULT_SCANNER_WINDOW, HitKind, classify_hit
from crmsync.tracking.html import instrument_html, instrument_text
from crmsync.tracking.models import (
    ClickSummary,
    OpenSummary,
    PixelReason,
    TrackedMessage,
    TrackingHit,
    TrackingReport,
    normalise_address,
)
from crmsync.tracking.tokens import TokenPayload, TokenSigner

if TYPE_CHECKING:
    from crmsync.ports import EventPublisher

OPEN_PATH = "/t/o/"
CLICK_PATH = "/t/c/"
MAX_USER_AGENT = 512


class TrackingNotConfigured(CrmSyncError):
    """No public base URL for tracking links (CRMSYNC_TRACKING_BASE_URL)."""

    title = "Tracking is not configured"


class TrackingStoreError(RuntimeError):
    """The store could not be reached; the adapter wraps its client's errors in this."""


class TrackingStore(Protocol):
    def register(self, message: TrackedMessage) -> None: ...

    def registered(self, company_id: str, message_key: str) -> TrackedMessage | None: ...

    def add_hit(self, company_id: str, message_key: str, hit: TrackingHit) -> None: ...

    def mark_first_open(
        self, company_id: str, message_key: str, recipient: str, at: datetime
    ) -> bool:
        """True for the one caller that marks this recipient's first human open."""
        ...

    def partition(
        self, company_id: str, message_key: str
    ) -> tuple[TrackedMessage | None, list[TrackingHit]]:
        """The registered message and every hit of it (one Query of its partition)."""
        ...


class TrackingService:
    def __init__(
        self,
        store: TrackingStore,
        signer: Callable[[], TokenSigner],
        events: EventPublisher,
        now: Callable[[], datetime],
        *,
        base_url: str | None,
        scanner_window: timedelta = DEFAULT_SCANNER_WINDOW,
    ) -> None:
        self._store = store
        self._signer = signer
        self._events = events
        self._now = now
        self._base_url = base_url.rstrip("/") if base_url else None
        self._scanner_window = scanner_window

    # -- the sender's side -------------------------------------------------------------------
    @property
    def configured(self) -> bool:
        """Whether links can be built (a public base URL is set); `instrument`,
        `open_url` and `click_url` raise TrackingNotConfigured otherwise."""
        return self._base_url is not None

    def register(self, message: TrackedMessage) -> None:
        """Called before sending: hits of an unregistered message are not recorded and its
        links do not redirect."""
        self._store.register(message)

    def open_url(self, message: TrackedMessage, recipient: str) -> str:
        token = self._signer().open_token(message.company_id, message.message_key, recipient)
        return f"{self._base()}{OPEN_PATH}{token}.gif"

    def click_url(self, message: TrackedMessage, recipient: str, url: str) -> str:
        token = self._signer().click_token(message.company_id, message.message_key, recipient, url)
        return f"{self._base()}{CLICK_PATH}{token}"

    def instrument(
        self, message: TrackedMessage, recipient: str, html: str | None, text: str | None
    ) -> tuple[str | None, str | None]:
        """One recipient's bodies: the pixel in the HTML when opens are tracked (a plain-text
        message gets none), every http(s) link of both bodies rewritten when clicks are."""
        recipient = normalise_address(recipient)
        if not (message.opens or message.clicks):
            return html, text
        base = self._base()
        signer = self._signer()

        def click(url: str) -> str:
            token = signer.click_token(message.company_id, message.message_key, recipient, url)
            return f"{base}{CLICK_PATH}{token}"

        tracked_prefix = f"{base}/t/"
        if html is not None:
            pixel = self.open_url(message, recipient) if message.pixel else None
            html = instrument_html(
                html,
                open_url=pixel,
                click_url=click if message.clicks else None,
                tracked_prefix=tracked_prefix,
            )
        if text is not None and message.clicks:
            text = instrument_text(text, click, tracked_prefix=tracked_prefix)
        return html, text

    # -- the public side ---------------------------------------------------------------------
    def record_open(
        self, token: str, user_agent: str | None, ip: str | None, method: str = "GET"
    ) -> TrackingHit | None:
        """Record a pixel fetch; None (and nothing recorded) for a bad token or a message
        that was never registered. The first human open publishes `message.opened`."""
        found = self._verified(token, "open")
        if found is None:
            return None
        payload, message = found
        hit = self._hit(payload, message, user_agent, ip, method)
        self._store.add_hit(message.company_id, message.message_key, hit)
        if hit.human and self._store.mark_first_open(
            message.company_id, message.message_key, hit.recipient, hit.at
        ):
            self._publish("message.opened", message, hit)
        return hit

    def record_click(
        self, token: str, user_agent: str | None, ip: str | None, method: str = "GET"
    ) -> str | None:
        """The URL to redirect to, or None (404, no redirect) unless the token verifies and
        its message is registered. Every human click publishes `link.clicked`."""
        found = self._verified(token, "click")
        if found is None:
            return None
        payload, message = found
        hit = self._hit(payload, message, user_agent, ip, method)
        self._store.add_hit(message.company_id, message.message_key, hit)
        if hit.human:
            self._publish("link.clicked", message, hit)
        return payload.url

    # -- reading -----------------------------------------------------------------------------
    def report(self, company_id: str, message_key: str) -> TrackingReport:
        message, hits = self._store.partition(company_id, message_key)
        if message is None:
            return TrackingReport(
                message_id=message_key,
                tracked=False,
                pixel=False,
                pixel_reason="not_tracked",
                links_tracked=False,
            )
        reason: PixelReason | None = None
        if not message.opens:
            reason = "opens_not_tracked"
        elif not message.html:
            reason = "plain_text_message"
        return TrackingReport(
            message_id=message_key,
            tracked=message.opens or message.clicks,
            pixel=message.pixel,
            pixel_reason=reason,
            links_tracked=message.clicks,
            opens=_open_summaries(message, hits),
            clicks=_click_summaries(hits),
        )

    # -- plumbing ----------------------------------------------------------------------------
    def _base(self) -> str:
        if self._base_url is None:
            raise TrackingNotConfigured(
                "Set CRMSYNC_TRACKING_BASE_URL (template parameter TrackingBaseUrl) to the "
                "public URL of the tracking routes."
            )
        return self._base_url

    def _verified(self, token: str, kind: HitKind) -> tuple[TokenPayload, TrackedMessage] | None:
        payload = self._signer().verify(token)
        if payload is None or payload.kind != kind:
            return None
        message = self._store.registered(payload.company_id, payload.message_key)
        if message is None:
            return None
        return payload, message

    def _hit(
        self,
        payload: TokenPayload,
        message: TrackedMessage,
        user_agent: str | None,
        ip: str | None,
        method: str,
    ) -> TrackingHit:
        at = self._now()
        recipient = normalise_address(payload.recipient)
        verdict = classify_hit(
            payload.kind,
            user_agent=user_agent,
            method=method,
            own=recipient == message.sender_email,
            sent_at=message.sent_at,
            at=at,
            scanner_window=self._scanner_window,
        )
        return TrackingHit(
            kind=payload.kind,
            recipient=recipient,
            url=payload.url,
            at=at,
            ua_class=verdict.ua_class,
            machine=verdict.machine,
            own=verdict.own,
            reason=verdict.reason,
            method=method.upper(),
            ip_hash=self._signer().ip_hash(message.company_id, ip),
            user_agent=user_agent[:MAX_USER_AGENT] if user_agent else None,
        )

    def _publish(self, detail_type: str, message: TrackedMessage, hit: TrackingHit) -> None:
        detail: dict[str, object] = {
            "message_id": message.message_key,
            "thread_id": message.thread_id,
            "account_id": message.account_id,
            "owner_user_id": message.owner_user_id,
            "recipient": hit.recipient,
        }
        if hit.kind == "click":
            detail["url"] = hit.url
        detail[f"{'opened' if hit.kind == 'open' else 'clicked'}_at"] = hit.at.isoformat()
        self._events.publish(
            [
                DomainEvent(
                    detail_type=detail_type,
                    company_id=message.company_id,
                    occurred_at=hit.at,
                    detail=detail,
                )
            ]
        )


def _count(summary: OpenSummary | ClickSummary, hit: TrackingHit) -> None:
    if hit.own:
        summary.own_count += 1
    elif hit.machine:
        summary.machine_count += 1
    else:
        summary.human_count += 1
    summary.first_at = hit.at if summary.first_at is None else min(summary.first_at, hit.at)
    summary.last_at = hit.at if summary.last_at is None else max(summary.last_at, hit.at)


def _open_summaries(message: TrackedMessage, hits: Iterable[TrackingHit]) -> list[OpenSummary]:
    summaries = {r: OpenSummary(recipient=r) for r in message.recipients} if message.pixel else {}
    for hit in hits:
        if hit.kind != "open":
            continue
        summary = summaries.setdefault(hit.recipient, OpenSummary(recipient=hit.recipient))
        _count(summary, hit)
        if hit.human:
            first, last = summary.first_human_at, summary.last_human_at
            summary.first_human_at = hit.at if first is None else min(first, hit.at)
            summary.last_human_at = hit.at if last is None else max(last, hit.at)
    return list(summaries.values())


def _click_summaries(hits: Iterable[TrackingHit]) -> list[ClickSummary]:
    summaries: dict[tuple[str, str], ClickSummary] = {}
    for hit in hits:
        if hit.kind != "click" or hit.url is None:
            continue
        key = (hit.url, hit.recipient)
        summary = summaries.setdefault(key, ClickSummary(url=hit.url, recipient=hit.recipient))
        _count(summary, hit)
    return sorted(summaries.values(), key=lambda s: (s.url, s.recipient))
