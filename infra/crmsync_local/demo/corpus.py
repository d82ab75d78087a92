"""Deterministic B2B sales mailbox for the demo and the tests.

The same ``seed`` and ``now`` always yield byte-identical messages, so tests can pin
behaviour and the demo can be re-seeded. The mailbox mixes the shapes a real sync engine
meets: threaded replies and forwards, legacy charsets, HTML with remote content, inline
images, attachments, calendar invites, and bulk mail from non-contacts.
"""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

from crmsync_local.demo import content as c
from crmsync_local.demo.mime import Attachment, MailSpec, make_pdf, make_png, render_html
from crmsync_local.demo.model import (
    DEFAULT_NOW,
    DEFAULT_OWNER,
    INBOX,
    SENT,
    DemoDeal,
    DemoMailbox,
    DemoMessage,
    DemoOrganization,
    DemoPerson,
)
from crmsync_local.demo.threads import HINTS, ThreadWriter

__all__ = [
    "DEFAULT_NOW",
    "DEFAULT_OWNER",
    "INBOX",
    "SENT",
    "DemoDeal",
    "DemoMailbox",
    "DemoMessage",
    "DemoOrganization",
    "DemoPerson",
    "build_mailbox",
]

NEWSLETTER_SHARE = 0.15
RECENT = timedelta(days=3)


def build_mailbox(
    owner_email: str = DEFAULT_OWNER,
    seed: int = 7,
    threads: int = 120,
    now: datetime | None = None,
    owner_name: str = "Alex Morgan",
) -> DemoMailbox:
    """Generate the mailbox; ``now`` anchors the ~14-month history (naive means UTC)."""
    anchor = DEFAULT_NOW if now is None else now
    if anchor.tzinfo is None:
        anchor = anchor.replace(tzinfo=UTC)
    anchor = anchor.astimezone(UTC).replace(microsecond=0)
    deals = _deals(seed)
    writer = ThreadWriter((owner_name, owner_email), seed, anchor, deals)
    news = set(writer.rng.sample(range(threads), round(threads * NEWSLETTER_SHARE)))
    hints = iter(HINTS)
    sent_news = 0
    for index in range(threads):
        key = f"thread-{index:03d}"
        if index in news:
            _newsletter(writer, key, sent_news)
            sent_news += 1
        else:
            writer.customer_thread(key, next(hints, None))
    return DemoMailbox(
        owner_email=owner_email,
        owner_name=owner_name,
        now=anchor,
        messages=_finalise(writer),
        people=[
            DemoPerson(p.name, p.emails, p.org.name, p.title, p.org.locale) for p in writer.contacts
        ],
        organizations=[
            DemoOrganization(o.name, o.domain, o.locale, o.industry, o.city) for o in c.ORGS
        ],
        deals=deals,
    )


def _deals(seed: int) -> list[DemoDeal]:
    """One plan deal per company (sometimes an add-on), from a seed-derived stream."""
    rng = random.Random(f"crmsync-demo-deals-{seed}")  # noqa: S311 - demo data
    deals = []
    for org in c.ORGS:
        seats = rng.choice((5, 10, 15, 25, 40, 60, 100))
        price = rng.choice((29, 39, 49, 59))
        currency = "USD" if org.locale == "en" else "EUR"
        status = rng.choices(("open", "won", "lost"), weights=(5, 3, 2))[0]
        contact = org.people[0][2][0]
        deals.append(
            DemoDeal(
                f"{org.name}: Professional plan, {seats} seats",
                seats * price * 12,
                status,
                contact,
                org.name,
                currency,
            )
        )
        if rng.random() < 0.4:
            deals.append(
                DemoDeal(
                    f"{org.name}: onboarding package",
                    rng.randrange(2500, 9000, 250),
                    rng.choice(("open", "won")),
                    contact,
                    org.name,
                    currency,
                )
            )
    return deals


def _newsletter(writer: ThreadWriter, key: str, index: int) -> None:
    """Bulk mail from a non-contact: HTML-heavy, tracked, with List-* headers."""
    rng = writer.rng
    name, address, list_id, subjects, bodies = c.NEWSLETTERS[index % len(c.NEWSLETTERS)]
    date = writer.random_date(min_age=600)
    ctx = {"num": str(rng.randint(2, 99)), "name": rng.choice(writer.contacts).name}
    subject = rng.choice(subjects).format_map(ctx)
    domain = address.partition("@")[2]
    token = f"{rng.getrandbits(64):016x}"
    unsubscribe = f"https://{domain}/unsubscribe/{token}"
    paragraphs = [
        *bodies,
        f"You receive this email because you subscribed with {writer.owner[1]}.",
        f"Unsubscribe: {unsubscribe}",
    ]
    table = [
        ["Today", "Link"],
        *([f"Story {i}", f"https://{domain}/s/{token[:6]}{i}"] for i in range(1, 4)),
    ]
    text = "\n\n".join(paragraphs) + "\n\n" + "\n".join(f"{a}: {b}" for a, b in table[1:]) + "\n"
    mid = writer.message_id(date, address)
    cid = f"brand.{token[:8]}@{domain}"
    related = rng.random() < 0.4
    html = render_html(
        paragraphs, [name], charset="utf-8", table=table, logo_cid=cid if related else None,
        tracking_url=f"https://{domain}/o/{token}.gif", script=rng.random() < 0.6,
    )  # fmt: skip
    attachments = []
    if "billing" in address:
        lines = [f"Account: {writer.owner[1]}", "Compute: 412.30 EUR", "Storage: 37.90 EUR"]
        attachments.append(
            Attachment(
                f"invoice-{token[:8]}.pdf",
                make_pdf("CloudHost invoice", lines),
                "application",
                "pdf",
            )
        )
    headers = [
        ("List-Id", f"{name} <{list_id}>"),
        ("List-Unsubscribe", f"<{unsubscribe}>, <mailto:unsubscribe@{domain}?subject={token}>"),
        ("List-Unsubscribe-Post", "List-Unsubscribe=One-Click"),
        ("Precedence", "bulk"),
    ]
    if "noreply" in address.replace("-", "") or "notifications" in address:
        headers.append(("Auto-Submitted", "auto-generated"))
    spec = MailSpec(
        sender=(name, address), to=[writer.owner], subject=subject,
        date=date.astimezone(UTC), message_id=mid, text=text, html=html,
        inline_png=(cid, make_png(24, 8, (230, 90, 20))) if related else None,
        attachments=attachments, extra_headers=headers,
    )  # fmt: skip
    writer.emit(spec, key, None, bulk=True)


def _finalise(writer: ThreadWriter) -> list[DemoMessage]:
    """Sort by date and assign IMAP flags: read when older, answered when the owner replied."""
    answered = {d.parent_id for d in writer.drafts if d.from_owner and d.parent_id}
    rng = writer.rng
    out = []
    for draft in sorted(writer.drafts, key=lambda d: (d.date, d.message_id)):
        if draft.folder == SENT:
            flags: list[str] = ["\\Seen"]
        else:
            flags = []
            old = writer.now - draft.date > RECENT
            if rng.random() < (0.97 if old else 0.35) * (0.8 if draft.bulk else 1.0):
                flags.append("\\Seen")
            if draft.message_id in answered:
                flags.append("\\Answered")
            if not draft.bulk and rng.random() < 0.05:
                flags.append("\\Flagged")
        out.append(
            DemoMessage(
                draft.folder,
                draft.raw,
                draft.date,
                tuple(sorted(flags)),
                draft.message_id,
                draft.thread_key,
            )
        )
    return out
