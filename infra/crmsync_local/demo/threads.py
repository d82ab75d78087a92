"""Conversation flow for the demo mailbox: who writes, in which order, saying what.

Customer threads start outbound (the owner prospects), inbound (a contact asks), or as a
forward of a colleague's internal mail, then alternate with occasional follow-up bumps.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

from crmsync_local.demo import content as c
from crmsync_local.demo.compose import Composer, Posted, Thread
from crmsync_local.demo.mime import Attachment, MailSpec, build_message, make_csv, make_pdf

# Features pinned on the first customer threads so every seed covers every MIME shape/locale.
HINTS = ("invite", "forward", "pdf", "csv", "related", "de", "fr", "pl", "ja", "ru", "cc", "alt")


class ThreadWriter(Composer):
    """Writes whole customer threads on top of :class:`Composer`."""

    def customer_thread(self, key: str, hint: str | None) -> None:
        """Write one conversation with a contact; ``hint`` pins a feature (see HINTS)."""
        rng = self.rng
        orgs = [o for o in c.ORGS if hint not in c.LOCALES or o.locale == hint]
        if hint == "alt":
            orgs = [o for o in c.ORGS if any(len(p[2]) > 1 for p in o.people)]
        org = rng.choice(orgs)
        people = [p for p in self.contacts if p.org is org]
        candidates = [p for p in people if hint != "alt" or len(p.emails) > 1]
        primary = rng.choice(candidates)
        others = [p for p in people if p is not primary]
        wants_cc = hint in ("forward", "cc") or rng.random() < 0.3
        colleague = rng.choice(others) if wants_cc and others else None
        internal = rng.choice(self.colleagues) if rng.random() < 0.15 else None
        topic = {"invite": "meeting", "pdf": "proposal", "csv": "onboarding"}.get(
            hint or "", rng.choice(c.TOPICS)
        )
        thread = Thread(
            key,
            org,
            c.LOCALES[org.locale],
            primary,
            colleague,
            internal,
            topic,
            self._context(org),
            {hint} if hint else set(),
        )
        if hint == "forward":
            kind = "forward"
        elif hint in ("invite", "pdf", "csv"):
            kind = "outbound"
        elif hint:
            kind = "inbound"
        else:
            kind = rng.choices(("outbound", "inbound", "forward"), weights=(45, 45, 10))[0]
        length = rng.choices(range(1, 8), weights=(15, 25, 25, 15, 10, 6, 4))[0]
        date = self.random_date()
        parent: Posted | None = None
        owner_turn = kind == "outbound"
        for index in range(length):
            if date >= self.now:
                break
            if index == 0 and kind == "forward":
                parent = self._forward(thread, date)
            elif owner_turn:
                parent = self._owner_message(thread, parent, date)
            else:
                parent = self._customer_message(thread, parent, date)
            owner_turn = parent.from_owner if rng.random() < 0.15 else not parent.from_owner
            date = parent.date + self._gap()

    def _context(self, org: c.OrgSpec) -> dict[str, str]:
        deal = next(d for d in self.deals if d.organization == org.name)
        seats = deal.title.rsplit(", ", 1)[1].split()[0]
        renewal = self.now + timedelta(days=self.rng.randint(20, 200))
        when = self.now + timedelta(days=self.rng.randint(-300, 20))
        return {
            "org": org.name, "seats": seats, "price": str(deal.value // int(seats) // 12),
            "num": str(self.rng.randint(1000, 9999)), "renewal": f"{renewal:%Y-%m-%d}",
            "when": f"{when:%Y-%m-%d} at {self.rng.choice((10, 11, 14, 15, 16))}:00",
            "city": org.city, "industry": org.industry, "domain": org.domain,
        }  # fmt: skip

    def _gap(self) -> timedelta:
        band = self.rng.choices(
            ((600, 8 * 3600), (8 * 3600, 3 * 86400), (3 * 86400, 10 * 86400)), weights=(70, 25, 5)
        )[0]
        return timedelta(seconds=self.rng.randint(*band))

    def _owner_message(self, thread: Thread, parent: Posted | None, date: datetime) -> Posted:
        rng = self.rng
        en = c.LOCALES["en"]
        subject = self._subject(thread, parent, en)
        if parent is not None and parent.from_owner:
            said = [rng.choice(c.OWNER_FOLLOW_UPS)]
        else:
            pool = c.OWNER_SENTENCES[thread.topic]
            said = [s.format_map(thread.ctx) for s in rng.sample(pool, min(2, len(pool)))]
        table = None
        if thread.topic in ("proposal", "pricing", "invoice", "renewal"):
            seats, price = int(thread.ctx["seats"]), int(thread.ctx["price"])
            table = [
                ["Item", "Qty", "Unit price", "Total"],
                [
                    "Professional plan (12 months)",
                    str(seats),
                    f"{price * 12} EUR",
                    f"{seats * price * 12} EUR",
                ],
                ["Onboarding package", "1", "2500 EUR", "2500 EUR"],
            ]
        paragraphs = [f"Hi {thread.primary.greet},", " ".join(said)]
        signature = [self.owner[0], "Account Executive", "CRMSync Demo Ltd", "+44 20 7946 0958"]
        attachments = self._owner_attachments(thread, parent, date, subject)
        to = [self._customer_address(thread, parent)]
        cc = self._cc(thread, exclude=to[0][1])
        return self._post(
            thread,
            parent,
            date,
            self.owner,
            to,
            cc,
            subject,
            paragraphs,
            signature,
            en,
            table=table,
            attachments=attachments,
            html_p=0.55,
            tracking=True,
        )

    def _customer_message(self, thread: Thread, parent: Posted | None, date: datetime) -> Posted:
        rng = self.rng
        who = thread.primary
        if thread.colleague and parent is not None and rng.random() < 0.2:
            who = thread.colleague
        alt = len(who.emails) > 1 and ("alt" in thread.force or rng.random() < 0.3)
        thread.force.discard("alt")
        sender = (who.name, who.emails[1] if alt else who.emails[0])
        locale = thread.locale
        said = [s.format_map(thread.ctx) for s in rng.sample(locale.sentences, 2)]
        joiner = "\n" if locale.code == "ja" else " "
        paragraphs = [
            locale.greeting.format(first=self.owner[0].split()[0]),
            joiner.join(said),
            f"{locale.signoff}\n{who.name}",
        ]
        signature = [who.name, who.title, who.org.name, f"{who.org.domain} | +00 555 0100"]
        subject = self._subject(thread, parent, locale)
        attachments: list[Attachment] = []
        if thread.topic == "meeting" and parent is None:
            attachments.append(self._invite(thread, sender, date, subject))
        elif rng.random() < 0.08:
            name = {"de": "Anforderungen_Übersicht.pdf", "fr": "Cahier_des_charges.pdf"}.get(
                locale.code, "requirements.pdf"
            )
            lines = [f"{who.org.name}: requirements", *said]
            attachments.append(Attachment(name, make_pdf(subject, lines), "application", "pdf"))
        elif rng.random() < 0.06:
            rows = [[p.name, p.emails[0], p.title] for p in self.contacts if p.org is who.org]
            attachments.append(
                Attachment("users.csv", make_csv(["name", "email", "role"], rows), "text", "csv")
            )
        cc = self._cc(thread, exclude=sender[1])
        return self._post(
            thread,
            parent,
            date,
            sender,
            [self.owner],
            cc,
            subject,
            paragraphs,
            signature,
            locale,
            attachments=attachments,
            html_p=0.4,
        )

    def _forward(self, thread: Thread, date: datetime) -> Posted:
        """A customer forwards a colleague's internal mail; the original is not in the corpus."""
        rng = self.rng
        author = thread.colleague or thread.primary
        locale = thread.locale
        orig_date = date - timedelta(seconds=rng.randint(3600, 3 * 86400))
        pool = locale.subjects.get(thread.topic) or c.EN_SUBJECTS[thread.topic]
        orig_subject = rng.choice(pool).format_map(thread.ctx)
        said = [s.format_map(thread.ctx) for s in rng.sample(locale.sentences, 3)]
        orig_text = f"{thread.primary.name.split()[0]},\n\n{' '.join(said)}\n\n{author.name}"
        tz = timezone(timedelta(hours=locale.utc_offset_hours))
        orig_spec = MailSpec(
            sender=(author.name, author.emails[0]),
            to=[(thread.primary.name, thread.primary.emails[0])],
            subject=orig_subject,
            date=orig_date.astimezone(tz),
            message_id=f"<fwd.{rng.getrandbits(48):012x}@{author.org.domain}>",
            text=orig_text,
        )
        block = (
            f"{locale.forwarded}\nFrom: {author.name} <{author.emails[0]}>\n"
            f"Date: {orig_date.astimezone(tz):%Y-%m-%d %H:%M}\nSubject: {orig_subject}\n"
            f"To: {thread.primary.name} <{thread.primary.emails[0]}>\n\n{orig_text}"
        )
        paragraphs = [
            locale.greeting.format(first=self.owner[0].split()[0]),
            c.FYI[locale.code],
            f"{locale.signoff}\n{thread.primary.name}",
        ]
        attachments = []
        if rng.random() < 0.5:
            attachments.append(Attachment("original.eml", message=build_message(orig_spec)[0]))
        sender = (thread.primary.name, thread.primary.emails[0])
        subject = locale.forward_prefix + orig_subject
        return self._post(
            thread,
            None,
            date,
            sender,
            [self.owner],
            [],
            subject,
            paragraphs,
            [],
            locale,
            attachments=attachments,
            html_p=0.0,
            appendix=block,
        )
