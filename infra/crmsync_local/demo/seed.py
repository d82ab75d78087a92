"""Seed a test IMAP account and CalDAV calendar with the demo data.

The IMAP side is transport-agnostic: callers pass an ``append`` callable (imapclient,
an in-memory fake, a test server) and create ``mailbox.folders`` beforehand.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

from icalendar import Calendar, Event, vCalAddress, vText

from crmsync_local.demo.model import DEFAULT_NOW, DEFAULT_OWNER, DemoMailbox

AppendFn = Callable[[str, bytes, tuple[str, ...], datetime], object]

BERLIN = ZoneInfo("Europe/Berlin")
NEW_YORK = ZoneInfo("America/New_York")

# (summary, days from now, local hour, minutes, tz, location, attendee (name, email) or None)
_MEETINGS: tuple[tuple[str, int, int, int, ZoneInfo, str, tuple[str, str] | None], ...] = (
    (
        "Discovery call: Brauhaus Nord",
        -19,
        10,
        30,
        BERLIN,
        "Video call",
        ("Jürgen Müller", "juergen.mueller@brauhaus-nord.example"),
    ),
    (
        "Product demo: Acme Widgets",
        -12,
        11,
        60,
        NEW_YORK,
        "Zoom",
        ("Priya Raman", "priya.raman@acme.example.com"),
    ),
    (
        "Contract negotiation: Müller & Söhne",
        -5,
        14,
        90,
        BERLIN,
        "Stuttgart, Werk 2",
        ("Stefan Groß", "s.gross@mueller-soehne.example"),
    ),
    (
        "Quarterly business review: Globex",
        -2,
        9,
        60,
        NEW_YORK,
        "Houston HQ, Room 4B",
        ("Maria García", "maria.garcia@globex.example.net"),
    ),
    (
        "Call with Łukasz Wójcik",
        1,
        15,
        30,
        BERLIN,
        "Phone",
        ("Łukasz Wójcik", "lukasz.wojcik@wisniewski.example"),
    ),
    (
        "Onboarding kickoff: Hooli Health",
        3,
        13,
        45,
        NEW_YORK,
        "Google Meet",
        ("Chen Wei", "chen.wei@hooli-health.test"),
    ),
    (
        "Déjeuner avec Hélène Dubois",
        6,
        12,
        90,
        BERLIN,
        "Lyon, Brasserie Georges",
        ("Hélène Dubois", "helene.dubois@lumiere-sarl.example"),
    ),
    (
        "打ち合わせ: サクラ精機 (Tanaka-san)",
        8,
        9,
        60,
        BERLIN,
        "Teams",
        ("田中 健一", "k.tanaka@sakura-seiki.example"),
    ),
    (
        "Renewal check-in: Umbrella Biotech",
        12,
        10,
        30,
        NEW_YORK,
        "Zoom",
        ("David Kim", "david.kim@umbrella-bio.example"),
    ),
    ("Prep: pricing proposal for Initech", 2, 16, 60, NEW_YORK, "", None),
)


def seed_mailbox(append: AppendFn, mailbox: DemoMailbox) -> int:
    """Append every message in date order, so UIDs ascend with time as in a real mailbox.

    ``append(folder, raw, flags, date)`` mirrors IMAP APPEND; returns the number appended.
    """
    count = 0
    for message in sorted(mailbox.messages, key=lambda m: (m.date, m.message_id)):
        append(message.folder, message.raw, message.flags, message.date)
        count += 1
    return count


def calendar_events(
    now: datetime | None = None,
    owner_email: str = DEFAULT_OWNER,
    owner_name: str = "Alex Morgan",
) -> list[bytes]:
    """Return a dozen VCALENDAR objects around ``now`` for a CalDAV calendar.

    Covers timed meetings in Europe/Berlin and America/New_York (with VTIMEZONE), an
    all-day event, and a weekly series with one EXDATE, the cases a sync engine gets wrong.
    """
    anchor = DEFAULT_NOW if now is None else now
    if anchor.tzinfo is None:
        anchor = anchor.replace(tzinfo=UTC)
    anchor = anchor.astimezone(UTC).replace(microsecond=0)
    domain = owner_email.partition("@")[2]
    owner = (owner_name, owner_email)
    out = []
    for index, (summary, days, hour, minutes, tz, location, guest) in enumerate(_MEETINGS):
        day = (anchor + timedelta(days=days)).astimezone(tz)
        start = day.replace(hour=hour, minute=0, second=0)
        event = _event(f"demo-meeting-{index:02d}@{domain}", summary, anchor, owner)
        event.add("dtstart", start)
        event.add("dtend", start + timedelta(minutes=minutes))
        if location:
            event.add("location", location)
        if guest:
            event.add("attendee", _address(guest, attendee=True))
        out.append(_calendar(event, anchor.date()))

    first_day = (anchor - timedelta(days=10)).date()
    all_day = _event(f"demo-allday@{domain}", "Vertriebskonferenz 2025 (München)", anchor, owner)
    all_day.add("dtstart", first_day)
    all_day.add("dtend", first_day + timedelta(days=2))  # exclusive: a two-day event
    all_day.add("transp", "TRANSPARENT")
    out.append(_calendar(all_day, anchor.date()))

    local = anchor.astimezone(BERLIN)
    monday = local.date() - timedelta(days=local.weekday() + 21)
    series_start = datetime(monday.year, monday.month, monday.day, 9, 30, tzinfo=BERLIN)
    weekly = _event(f"demo-weekly-pipeline@{domain}", "Weekly pipeline review", anchor, owner)
    weekly.add("dtstart", series_start)
    weekly.add("dtend", series_start + timedelta(minutes=45))
    weekly.add("rrule", {"freq": "weekly", "byday": "MO", "count": 12})
    weekly.add("exdate", [_shift_days(series_start, 14)])  # skipped: public holiday
    weekly.add("location", "Berlin office / Teams")
    out.append(_calendar(weekly, anchor.date()))
    return out


def _shift_days(moment: datetime, days: int) -> datetime:
    """Same wall-clock time ``days`` later (DST-safe for recurrence instances)."""
    shifted = date.fromordinal(moment.date().toordinal() + days)
    return moment.replace(year=shifted.year, month=shifted.month, day=shifted.day)


def _event(uid: str, summary: str, stamp: datetime, owner: tuple[str, str]) -> Event:
    event = Event()
    event.add("uid", uid)
    event.add("dtstamp", stamp)
    event.add("summary", summary)
    event.add("organizer", _address(owner))
    event.add("status", "CONFIRMED")
    return event


def _address(person: tuple[str, str], *, attendee: bool = False) -> vCalAddress:
    address = vCalAddress(f"mailto:{person[1]}")
    address.params["cn"] = vText(person[0])
    if attendee:
        address.params["partstat"] = vText("ACCEPTED")
        address.params["role"] = vText("REQ-PARTICIPANT")
    return address


def _calendar(event: Event, around: date) -> bytes:
    cal = Calendar()
    cal.add("prodid", "-//crmsync//demo calendar//EN")
    cal.add("version", "2.0")
    cal.add_component(event)
    # A VTIMEZONE for a few years around the events keeps objects small but complete.
    cal.add_missing_timezones(date(around.year - 2, 1, 1), date(around.year + 3, 1, 1))
    return bytes(cal.to_ical())
