"""The inbox API end to end (SPEC I1, inbox issue items 1 and 5): a real Dovecot mailbox
seeded with ~190 conversations (~270 messages) in INBOX, Sent and Archive, synced through
the local stack, then every filter of GET /v1/threads, walked page by page with a small
limit, must list exactly the threads computed here from what was seeded, newest first and
each once; GET /v1/me/mail-counts must count them.
"""

from __future__ import annotations

import random
import re
import unicodedata
import uuid
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from email.header import decode_header, make_header
from email.message import EmailMessage
from email.utils import format_datetime, formataddr, make_msgid
from typing import Any

import pytest
import requests

from crmsync_local.stack import LocalStack
from crmsync_local.testservers.dovecot import DovecotServer
from crmsync_local.testservers.smtp import SmtpServer
from tests.e2e.mailbox import Mailbox, connect_mailbox

pytestmark = [pytest.mark.e2e, pytest.mark.usefixtures("trusted_mail_servers")]

THREADS = 190
PAGE = 7
NOW = datetime.now(UTC).replace(microsecond=0)
CONTACTS = [
    ("ann@customer.test", "Ann Buyer"),  # a person with an open deal
    ("bob@vendor.test", "Bob Seller"),  # a person
    ("cleo@partner.test", "Cléo Partner"),  # a person
    ("dan@example.org", "Dan Other"),
    ("eve@mail.test", "Eve Stranger"),
    ("news@shop.test", None),
]
TOPICS = ["Pricing", "Contract", "Invoice", "Réunion", "Renewal"]
DETAILS = ["update", "question", "draft", "follow-up"]


@dataclass
class Sent:
    folder: str
    outbound: bool
    unread: bool
    attachment: bool
    tracked: bool
    at: datetime
    addresses: list[str]
    names: list[str]


@dataclass
class Seeded:
    subject: str
    messages: list[Sent] = field(default_factory=list)

    @property
    def boxes(self) -> set[str]:
        inbox = any(m.folder == "INBOX" for m in self.messages)
        boxes = {"inbox"} if inbox else set()
        if any(m.outbound for m in self.messages):
            boxes.add("sent")
        if not inbox and any(not m.outbound for m in self.messages):
            boxes.add("archive")
        return boxes

    @property
    def last(self) -> datetime:
        return max(m.at for m in self.messages)

    @property
    def addresses(self) -> set[str]:
        return {a for m in self.messages for a in m.addresses}

    @property
    def unread(self) -> bool:
        return any(m.unread for m in self.messages)

    def text_words(self) -> set[str]:
        texts = [self.subject]
        for m in self.messages:
            texts += m.names
            for address in m.addresses:
                texts += address.split("@")
        return {w for t in texts for w in _words(t)}


def _words(text: str) -> list[str]:
    plain = "".join(
        c for c in unicodedata.normalize("NFKD", text.lower()) if not unicodedata.combining(c)
    )
    return re.findall(r"[a-z0-9]+", plain)


@dataclass
class World:
    box: Mailbox
    seeded: dict[str, Seeded]  # by subject
    persons: dict[str, str]  # address -> person id
    deal: str  # Ann's open deal

    def links(self, thread: Seeded) -> set[str]:
        found = {f"person#{self.persons[a]}" for a in thread.addresses if a in self.persons}
        if "ann@customer.test" in thread.addresses:
            found.add(f"deal#{self.deal}")
        return found


def _message(
    rng: random.Random,
    sender: tuple[str, str | None],
    to: list[tuple[str, str | None]],
    subject: str,
    at: datetime,
    *,
    parent: EmailMessage | None = None,
    attachment: bool = False,
    tracking: bool = False,
) -> EmailMessage:
    message = EmailMessage()
    message["From"] = formataddr((sender[1] or "", sender[0]))
    message["To"] = ", ".join(formataddr((name or "", address)) for address, name in to)
    message["Subject"] = subject if parent is None else f"Re: {subject}"
    message["Message-ID"] = make_msgid(domain="inbox.e2e.test")
    message["Date"] = format_datetime(at)
    if parent is not None:
        message["In-Reply-To"] = parent["Message-ID"]
        message["References"] = parent["Message-ID"]
    if tracking:
        message["X-CRMSync-Tracking"] = uuid.uuid4().hex
    message.set_content(f"About {subject}. {rng.random()}")
    if attachment:
        message.add_attachment(
            b"%PDF-1.4 quote", maintype="application", subtype="pdf", filename="quote.pdf"
        )
    return message


def _seed(box: Mailbox, rng: random.Random) -> dict[str, Seeded]:
    own = (box.user.email, "Olga Owner")
    tracked = set(rng.sample(range(THREADS), 4))
    claims = set(rng.sample(sorted(set(range(THREADS)) - tracked), 2))  # inbound: not tracked
    seeded: dict[str, Seeded] = {}
    imap = box.imap()
    try:
        for i in range(THREADS):
            subject = f"{rng.choice(TOPICS)} {rng.choice(DETAILS)} {i}"
            thread = seeded[subject] = Seeded(subject)
            contact = CONTACTS[rng.randrange(len(CONTACTS))]
            others = [contact]
            if rng.random() < 0.2:
                others.append(rng.choice([c for c in CONTACTS if c != contact]))
            kind = "out" if i in tracked else rng.choices(["in", "archive", "out"], [55, 25, 20])[0]
            at = NOW - timedelta(seconds=rng.randrange(3600, 60 * 86400))
            attachment = rng.random() < 0.15
            outbound = kind == "out"
            folder = {"in": "INBOX", "archive": "Archive", "out": "Sent"}[kind]
            unread = not outbound and rng.random() < (0.4 if kind == "in" else 0.2)
            sender, to = (own, others) if outbound else (contact, [own, *others[1:]])
            first = _message(
                rng,
                sender,
                to,
                subject,
                at,
                attachment=attachment,
                tracking=i in tracked or i in claims,
            )
            flags = () if unread else ("\\Seen",)
            imap.append(folder, first.as_bytes(), flags, at)
            everyone = [sender, *to]
            thread.messages.append(
                Sent(
                    folder,
                    outbound,
                    unread,
                    attachment,
                    i in tracked,
                    at,
                    [a for a, _ in everyone],
                    [n for _, n in everyone if n],
                )
            )
            if rng.random() < 0.4:
                later = min(at + timedelta(seconds=rng.randrange(600, 2 * 86400)), NOW)
                if outbound:
                    reply_from, reply_to, reply_folder = contact, [own], "INBOX"
                else:
                    reply_from, reply_to, reply_folder = own, [contact], "Sent"
                reply_unread = reply_from != own and rng.random() < 0.5
                extra = rng.random() < 0.1
                reply = _message(
                    rng, reply_from, reply_to, subject, later, parent=first, attachment=extra
                )
                flags = () if reply_unread else ("\\Seen",)
                imap.append(reply_folder, reply.as_bytes(), flags, later)
                people = [reply_from, *reply_to]
                thread.messages.append(
                    Sent(
                        reply_folder,
                        reply_from == own,
                        reply_unread,
                        extra,
                        False,
                        later,
                        [a for a, _ in people],
                        [n for _, n in people if n],
                    )
                )
    finally:
        imap.logout()
    return seeded


@pytest.fixture(scope="module")
def world(local_stack: LocalStack, dovecot: DovecotServer, smtp_server: SmtpServer) -> World:
    box = connect_mailbox(local_stack, dovecot, smtp_server, role="user", sync_start="3_months")
    persons = {
        address: _post(box, "/v1/persons", {"name": name, "emails": [address]})["id"]
        for address, name in CONTACTS[:3]
    }
    deal = _post(box, "/v1/deals", {"title": "Rollout", "person_id": persons["ann@customer.test"]})[
        "id"
    ]
    seeded = _seed(box, random.Random(20250301))
    box.sync()
    return World(box, seeded, persons, deal)


def _post(box: Mailbox, path: str, body: dict[str, Any]) -> Any:
    reply = requests.post(f"{box.stack.url}{path}", json=body, headers=box.headers, timeout=10)
    assert reply.status_code == 201, reply.text
    return reply.json()


def _walk(box: Mailbox, **params: Any) -> list[dict[str, Any]]:
    """Every page with a small limit; each thread once, newest first."""
    query = {k: str(v).lower() if isinstance(v, bool) else v for k, v in params.items()}
    items: list[dict[str, Any]] = []
    cursor = None
    for _ in range(200):
        page = box.get("/v1/threads", limit=PAGE, **query, **({"cursor": cursor} if cursor else {}))
        assert len(page["items"]) <= PAGE
        items += page["items"]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    ids = [t["id"] for t in items]
    assert len(ids) == len(set(ids)), f"a thread shown twice for {params}"
    stamps = [t["last_message_at"] for t in items]
    assert stamps == sorted(stamps, reverse=True), f"not newest first for {params}"
    return items


def test_the_seeded_mailbox_is_synced_as_seeded(world: World) -> None:
    threads = _walk(world.box)
    assert {t["subject"] for t in threads} == set(world.seeded)
    for thread in threads:
        seeded = world.seeded[thread["subject"]]
        assert set(thread["boxes"]) == seeded.boxes, thread["subject"]
        assert (thread["unread_count"] > 0) == seeded.unread, thread["subject"]
        assert {f"{link['type']}#{link['id']}" for link in thread["links"]} == world.links(seeded)


def _expect(world: World, **wanted: Any) -> set[str]:
    since = wanted.get("since")
    until = wanted.get("until")
    found = set()
    for subject, t in world.seeded.items():
        boxes = t.boxes
        links = world.links(t)
        checks = [
            wanted.get("folder", "all") == "all" or wanted["folder"] in boxes,
            "unread" not in wanted or wanted["unread"] == t.unread,
            "linked" not in wanted or wanted["linked"] == bool(links),
            "person_id" not in wanted or f"person#{wanted['person_id']}" in links,
            "deal_id" not in wanted or f"deal#{wanted['deal_id']}" in links,
            "has_attachments" not in wanted
            or wanted["has_attachments"] == any(m.attachment for m in t.messages),
            "tracked" not in wanted or wanted["tracked"] == any(m.tracked for m in t.messages),
            "participant" not in wanted or wanted["participant"].lower() in t.addresses,
            since is None or t.last >= _start(since),
            until is None or t.last < _end(until),
            "q" not in wanted or set(_words(wanted["q"])) <= t.text_words(),
        ]
        if all(checks):
            found.add(subject)
    return found


def _start(value: str) -> datetime:
    return (
        datetime.fromisoformat(value)
        if "T" in value
        else datetime.combine(date.fromisoformat(value), datetime.min.time(), UTC)
    )


def _end(value: str) -> datetime:
    return _start(value) if "T" in value else _start(value) + timedelta(days=1)


def _filters(world: World) -> list[dict[str, Any]]:
    ann, bob, cleo = (world.persons[a] for a, _ in CONTACTS[:3])
    middle = (NOW - timedelta(days=30)).isoformat()
    return [
        {"folder": "all"},
        {"folder": "inbox"},
        {"folder": "sent"},
        {"folder": "archive"},
        {"unread": True},
        {"unread": False, "folder": "inbox"},
        {"linked": True},
        {"linked": False},
        {"person_id": ann},
        {"person_id": bob, "folder": "sent"},
        {"deal_id": world.deal},
        {"person_id": cleo, "unread": True},
        {"has_attachments": True},
        {"has_attachments": True, "folder": "archive"},
        {"tracked": True},
        {"participant": "Ann@Customer.TEST"},
        {"participant": "dan@example.org", "unread": True},
        {"since": middle},
        {"until": middle},
        {"since": (NOW - timedelta(days=40)).date().isoformat(), "until": middle, "linked": True},
        {"q": "pricing"},
        {"q": "REUNION update"},
        {"q": "vendor"},
        {"q": "cleo", "folder": "inbox"},
        {"folder": "inbox", "unread": True, "linked": True},
        {"person_id": ann, "q": "contract"},
        {"person_id": ann, "participant": "dan@example.org"},
        {"participant": "eve@mail.test", "q": "invoice", "folder": "sent"},
        {"account_id": world.box.account.id, "folder": "archive", "unread": False},
    ]


def test_every_filter_returns_exactly_its_threads(world: World) -> None:
    for wanted in _filters(world):
        expected = _expect(world, **wanted)
        got = [t["subject"] for t in _walk(world.box, **wanted)]
        assert set(got) == expected, f"{wanted}: {len(got)} listed, {len(expected)} expected"
        special = {"person_id", "deal_id", "participant", "q", "tracked", "has_attachments"}
        if wanted.keys() & special or wanted.get("folder") in {"inbox", "sent", "archive"}:
            assert 0 < len(expected) < len(world.seeded), f"{wanted} should narrow the list"


def test_counts_per_folder(world: World) -> None:
    counts = world.box.get("/v1/me/mail-counts")
    expected = {
        folder: {
            "threads": len(_expect(world, folder=folder)),
            "unread": len(_expect(world, folder=folder, unread=True)),
        }
        for folder in ("inbox", "sent", "archive", "all")
    }
    assert counts["total"] == expected
    assert counts["accounts"] == [
        {"account_id": world.box.account.id, "email": world.box.user.email, "folders": expected}
    ]


def test_invalid_parameters_are_refused(world: World) -> None:
    for params in (
        {"folder": "trash"},
        {"unread": "maybe"},
        {"participant": "nobody"},
        {"since": "yesterday"},
        {"since": "2025-03-02", "until": "2025-03-01"},
        {"q": "!"},
    ):
        reply = requests.get(
            f"{world.box.stack.url}/v1/threads",
            params=params,
            headers=world.box.headers,
            timeout=10,
        )
        assert reply.status_code == 422, (params, reply.text)
    other = requests.get(
        f"{world.box.stack.url}/v1/threads",
        params={"cursor": "eyJQSyI6ICJ4In0"},
        headers=world.box.headers,
        timeout=10,
    )
    assert other.status_code == 400
    colleague = world.box.stack.token("someone-else", world.box.owner.company_id, "admin")
    reply = requests.get(
        f"{world.box.stack.url}/v1/threads",
        params={"account_id": world.box.account.id},
        headers={"Authorization": f"Bearer {colleague}"},
        timeout=10,
    )
    assert reply.status_code == 404  # the inbox is one's own mail, admins included


def test_reading_mail_on_the_server_moves_it_out_of_unread(world: World) -> None:
    """Runs last: a flag change on the server reaches the unread list and the counts."""
    box = world.box
    target = max(
        (
            s
            for s, t in world.seeded.items()
            if t.unread and all(m.folder == "INBOX" or not m.unread for m in t.messages)
        ),
        key=lambda s: world.seeded[s].last,
    )
    before = box.get("/v1/me/mail-counts")["total"]
    imap = box.imap()
    try:
        imap.select_folder("INBOX")
        headers = imap.fetch(imap.search(["UNSEEN"]), ["BODY.PEEK[HEADER.FIELDS (SUBJECT)]"])
        for uid, data in headers.items():
            header = data[b"BODY[HEADER.FIELDS (SUBJECT)]"].decode()
            subject = str(make_header(decode_header(header.split(":", 1)[1].strip())))
            if subject in {target, f"Re: {target}"}:
                imap.add_flags([uid], ["\\Seen"])
    finally:
        imap.logout()
    box.sync()
    for message in world.seeded[target].messages:
        message.unread = False
    unread = {t["subject"] for t in _walk(box, unread=True)}
    assert target not in unread
    assert unread == _expect(world, unread=True)
    after = box.get("/v1/me/mail-counts")["total"]
    boxes = world.seeded[target].boxes | {"all"}
    for folder in ("inbox", "sent", "archive", "all"):
        drop = 1 if folder in boxes else 0
        assert after[folder]["unread"] == before[folder]["unread"] - drop, folder
        assert after[folder]["threads"] == before[folder]["threads"], folder
