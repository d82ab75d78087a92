"""iCalendar mapping for the calendar sync: an activity as a VEVENT, and the occurrences a
calendar resource holds (recurrences expanded inside a window). Pure: no I/O, no clock.

Times leave this module in UTC. The push writes the activity in the calendar's time zone
when one is given (so other apps show and repeat it in local time) and marks its own events
with `X-CRMSYNC-*` properties so the pull can recognise them.
"""

from __future__ import annotations

import functools
import math
import re
from datetime import UTC, date, datetime, time, timedelta, tzinfo
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import recurring_ical_events
import x_wr_timezone  # comes with recurring-ical-events
from icalendar import Calendar, Component, Event, Timezone, vCalAddress
from icalendar.timezone import tzp
from icalendar.timezone.windows_to_olson import WINDOWS_TO_OLSON
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, ValidationError

from crmsync.models.activities import MAX_PARTICIPANTS, Activity, Participant

PRODID = "-//crmsync//EN"
PROP_ACTIVITY_ID = "X-CRMSYNC-ACTIVITY-ID"
PROP_TYPE = "X-CRMSYNC-TYPE"
PROP_DONE = "X-CRMSYNC-DONE"
PROP_LINK = "X-CRMSYNC-LINK"
LINK_SEPARATOR = "\n\n"
MAX_OCCURRENCES = 1000
"""More occurrences than this in one window is not a meeting series (FREQ=MINUTELY…)."""
MINUTES_PER_DAY = 24 * 60
MAX_DURATION_MINUTES = 31 * MINUTES_PER_DAY  # ActivityCreate's limit
MAX_TEXT = 255
MAX_NOTE = 10_000
NO_TITLE = "(no title)"
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")


class IcsError(ValueError):
    """The iCalendar text cannot be read (or an event cannot be written): says what is wrong."""


Attendee = tuple[str, str | None]


class EventOccurrence(BaseModel):
    """One occurrence of a calendar event, as the sync sees it. `start` is in UTC; for an
    all-day event it is 00:00 UTC of the day and `duration_minutes` is whole days."""

    model_config = ConfigDict(frozen=True)

    uid: str
    recurrence_id: str | None = Field(
        default=None,
        description="The occurrence's original start in UTC (ISO-8601) for instances of a "
        "recurring event; stays the same when the instance is moved.",
    )
    summary: str = ""
    start: AwareDatetime
    duration_minutes: int = Field(default=0, ge=0)
    all_day: bool = False
    tz: str | None = Field(default=None, description="The event's TZID, if it had one.")
    floating: bool = Field(
        default=False, description="The event had no time zone; its times were read as UTC."
    )
    location: str | None = None
    description: str | None = Field(
        default=None, description="The description without the link crmsync appended."
    )
    attendees: list[Attendee] = Field(default_factory=list)
    busy: bool = True
    done: bool = False
    last_modified: AwareDatetime | None = None
    activity_id: str | None = None
    activity_type: str | None = Field(default=None, description="X-CRMSYNC-TYPE, if written.")
    sequence: int = 0
    recurring: bool = False
    cancelled: bool = False

    @property
    def key(self) -> str:
        """UID + RECURRENCE-ID: what identifies the occurrence across syncs."""
        return self.uid if self.recurrence_id is None else f"{self.uid}#{self.recurrence_id}"


# ---------------------------------------------------------------- writing


def activity_to_ics(
    activity: Activity,
    *,
    uid: str,
    link: str | None,
    tzid: str | None = None,
    now: datetime,
) -> str:
    """One VCALENDAR holding the activity as its only VEVENT."""
    event = Event()
    event.add("uid", uid)
    event.add("dtstamp", _utc(now))
    event.add("last-modified", _utc(activity.updated_at))
    event.add("summary", _clean(activity.subject))
    zone = _zone(tzid) if tzid and not activity.all_day else None
    if activity.all_day:
        day = _utc(activity.start).date()
        days = max(1, math.ceil(activity.duration_minutes / MINUTES_PER_DAY))
        event.add("dtstart", day)
        event.add("dtend", day + timedelta(days=days))
    else:
        start = _utc(activity.start)
        end = start + timedelta(minutes=activity.duration_minutes)
        if zone is not None and not (_keeps_time(start, zone) and _keeps_time(end, zone)):
            zone = None  # the second of two equal wall times: only UTC can say which
        event.add("dtstart", start if zone is None else start.astimezone(zone))
        if activity.duration_minutes:
            event.add("dtend", end if zone is None else end.astimezone(zone))
    if activity.location:
        event.add("location", _clean(activity.location))
    description = _description(activity.note, link)
    if description is not None:
        event.add("description", description)
    if link:
        event.add("url", link)
        event.add(PROP_LINK, link)
    for participant in activity.participants:
        event.add("attendee", _attendee(participant), encode=False)
    event.add("transp", "OPAQUE" if activity.busy else "TRANSPARENT")
    event.add(PROP_DONE, "TRUE" if activity.done else "FALSE")
    event.add(PROP_ACTIVITY_ID, activity.id)
    event.add(PROP_TYPE, activity.type)

    calendar = Calendar()
    calendar.add("prodid", PRODID)
    calendar.add("version", "2.0")
    calendar.add_component(event)
    if zone is not None:
        first = _utc(activity.start).date() - timedelta(days=366)
        calendar.add_missing_timezones(first_date=first, last_date=first + timedelta(days=3 * 366))
        # VTIMEZONE before the event that uses it: some readers only look backwards.
        calendar.subcomponents.sort(key=lambda c: c.name != "VTIMEZONE")
    text: bytes = calendar.to_ical()
    return text.decode("utf-8")


def _description(note: str | None, link: str | None) -> str | None:
    text = _clean(note) if note else ""
    if link:
        return f"{text}{LINK_SEPARATOR}{link}" if text else link
    return text or None


def _attendee(participant: Participant) -> vCalAddress:
    address = vCalAddress(f"mailto:{participant.email}")
    if participant.name:
        # icalendar reads backslashes in parameters as escapes (RFC 5545 has none there), and
        # a name ending in one swallows the address: write a slash instead.
        address.params["CN"] = _clean(participant.name).replace("\\", "/")
    return address


def _clean(text: str) -> str:
    """Text as iCalendar can carry it: line breaks as LF, no other control characters."""
    return _CONTROL.sub("", text.replace("\r\n", "\n").replace("\r", "\n"))


def _zone(tzid: str) -> ZoneInfo:
    try:
        return ZoneInfo(tzid)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise IcsError(f"unknown time zone {tzid!r}") from exc


def _keeps_time(moment: datetime, zone: tzinfo) -> bool:
    """Whether the local wall time, read back without `fold`, is the same instant."""
    local = moment.astimezone(zone).replace(fold=0)
    return local.astimezone(UTC) == moment


# ---------------------------------------------------------------- reading


def parse_calendar(
    ics: str, *, window_start: datetime, window_end: datetime
) -> list[EventOccurrence]:
    """The events of an iCalendar text, as occurrences sorted by start.

    A single event is one occurrence wherever it is; a recurring event gives its occurrences
    starting in [window_start, window_end), EXDATEs left out and overridden instances as
    overridden."""
    if window_start.tzinfo is None or window_end.tzinfo is None:
        raise ValueError("the window needs times with a UTC offset")
    calendar = _read(ics)
    events = [c for c in calendar.walk("VEVENT")]
    by_uid: dict[str, list[Component]] = {}
    for event in events:
        by_uid.setdefault(_uid(event), []).append(event)
    occurrences: list[EventOccurrence] = []
    recurring: set[str] = set()
    for uid, components in by_uid.items():
        if len(components) == 1 and not _is_recurring(components[0]):
            occurrences.append(_occurrence(components[0], uid=uid, recurring=False))
        else:
            recurring.add(uid)
    if recurring:
        occurrences.extend(_expand(calendar, recurring, _utc(window_start), _utc(window_end)))
    occurrences.sort(key=lambda o: (o.start, o.uid, o.recurrence_id or ""))
    return occurrences


def occurrence_fields(o: EventOccurrence) -> dict[str, Any]:
    """The fields an activity takes from an occurrence, within ActivityCreate's limits (long
    texts cut, attendees without a valid address left out)."""
    return {
        "subject": _cut(o.summary.strip(), MAX_TEXT) or NO_TITLE,
        "start": o.start,
        "duration_minutes": min(o.duration_minutes, MAX_DURATION_MINUTES),
        "all_day": o.all_day,
        "location": _cut((o.location or "").strip(), MAX_TEXT) or None,
        "note": _cut(o.description or "", MAX_NOTE) or None,
        "participants": _participants(o.attendees),
        "busy": o.busy,
        "done": o.done,
    }


def _participants(attendees: list[Attendee]) -> list[dict[str, str]]:
    seen: set[str] = set()
    participants: list[dict[str, str]] = []
    for email, name in attendees:
        fields = {"email": email}
        if name and name.strip():
            fields["name"] = _cut(name.strip(), MAX_TEXT)
        try:
            participant = Participant.model_validate(fields)
        except ValidationError:
            continue  # an address the CRM cannot hold (a room resource, a typo)
        if participant.email.lower() in seen:
            continue
        seen.add(participant.email.lower())
        participants.append(participant.model_dump(exclude_none=True))
        if len(participants) == MAX_PARTICIPANTS:
            break
    return participants


def _cut(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[:limit].rstrip()


def event_uid_of(ics: str) -> str | None:
    """The UID of the (first) event in an iCalendar text, or None when it has none."""
    for event in _read(ics).walk("VEVENT"):
        return _text(event, "UID") or None
    return None


def last_modified_of(ics: str) -> datetime | None:
    """The latest LAST-MODIFIED of the events in an iCalendar text (UTC), or None."""
    calendar = _read(ics)
    stamps = [s for e in calendar.walk("VEVENT") if (s := _last_modified(e))]
    return max(stamps, default=None)


# ---------------------------------------------------------------- reading: details


def _read(ics: str) -> Calendar:
    """The calendar, with X-WR-TIMEZONE (Google, Apple exports) applied: floating times are
    then in that zone, as those apps mean them. An X-WR-TIMEZONE naming no known zone is
    dropped (recurring-ical-events would fail on it)."""
    text = ics.lstrip("\ufeff \t\r\n") if isinstance(ics, str) else ""
    if not text:
        raise IcsError("the iCalendar text is empty")
    if not text[:15].upper().startswith("BEGIN:VCALENDAR"):
        raise IcsError("the text is not iCalendar: it does not start with BEGIN:VCALENDAR")
    try:
        calendar = Calendar.from_ical(text)
    except (ValueError, KeyError, IndexError, TypeError, OverflowError) as exc:
        raise IcsError(f"the iCalendar text is malformed: {_first_line(exc)}") from None
    if not isinstance(calendar, Calendar):
        raise IcsError("the text is not one VCALENDAR")
    for event in calendar.walk("VEVENT"):
        for prop, message in getattr(event, "errors", ()):
            uid = event.get("UID", "?")
            raise IcsError(f"event {uid!s}: property {prop} is malformed: {_first_line(message)}")
        _check_times(event)
        _check_rules(event)
    _use_own_time_zones(calendar)
    calendar_zone = _text(calendar, "X-WR-TIMEZONE")
    if calendar_zone is not None and not _iana_zone(calendar_zone.strip("/")):
        del calendar["X-WR-TIMEZONE"]
    try:
        standard = x_wr_timezone.to_standard(calendar)
    except (ValueError, KeyError, TypeError) as exc:
        raise IcsError(
            f"the calendar's X-WR-TIMEZONE cannot be applied: {_first_line(exc)}"
        ) from None
    if not isinstance(standard, Calendar):
        raise IcsError("the text is not one VCALENDAR")
    return standard


_TOO_FREQUENT = {"SECONDLY", "MINUTELY"}


def _check_rules(event: Component) -> None:
    """Refuse rules that never end their expansion (INTERVAL=0 makes dateutil loop for ever)
    or that no calendar of meetings has (every second or minute)."""
    for rule in _as_list(event.get("RRULE")):
        uid = event.get("UID", "?")
        frequency = [str(f).upper() for f in rule.get("FREQ", [])]
        if len(frequency) != 1:
            raise IcsError(f"event {uid!s}: RRULE needs exactly one FREQ")
        if frequency[0] in _TOO_FREQUENT:
            raise IcsError(f"event {uid!s}: an event repeating {frequency[0]} is not supported")
        for part in ("INTERVAL", "COUNT"):
            values = rule.get(part, [])
            if any(not isinstance(v, int) or v < 1 for v in values) or len(values) > 1:
                raise IcsError(f"event {uid!s}: RRULE {part} must be one positive number")


_ZONED_PROPERTIES = ("DTSTART", "DTEND", "RECURRENCE-ID", "EXDATE", "RDATE")
_MOMENT_PROPERTIES = ("DTSTART", "DTEND", "RECURRENCE-ID", "EXDATE")


def _check_times(event: Component) -> None:
    """icalendar accepts a time, a period or a duration where a date or date-time belongs
    (and recurring-ical-events then ignores such an EXDATE): refuse them."""
    for name in _MOMENT_PROPERTIES:
        for prop in _as_list(event.get(name)):
            for value in getattr(prop, "dts", [prop]):
                if not isinstance(getattr(value, "dt", None), date):
                    uid = event.get("UID", "?")
                    raise IcsError(f"event {uid!s}: {name} is not a date or a date-time")


def _use_own_time_zones(calendar: Calendar) -> None:
    """Bind times whose TZID is no known zone to this calendar's own VTIMEZONE, or leave them
    floating when the calendar has none.

    icalendar caches such zones process-wide by TZID, first definition wins, so a second
    calendar with another "Customized Time Zone" (Outlook) would get the first one's offsets,
    and one without a VTIMEZONE would get another calendar's; it also leaves the times
    floating when the VTIMEZONE comes after the event."""
    zones: dict[str, tzinfo] = {}
    for component in calendar.walk("VTIMEZONE"):
        tzid = str(component.get("TZID", "")).strip("/")
        if not tzid or _known_zone(tzid) or not isinstance(component, Timezone):
            continue
        try:
            zones[tzid] = component.to_tz(tzp, lookup_tzid=False)
        except (ValueError, TypeError, KeyError, IndexError, AttributeError) as exc:
            raise IcsError(f"time zone {tzid!r} is malformed: {_first_line(exc)}") from None
    for event in calendar.walk("VEVENT"):
        for name in _ZONED_PROPERTIES:
            for prop in _as_list(event.get(name)):
                tzid = str(prop.params.get("TZID", "")).strip("/")
                if not tzid or _known_zone(tzid):
                    continue
                zone = zones.get(tzid)
                for value in getattr(prop, "dts", [prop]):
                    if isinstance(value.dt, datetime):
                        value.dt = value.dt.replace(tzinfo=zone)


def _known_zone(tzid: str) -> bool:
    """Whether icalendar resolves the TZID by itself (IANA, or a Windows name it maps)."""
    return tzid in WINDOWS_TO_OLSON or _iana_zone(tzid)


@functools.lru_cache(maxsize=512)
def _iana_zone(tzid: str) -> bool:
    try:
        ZoneInfo(tzid)
    except (ZoneInfoNotFoundError, ValueError):
        return False
    return True


def _as_list(value: object) -> list[Any]:
    if value is None:
        return []
    return value if isinstance(value, list) else [value]


def _first_line(message: object, limit: int = 200) -> str:
    line = str(message).strip().splitlines()[0] if str(message).strip() else "no detail"
    return line if len(line) <= limit else line[:limit] + "…"


def _uid(event: Component) -> str:
    uid = event.get("UID")
    if isinstance(uid, list):
        raise IcsError("an event has more than one UID")
    if not uid or not str(uid).strip():
        raise IcsError("an event has no UID")
    return str(uid)


def _single(event: Component, name: str) -> Any:
    """A property that may appear at most once (DTSTART, DTEND, DURATION, RECURRENCE-ID)."""
    value = event.get(name)
    if isinstance(value, list):
        raise IcsError(f"event {_text(event, 'UID')}: {name} appears more than once")
    return value


def _is_recurring(event: Component) -> bool:
    return any(name in event for name in ("RRULE", "RDATE", "RECURRENCE-ID"))


def _expand(
    calendar: Calendar, uids: set[str], window_start: datetime, window_end: datetime
) -> list[EventOccurrence]:
    """The occurrences of the recurring events `uids` that start in the window.

    `between` (not the lazy `after`, which searches on to the year 9999 for the next
    occurrence of a rule that has none) lists whatever overlaps the window; the rules that
    could list millions there are refused before (`_check_rules`)."""
    try:
        query = recurring_ical_events.of(calendar, components=["VEVENT"])
        components = query.between(window_start, window_end)
        found: dict[str, int] = {}
        occurrences: list[EventOccurrence] = []
        for component in components:
            uid = str(component.get("UID"))
            if uid not in uids:
                continue
            occurrence = _occurrence(component, uid=uid, recurring=True)
            if not window_start <= occurrence.start < window_end:
                continue  # began before the window and still goes on in it
            found[uid] = found.get(uid, 0) + 1
            if found[uid] > MAX_OCCURRENCES:
                raise IcsError(
                    f"event {uid!r} repeats more than {MAX_OCCURRENCES} times in the window"
                )
            occurrences.append(occurrence)
        return occurrences
    except (
        ValueError,
        TypeError,
        KeyError,
        AttributeError,
        OverflowError,
        recurring_ical_events.InvalidCalendar,
    ) as exc:
        raise IcsError(f"the recurrence cannot be expanded: {_first_line(exc)}") from None


def _occurrence(event: Component, *, uid: str, recurring: bool) -> EventOccurrence:
    start, all_day, tz, floating = _start(event)
    duration = _duration_minutes(event, start, all_day)
    recurrence_id: str | None = None
    if recurring:
        original = _single(event, "RECURRENCE-ID")
        moment = _as_utc(original.dt)[0] if original is not None else start
        recurrence_id = moment.isoformat()
    link = _text(event, PROP_LINK) or _text(event, "URL")
    return EventOccurrence(
        uid=uid,
        recurrence_id=recurrence_id,
        summary=_text(event, "SUMMARY") or "",
        start=start,
        duration_minutes=duration,
        all_day=all_day,
        tz=tz,
        floating=floating,
        location=_text(event, "LOCATION") or None,
        description=_strip_link(_text(event, "DESCRIPTION"), link),
        attendees=_attendees(event),
        busy=(_text(event, "TRANSP") or "OPAQUE").upper() != "TRANSPARENT",
        done=(_text(event, PROP_DONE) or "FALSE").upper() == "TRUE",
        last_modified=_last_modified(event),
        activity_id=_text(event, PROP_ACTIVITY_ID) or None,
        activity_type=_text(event, PROP_TYPE) or None,
        sequence=_int(_text(event, "SEQUENCE")),
        recurring=recurring,
        cancelled=(_text(event, "STATUS") or "").upper() == "CANCELLED",
    )


def _start(event: Component) -> tuple[datetime, bool, str | None, bool]:
    """(start in UTC, all day, TZID, floating)."""
    prop = _single(event, "DTSTART")
    if prop is None:
        raise IcsError(f"event {_text(event, 'UID')} has no DTSTART")
    value = prop.dt
    tz = prop.params.get("TZID")
    moment, floating = _as_utc(value)
    all_day = not isinstance(value, datetime)
    return moment, all_day, (str(tz) if tz and not floating else None), floating


def _as_utc(value: date | datetime) -> tuple[datetime, bool]:
    """An iCalendar DATE or DATE-TIME as a UTC datetime, and whether it was floating."""
    if not isinstance(value, datetime):
        return datetime.combine(value, time(), tzinfo=UTC), False
    if value.tzinfo is None or value.utcoffset() is None:
        return value.replace(tzinfo=UTC), True
    try:
        return value.astimezone(UTC), False
    except OverflowError:
        raise IcsError(f"the time {value.isoformat()} is out of range") from None


def _duration_minutes(event: Component, start: datetime, all_day: bool) -> int:
    end_prop = _single(event, "DTEND")
    duration_prop = _single(event, "DURATION")
    if end_prop is not None:
        end, _ = _as_utc(end_prop.dt)
        delta = end - start
    elif duration_prop is not None:
        delta = duration_prop.dt
        if not isinstance(delta, timedelta):
            raise IcsError(f"event {_text(event, 'UID')} has a malformed DURATION")
    else:
        delta = timedelta(days=1) if all_day else timedelta()
    minutes = max(0, math.ceil(delta.total_seconds() / 60))
    if all_day:
        minutes = max(1, math.ceil(minutes / MINUTES_PER_DAY)) * MINUTES_PER_DAY
    return minutes


def _text(event: Component, name: str) -> str | None:
    value = event.get(name)
    if value is None:
        return None
    if isinstance(value, list):  # a property given twice: the first counts
        value = value[0]
    return str(value)


def _strip_link(description: str | None, link: str | None) -> str | None:
    if description is None:
        return None
    text = description.replace("\r\n", "\n")
    if link:
        if text == link:
            return None
        if text.endswith(LINK_SEPARATOR + link):
            text = text[: -len(LINK_SEPARATOR + link)]
    return text or None


def _attendees(event: Component) -> list[Attendee]:
    values = event.get("ATTENDEE")
    if values is None:
        return []
    if not isinstance(values, list):
        values = [values]
    attendees: list[Attendee] = []
    for value in values:
        address = str(value)
        if address[:7].lower() != "mailto:":
            continue
        email = address[7:].strip()
        if not email:
            continue
        name = getattr(value, "params", {}).get("CN")
        attendees.append((email, str(name) if name else None))
    return attendees


def _last_modified(event: Component) -> datetime | None:
    """LAST-MODIFIED only: DTSTAMP is no substitute, as some servers set it to the time of
    each download, which would make every event look just edited."""
    prop = event.get("LAST-MODIFIED")
    if prop is None:
        return None
    if isinstance(prop, list):
        prop = prop[0]
    return _as_utc(prop.dt)[0]


def _int(value: str | None) -> int:
    try:
        return int(value) if value is not None else 0
    except ValueError:
        return 0


def _utc(moment: datetime) -> datetime:
    """In UTC, to the second (iCalendar has no fractions); a naive time is taken as UTC."""
    aware = moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)
    return aware.replace(microsecond=0)


__all__ = [
    "EventOccurrence",
    "IcsError",
    "activity_to_ics",
    "event_uid_of",
    "last_modified_of",
    "occurrence_fields",
    "parse_calendar",
]
