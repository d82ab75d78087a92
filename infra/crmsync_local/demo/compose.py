"""Message composition for the demo mailbox: headers, charsets, MIME shape, attachments.

Owns the seeded ``random.Random`` so that every decision (which charset, which MIME shape,
which attachment) happens in a fixed order and the output is reproducible byte for byte.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from zoneinfo import ZoneInfo

from crmsync_local.demo import content as c
from crmsync_local.demo.mime import (
    Attachment,
    MailSpec,
    Person,
    make_csv,
    make_invite,
    make_pdf,
    make_png,
    render,
    render_html,
    text_table,
)
from crmsync_local.demo.model import INBOX, SENT, DemoDeal

HISTORY_DAYS = 425  # ~14 months
OWNER_UTC_OFFSET = 1


@dataclass(frozen=True)
class Contact:
    name: str
    greet: str
    emails: tuple[str, ...]
    title: str
    org: c.OrgSpec


@dataclass
class Draft:
    folder: str
    raw: bytes
    date: datetime
    message_id: str
    thread_key: str
    parent_id: str | None
    from_owner: bool
    bulk: bool = False


@dataclass
class Posted:
    """What a reply needs to know about its parent."""

    message_id: str
    references: list[str]
    date: datetime
    sender: Person
    subject: str
    text: str
    from_owner: bool


@dataclass
class Thread:
    key: str
    org: c.OrgSpec
    locale: c.Locale
    primary: Contact
    colleague: Contact | None
    internal: Person | None
    topic: str
    ctx: dict[str, str]
    force: set[str] = field(default_factory=set)


class Composer:
    """Renders and records messages into ``drafts``; flags are assigned later by the caller."""

    def __init__(self, owner: Person, seed: int, now: datetime, deals: list[DemoDeal]) -> None:
        self.rng = random.Random(seed)  # noqa: S311 - deterministic demo data, not security
        self.owner = owner
        domain = owner[1].partition("@")[2]
        self.colleagues = [(name, f"{local}@{domain}") for name, local in c.INTERNAL_COLLEAGUES]
        self.now = now
        self.deals = deals
        self.ids: set[str] = set()
        self.drafts: list[Draft] = []
        self.contacts = [
            Contact(name, greet, emails, title, org)
            for org in c.ORGS
            for name, greet, emails, title in org.people
        ]

    def random_date(self, min_age: int = 6 * 3600) -> datetime:
        """A working-hours moment in the mailbox history, at least ``min_age`` seconds ago."""
        day = self.now - timedelta(days=self.rng.randint(0, HISTORY_DAYS))
        start = day.replace(hour=6, minute=0, second=0) + timedelta(
            seconds=self.rng.randint(0, 11 * 3600)
        )
        latest = self.now - timedelta(seconds=min_age)
        return start if start <= latest else latest - timedelta(seconds=self.rng.randint(0, 3600))

    def emit(
        self, spec: MailSpec, thread_key: str, parent_id: str | None, *, bulk: bool = False
    ) -> bytes:
        """Render ``spec`` and record it; the owner's own mail goes to Sent."""
        raw = render(spec)
        from_owner = spec.sender[1] == self.owner[1]
        self.drafts.append(
            Draft(
                SENT if from_owner else INBOX,
                raw,
                spec.date.astimezone(self.now.tzinfo),
                spec.message_id,
                thread_key,
                parent_id,
                from_owner,
                bulk,
            )
        )
        return raw

    def message_id(self, date: datetime, address: str) -> str:
        domain = address.partition("@")[2]
        if address == self.owner[1]:
            domain = f"mail.{domain}"
        while True:
            mid = f"<{date:%Y%m%d%H%M%S}.{self.rng.getrandbits(48):012x}@{domain}>"
            if mid not in self.ids:
                self.ids.add(mid)
                return mid

    def _subject(self, thread: Thread, parent: Posted | None, locale: c.Locale) -> str:
        if parent is None:
            pool = locale.subjects.get(thread.topic) or c.EN_SUBJECTS[thread.topic]
            return self.rng.choice(pool).format_map(thread.ctx)
        base = parent.subject
        prefix = locale.reply_prefix
        if base.lower().startswith(("re:", "re :", prefix.strip().lower())):
            return base
        return prefix + base

    def _quote(self, parent: Posted | None, locale: c.Locale, offset: int) -> str:
        """Attribution line plus the parent's text, in the writer's language and time zone."""
        if parent is None:
            return ""
        when = parent.date.astimezone(timezone(timedelta(hours=offset)))
        line = locale.wrote.format(
            date=when.strftime(c.DATE_FORMATS[locale.code]),
            sender=f"{parent.sender[0]} <{parent.sender[1]}>",
        )
        quoted = "\n".join(f"> {x}" if x else ">" for x in parent.text.splitlines()[:80])
        return f"\n\n{line}\n{quoted}"

    # -- plumbing ------------------------------------------------------------------------

    def _post(
        self,
        thread: Thread,
        parent: Posted | None,
        date: datetime,
        sender: Person,
        to: list[Person],
        cc: list[Person],
        subject: str,
        paragraphs: list[str],
        signature: list[str],
        locale: c.Locale,
        *,
        html_p: float,
        table: list[list[str]] | None = None,
        attachments: list[Attachment] | None = None,
        tracking: bool = False,
        appendix: str = "",
    ) -> Posted:
        rng = self.rng
        from_owner = sender[1] == self.owner[1]
        offset = OWNER_UTC_OFFSET if from_owner else locale.utc_offset_hours
        quote = self._quote(parent, locale, offset)
        text = "\n\n".join(paragraphs)
        if table:
            text += "\n\n" + text_table(table)
        if signature:
            text += "\n-- \n" + "\n".join(signature)
        if appendix:
            text += "\n\n" + appendix
        text += quote + "\n"
        related = "related" in thread.force
        thread.force.discard("related")
        want_html = related or rng.random() < html_p
        related = want_html and (related or rng.random() < 0.25)
        charset = (
            "utf-8" if from_owner else self._charset(thread, locale, [subject, sender[0], text])
        )
        mid = self.message_id(date, sender[1])
        html = None
        inline = None
        if want_html:
            cid = f"logo.{mid[1:-1].split('@')[0]}@{sender[1].partition('@')[2]}"
            tracker = f"https://t.salesmail.example/open/{rng.getrandbits(64):016x}.gif"
            html = render_html(
                paragraphs, signature, charset=charset, table=table,
                logo_cid=cid if related else None,
                tracking_url=tracker if tracking or rng.random() < 0.2 else None,
                script=rng.random() < 0.1, quoted=quote.strip() or None,
            )  # fmt: skip
            if related:
                shade = sum(map(ord, sender[1])) % 200
                inline = (cid, make_png(16, 16, (shade, 80, 255 - shade)))
        extra = []
        if not from_owner:
            extra.append(("Content-Language", c.CONTENT_LANGUAGE[locale.code]))
            mailer = rng.choice(c.MAILERS)
            if mailer:
                extra.append(("X-Mailer", mailer))
        references = [*parent.references, parent.message_id] if parent else []
        cte = None if from_owner else rng.choice((None, None, "quoted-printable", "base64"))
        spec = MailSpec(
            sender=sender, to=to, cc=cc, subject=subject,
            date=date.astimezone(timezone(timedelta(hours=offset))), message_id=mid, text=text,
            in_reply_to=parent.message_id if parent else None, references=references, html=html,
            inline_png=inline, attachments=attachments or [], charset=charset, cte=cte,
            extra_headers=extra,
        )  # fmt: skip
        self.emit(spec, thread.key, parent.message_id if parent else None)
        return Posted(mid, references, date, sender, subject, text, from_owner)

    def _charset(self, thread: Thread, locale: c.Locale, texts: list[str]) -> str:
        """Pick the sender's legacy charset when the text fits it, else UTF-8."""
        forced = locale.code in thread.force
        thread.force.discard(locale.code)
        legacy = locale.legacy_charset
        if locale.code == "en":
            legacy = "windows-1252" if self.rng.random() < 0.4 else "us-ascii"
        if legacy and (forced or self.rng.random() < 0.6):
            try:
                for text in texts:
                    text.encode(legacy)
            except UnicodeEncodeError:
                return "utf-8"
            return legacy
        return "utf-8"

    def _cc(self, thread: Thread, exclude: str) -> list[Person]:
        """Reply-all: everyone in the thread except the sender/recipient and the owner."""
        out: list[Person] = []
        if thread.colleague is not None:
            out += [
                (p.name, p.emails[0])
                for p in (thread.primary, thread.colleague)
                if exclude not in p.emails
            ]
        if thread.internal and thread.internal[1] != exclude:
            out.append(thread.internal)
        return out

    def _customer_address(self, thread: Thread, parent: Posted | None) -> Person:
        if parent is not None and not parent.from_owner:
            return parent.sender
        return (thread.primary.name, thread.primary.emails[0])

    def _owner_attachments(
        self, thread: Thread, parent: Posted | None, date: datetime, subject: str
    ) -> list[Attachment]:
        rng, topic, force = self.rng, thread.topic, thread.force
        out: list[Attachment] = []
        if "invite" in force or (topic == "meeting" and parent is None):
            out.append(self._invite(thread, self.owner, date, subject))
        if "pdf" in force or (topic in ("proposal", "pricing", "invoice") and rng.random() < 0.4):
            slug = thread.org.domain.split(".")[0]
            kind = "Invoice" if topic == "invoice" else "Proposal"
            lines = [
                f"Customer: {thread.org.name}",
                f"Seats: {thread.ctx['seats']}",
                f"Price per seat and month: {thread.ctx['price']} EUR",
                f"Reference: Q-{thread.ctx['num']}",
            ]
            out.append(
                Attachment(
                    f"{kind}_{slug}_{thread.ctx['num']}.pdf",
                    make_pdf(f"{kind} for {thread.org.name}", lines),
                    "application",
                    "pdf",
                )
            )
        if "csv" in force or (topic == "onboarding" and rng.random() < 0.5):
            rows = [
                [p.name, p.emails[0], p.title, "user"] for p in self.contacts if p.org is thread.org
            ]
            out.append(
                Attachment(
                    "contacts_import_template.csv",
                    make_csv(["name", "email", "job_title", "role"], rows),
                    "text",
                    "csv",
                )
            )
        force.difference_update(("invite", "pdf", "csv"))
        return out

    def _invite(
        self, thread: Thread, organizer: Person, date: datetime, subject: str
    ) -> Attachment:
        """An iTIP REQUEST in the organizer's time zone, a few days after the mail."""
        rng = self.rng
        tz = ZoneInfo(
            c.TIMEZONES[thread.locale.code] if organizer != self.owner else "Europe/Berlin"
        )
        day = (date + timedelta(days=rng.randint(2, 10))).astimezone(tz)
        start = day.replace(hour=rng.choice((9, 10, 14, 15)), minute=0, second=0)
        people = [self.owner, (thread.primary.name, thread.primary.emails[0])]
        if thread.colleague:
            people.append((thread.colleague.name, thread.colleague.emails[0]))
        ics = make_invite(
            uid=f"{rng.getrandbits(64):016x}@{organizer[1].partition('@')[2]}",
            summary=subject, organizer=organizer,
            attendees=[p for p in people if p[1] != organizer[1]],
            start=start, minutes=rng.choice((30, 45, 60)), stamp=date,
            location=rng.choice(("Video call", thread.org.city, "Zoom")),
        )  # fmt: skip
        return Attachment("invite.ics", ics, "text", "calendar", {"method": "REQUEST"})
