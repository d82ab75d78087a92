"""The iCalendar mapping: activities written as events and read back, recurring events
expanded in a window, events written by other apps, and malformed text."""

from __future__ import annotations

import contextlib
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from crmsync.calendar.ics import (
    MAX_OCCURRENCES,
    EventOccurrence,
    IcsError,
    activity_to_ics,
    event_uid_of,
    last_modified_of,
    occurrence_fields,
    parse_calendar,
)
from crmsync.models.activities import Activity, ActivityCreate, Participant

NOW = datetime(2024, 3, 1, 12, 0, tzinfo=UTC)
LINK = "https://crm.example.com/activities/act_1"
WINDOW_START = datetime(2024, 3, 1, tzinfo=UTC)
WINDOW_END = WINDOW_START + timedelta(days=90)
BERLIN = ZoneInfo("Europe/Berlin")
NEW_YORK = ZoneInfo("America/New_York")


def make_activity(**changes: object) -> Activity:
    fields: dict[str, object] = {
        "id": "act_1",
        "created_at": datetime(2024, 2, 1, tzinfo=UTC),
        "updated_at": datetime(2024, 2, 28, 16, 30, 5, tzinfo=UTC),
        "owner_id": "usr_1",
        "type": "meeting",
        "subject": "Kick-off with Acme",
        "start": datetime(2024, 3, 5, 9, 0, tzinfo=UTC),
        "duration_minutes": 45,
        "location": "Room 4.12",
        "note": "Agenda:\n1. scope\n2. dates",
        "participants": [
            Participant(email="ann@acme.example", name="Ann Smith"),
            Participant(email="bob@acme.example"),
        ],
    }
    fields.update(changes)
    return Activity.model_validate(fields)


def parse_one(ics: str) -> EventOccurrence:
    [occurrence] = parse_calendar(ics, window_start=WINDOW_START, window_end=WINDOW_END)
    return occurrence


def lines(ics: str) -> list[str]:
    """The unfolded content lines."""
    return ics.replace("\r\n ", "").splitlines()


# ---------------------------------------------------------------- activity → ics → occurrence


def test_timed_activity_is_written_in_utc_and_read_back() -> None:
    activity = make_activity()

    ics = activity_to_ics(activity, uid="crm-act_1@crmsync", link=LINK, now=NOW)
    occurrence = parse_one(ics)

    assert "BEGIN:VCALENDAR" in lines(ics)
    assert "PRODID:-//crmsync//EN" in lines(ics)
    assert "VERSION:2.0" in lines(ics)
    assert "DTSTART:20240305T090000Z" in lines(ics)
    assert "DTEND:20240305T094500Z" in lines(ics)
    assert "DTSTAMP:20240301T120000Z" in lines(ics)
    assert "LAST-MODIFIED:20240228T163005Z" in lines(ics)
    assert "BEGIN:VTIMEZONE" not in ics
    assert occurrence.uid == "crm-act_1@crmsync"
    assert occurrence.recurrence_id is None
    assert occurrence.recurring is False
    assert occurrence.start == activity.start
    assert occurrence.duration_minutes == 45
    assert occurrence.all_day is False
    assert occurrence.tz is None
    assert occurrence.floating is False
    assert occurrence.last_modified == activity.updated_at
    assert occurrence.activity_id == "act_1"
    assert occurrence.activity_type == "meeting"
    assert occurrence_fields(occurrence) == {
        "subject": "Kick-off with Acme",
        "start": activity.start,
        "duration_minutes": 45,
        "all_day": False,
        "location": "Room 4.12",
        "note": "Agenda:\n1. scope\n2. dates",
        "participants": [
            {"email": "ann@acme.example", "name": "Ann Smith"},
            {"email": "bob@acme.example"},
        ],
        "busy": True,
        "done": False,
    }


def test_the_activity_properties_are_marked() -> None:
    ics = activity_to_ics(make_activity(type="call", done=True), uid="u", link=None, now=NOW)

    assert "X-CRMSYNC-ACTIVITY-ID:act_1" in lines(ics)
    assert "X-CRMSYNC-TYPE:call" in lines(ics)
    assert "X-CRMSYNC-DONE:TRUE" in lines(ics)
    assert "SUMMARY:Kick-off with Acme" in lines(ics)
    assert "LOCATION:Room 4.12" in lines(ics)


def test_an_activity_without_a_duration_has_no_end() -> None:
    ics = activity_to_ics(make_activity(duration_minutes=0), uid="u", link=None, now=NOW)

    assert "DTEND" not in ics
    assert parse_one(ics).duration_minutes == 0


@pytest.mark.parametrize(
    ("duration", "end", "days"),
    [(0, "20240305", 1), (1440, "20240305", 1), (1441, "20240306", 2), (3 * 1440, "20240307", 3)],
)
def test_all_day_activity_is_written_as_dates(duration: int, end: str, days: int) -> None:
    activity = make_activity(
        all_day=True, start=datetime(2024, 3, 4, tzinfo=UTC), duration_minutes=duration
    )

    ics = activity_to_ics(activity, uid="u", link=None, tzid="Europe/Berlin", now=NOW)
    occurrence = parse_one(ics)

    assert "DTSTART;VALUE=DATE:20240304" in lines(ics)
    assert f"DTEND;VALUE=DATE:{end}" in lines(ics)
    assert "BEGIN:VTIMEZONE" not in ics  # dates have no time zone
    assert occurrence.all_day is True
    assert occurrence.start == datetime(2024, 3, 4, tzinfo=UTC)
    assert occurrence.duration_minutes == days * 1440
    assert occurrence.tz is None


def test_berlin_event_across_the_spring_change_keeps_its_absolute_times() -> None:
    # Saturday 10:00 CET to Sunday 12:00 CEST: 25 hours of wall clock, 25 hours absolute.
    start = datetime(2024, 3, 30, 10, 0, tzinfo=BERLIN)
    activity = make_activity(start=start, duration_minutes=25 * 60)

    ics = activity_to_ics(activity, uid="u", link=None, tzid="Europe/Berlin", now=NOW)
    occurrence = parse_one(ics)

    assert "DTSTART;TZID=Europe/Berlin:20240330T100000" in lines(ics)
    assert "DTEND;TZID=Europe/Berlin:20240331T120000" in lines(ics)
    assert "TZID:Europe/Berlin" in lines(ics)
    assert ics.index("BEGIN:VTIMEZONE") < ics.index("BEGIN:VEVENT")
    assert occurrence.start == datetime(2024, 3, 30, 9, 0, tzinfo=UTC)
    assert occurrence.duration_minutes == 25 * 60
    assert occurrence.tz == "Europe/Berlin"


def test_new_york_event_keeps_its_absolute_times() -> None:
    start = datetime(2024, 11, 4, 9, 30, tzinfo=NEW_YORK)  # the Monday after the change
    activity = make_activity(start=start, duration_minutes=90)

    ics = activity_to_ics(activity, uid="u", link=None, tzid="America/New_York", now=NOW)
    occurrence = parse_one(ics)

    assert "DTSTART;TZID=America/New_York:20241104T093000" in lines(ics)
    assert occurrence.start == datetime(2024, 11, 4, 14, 30, tzinfo=UTC)
    assert occurrence.duration_minutes == 90
    assert occurrence.tz == "America/New_York"


@pytest.mark.parametrize("tzid", ["Europe/Berlin", "America/New_York"])
def test_the_written_vtimezone_alone_gives_the_same_times(tzid: str) -> None:
    """A reader without a time zone database uses our VTIMEZONE: rename the zone so that
    icalendar cannot look it up either."""
    zone = ZoneInfo(tzid)
    for start in (
        datetime(2024, 3, 9, 22, 0, tzinfo=zone),
        datetime(2024, 7, 1, 8, 0, tzinfo=zone),
    ):
        activity = make_activity(start=start, duration_minutes=48 * 60)
        ics = activity_to_ics(activity, uid="u", link=None, tzid=tzid, now=NOW)

        occurrence = parse_one(ics.replace(tzid, "Custom Zone"))

        assert occurrence.start == activity.start
        assert occurrence.duration_minutes == 48 * 60
        assert occurrence.tz == "Custom Zone"


def test_the_second_of_two_equal_wall_times_is_written_in_utc() -> None:
    # 2024-10-27 02:30 happens twice in Berlin; a TZID time always means the first.
    second = datetime(2024, 10, 27, 1, 30, tzinfo=UTC)
    activity = make_activity(start=second, duration_minutes=30)

    ics = activity_to_ics(activity, uid="u", link=None, tzid="Europe/Berlin", now=NOW)

    assert "DTSTART:20241027T013000Z" in lines(ics)
    assert parse_one(ics).start == second


def test_an_unknown_time_zone_is_refused() -> None:
    with pytest.raises(IcsError, match="Mars/Olympus"):
        activity_to_ics(make_activity(), uid="u", link=None, tzid="Mars/Olympus", now=NOW)


def test_attendees_with_names_that_need_quoting() -> None:
    participants = [
        Participant(email="ann@acme.example", name='Ann "Annie" Smith, PhD'),
        Participant(email="jo@acme.example", name="Jo; Müller: Ünterwegs"),
        Participant(email="bob@acme.example"),
    ]
    ics = activity_to_ics(make_activity(participants=participants), uid="u", link=None, now=NOW)

    assert "ATTENDEE:mailto:bob@acme.example" in lines(ics)
    assert parse_one(ics).attendees == [
        ("ann@acme.example", 'Ann "Annie" Smith, PhD'),
        ("jo@acme.example", "Jo; Müller: Ünterwegs"),
        ("bob@acme.example", None),
    ]


def test_a_backslash_in_a_name_becomes_a_slash() -> None:
    participants = [Participant(email="ann@acme.example", name="Sales\\")]
    ics = activity_to_ics(make_activity(participants=participants), uid="u", link=None, now=NOW)

    assert parse_one(ics).attendees == [("ann@acme.example", "Sales/")]


@pytest.mark.parametrize(("busy", "transp"), [(True, "OPAQUE"), (False, "TRANSPARENT")])
def test_busy_and_free(busy: bool, transp: str) -> None:
    ics = activity_to_ics(make_activity(busy=busy), uid="u", link=None, now=NOW)

    assert f"TRANSP:{transp}" in lines(ics)
    assert parse_one(ics).busy is busy


@pytest.mark.parametrize(("done", "value"), [(True, "TRUE"), (False, "FALSE")])
def test_done_flag(done: bool, value: str) -> None:
    ics = activity_to_ics(make_activity(done=done), uid="u", link=None, now=NOW)

    assert f"X-CRMSYNC-DONE:{value}" in lines(ics)
    assert parse_one(ics).done is done


def test_the_link_back_is_appended_to_the_description_and_stripped_on_reading() -> None:
    ics = activity_to_ics(make_activity(), uid="u", link=LINK, now=NOW)

    assert f"DESCRIPTION:Agenda:\\n1. scope\\n2. dates\\n\\n{LINK}" in lines(ics)
    assert f"URL:{LINK}" in lines(ics)
    assert parse_one(ics).description == "Agenda:\n1. scope\n2. dates"


@pytest.mark.parametrize("note", [None, ""])
def test_without_a_note_the_description_is_the_link_alone(note: str | None) -> None:
    ics = activity_to_ics(make_activity(note=note), uid="u", link=LINK, now=NOW)

    assert f"DESCRIPTION:{LINK}" in lines(ics)
    assert parse_one(ics).description is None


def test_without_note_or_link_there_is_no_description() -> None:
    ics = activity_to_ics(make_activity(note=None, location=None), uid="u", link=None, now=NOW)

    assert "DESCRIPTION" not in ics
    assert "LOCATION" not in ics
    assert "URL" not in ics


def test_a_description_edited_elsewhere_keeps_its_text() -> None:
    ics = activity_to_ics(make_activity(), uid="u", link=LINK, now=NOW)
    edited = ics.replace("\r\n ", "").replace("\\n\\n" + LINK, " (moved to Friday)")

    assert parse_one(edited).description == "Agenda:\n1. scope\n2. dates (moved to Friday)"


def test_line_breaks_and_control_characters_in_text() -> None:
    activity = make_activity(note="one\r\ntwo\rthree\x00\x07 four\tfive")

    occurrence = parse_one(activity_to_ics(activity, uid="u", link=None, now=NOW))

    assert occurrence.description == "one\ntwo\nthree four\tfive"


def test_seconds_survive_and_fractions_are_dropped() -> None:
    activity = make_activity(start=datetime(2024, 3, 5, 9, 0, 7, 500_000, tzinfo=UTC))

    occurrence = parse_one(activity_to_ics(activity, uid="u", link=None, now=NOW))

    assert occurrence.start == datetime(2024, 3, 5, 9, 0, 7, tzinfo=UTC)


def test_uid_and_last_modified_helpers() -> None:
    ics = activity_to_ics(make_activity(), uid="crm-act_1@crmsync", link=None, now=NOW)

    assert event_uid_of(ics) == "crm-act_1@crmsync"
    assert last_modified_of(ics) == datetime(2024, 2, 28, 16, 30, 5, tzinfo=UTC)
    assert event_uid_of(calendar()) is None
    assert last_modified_of(calendar(event("DTSTART:20240305T090000Z"))) is None
    assert last_modified_of(WEEKLY) == datetime(2024, 3, 20, 8, 0, tzinfo=UTC)  # the override


# ---------------------------------------------------------------- recurring events

VTIMEZONE_BERLIN = """BEGIN:VTIMEZONE
TZID:Europe/Berlin
BEGIN:DAYLIGHT
TZOFFSETFROM:+0100
TZOFFSETTO:+0200
TZNAME:CEST
DTSTART:19700329T020000
RRULE:FREQ=YEARLY;BYMONTH=3;BYDAY=-1SU
END:DAYLIGHT
BEGIN:STANDARD
TZOFFSETFROM:+0200
TZOFFSETTO:+0100
TZNAME:CET
DTSTART:19701025T030000
RRULE:FREQ=YEARLY;BYMONTH=10;BYDAY=-1SU
END:STANDARD
END:VTIMEZONE
"""


def calendar(*components: str, header: str = "") -> str:
    body = "".join(components)
    text = f"BEGIN:VCALENDAR\nVERSION:2.0\nPRODID:-//Test//EN\n{header}{body}END:VCALENDAR\n"
    return text.replace("\n", "\r\n")


def event(*props: str, uid: str = "series-1@example.com") -> str:
    body = "".join(f"{prop}\n" for prop in props)
    return f"BEGIN:VEVENT\nUID:{uid}\nDTSTAMP:20240301T000000Z\n{body}END:VEVENT\n"


WEEKLY = calendar(
    VTIMEZONE_BERLIN,
    event(
        "SUMMARY:Pipeline review",
        "DTSTART;TZID=Europe/Berlin:20240305T090000",
        "DTEND;TZID=Europe/Berlin:20240305T100000",
        "RRULE:FREQ=WEEKLY;BYDAY=TU",
        "EXDATE;TZID=Europe/Berlin:20240319T090000",
        "LAST-MODIFIED:20240301T080000Z",
    ),
    event(
        "SUMMARY:Pipeline review (moved)",
        "RECURRENCE-ID;TZID=Europe/Berlin:20240326T090000",
        "DTSTART;TZID=Europe/Berlin:20240327T143000",
        "DTEND;TZID=Europe/Berlin:20240327T153000",
        "SEQUENCE:1",
        "LAST-MODIFIED:20240320T080000Z",
    ),
)


def utc(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def test_weekly_series_with_an_exception_and_an_exdate_in_a_90_day_window() -> None:
    occurrences = parse_calendar(WEEKLY, window_start=WINDOW_START, window_end=WINDOW_END)

    # 09:00 Berlin is 08:00 UTC until 31 March, 07:00 UTC after; 19 March is excluded and
    # 26 March moved to Wednesday 14:30.
    assert [o.start for o in occurrences] == [
        utc("2024-03-05T08:00"),
        utc("2024-03-12T08:00"),
        utc("2024-03-27T13:30"),
        *(utc(f"2024-{day}T07:00") for day in ("04-02", "04-09", "04-16", "04-23", "04-30")),
        *(utc(f"2024-{day}T07:00") for day in ("05-07", "05-14", "05-21", "05-28")),
    ]
    moved = occurrences[2]
    assert moved.recurrence_id == "2024-03-26T08:00:00+00:00"
    assert moved.summary == "Pipeline review (moved)"
    assert moved.last_modified == utc("2024-03-20T08:00")
    assert all(o.recurring and o.uid == "series-1@example.com" for o in occurrences)
    assert all(o.duration_minutes == 60 and o.tz == "Europe/Berlin" for o in occurrences)
    others = [o for o in occurrences if o is not moved]
    assert all(o.recurrence_id == o.start.isoformat() for o in others)
    assert all(o.summary == "Pipeline review" for o in others)
    assert len({o.key for o in occurrences}) == len(occurrences)


def test_moving_the_window_forward_adds_the_next_occurrences() -> None:
    before = parse_calendar(WEEKLY, window_start=WINDOW_START, window_end=WINDOW_END)
    later = WINDOW_START + timedelta(days=14)

    after = parse_calendar(WEEKLY, window_start=later, window_end=later + timedelta(days=90))

    old = {o.key for o in before}
    new = {o.key for o in after}
    assert sorted(new - old) == [
        "series-1@example.com#2024-06-04T07:00:00+00:00",
        "series-1@example.com#2024-06-11T07:00:00+00:00",
    ]
    assert sorted(old - new) == [
        "series-1@example.com#2024-03-05T08:00:00+00:00",
        "series-1@example.com#2024-03-12T08:00:00+00:00",
    ]


def test_the_window_is_half_open() -> None:
    start = utc("2024-03-12T08:00")

    occurrences = parse_calendar(WEEKLY, window_start=start, window_end=utc("2024-04-02T07:00"))

    assert [o.start for o in occurrences] == [start, utc("2024-03-27T13:30")]


def test_a_count_limited_rule() -> None:
    ics = calendar(
        event(
            "SUMMARY:Onboarding",
            "DTSTART:20240304T140000Z",
            "DURATION:PT30M",
            "RRULE:FREQ=DAILY;COUNT=4",
        )
    )

    everything = parse_calendar(ics, window_start=WINDOW_START, window_end=WINDOW_END)
    from_the_6th = parse_calendar(ics, window_start=utc("2024-03-06"), window_end=WINDOW_END)

    assert [o.start.day for o in everything] == [4, 5, 6, 7]
    assert all(o.duration_minutes == 30 for o in everything)
    assert [o.start.day for o in from_the_6th] == [6, 7]


def test_a_single_event_is_returned_wherever_it_is() -> None:
    ics = calendar(event("DTSTART:20200101T090000Z", "DTEND:20200101T100000Z"))

    [occurrence] = parse_calendar(ics, window_start=WINDOW_START, window_end=WINDOW_END)

    assert occurrence.start == utc("2020-01-01T09:00")
    assert occurrence.recurring is False


def test_recurring_all_day_event_with_an_exdate() -> None:
    ics = calendar(
        event(
            "DTSTART;VALUE=DATE:20240304",
            "DTEND;VALUE=DATE:20240305",
            "RRULE:FREQ=MONTHLY;COUNT=3",
            "EXDATE;VALUE=DATE:20240404",
        )
    )

    occurrences = parse_calendar(ics, window_start=WINDOW_START, window_end=WINDOW_END)

    assert [o.start for o in occurrences] == [utc("2024-03-04"), utc("2024-05-04")]
    assert all(o.all_day and o.duration_minutes == 1440 for o in occurrences)
    assert occurrences[0].recurrence_id == "2024-03-04T00:00:00+00:00"


def test_a_cancelled_instance_is_reported_as_cancelled() -> None:
    ics = calendar(
        event("DTSTART:20240304T140000Z", "RRULE:FREQ=DAILY;COUNT=3"),
        event("RECURRENCE-ID:20240305T140000Z", "DTSTART:20240305T140000Z", "STATUS:CANCELLED"),
    )

    occurrences = parse_calendar(ics, window_start=WINDOW_START, window_end=WINDOW_END)

    assert [o.cancelled for o in occurrences] == [False, True, False]


def test_rdate_adds_occurrences() -> None:
    ics = calendar(event("DTSTART:20240304T140000Z", "RDATE:20240310T120000Z,20240401T120000Z"))

    occurrences = parse_calendar(ics, window_start=WINDOW_START, window_end=WINDOW_END)

    assert [o.start for o in occurrences] == [
        utc("2024-03-04T14:00"),
        utc("2024-03-10T12:00"),
        utc("2024-04-01T12:00"),
    ]


@pytest.mark.parametrize(
    ("rule", "message"),
    [
        ("FREQ=HOURLY", f"more than {MAX_OCCURRENCES}"),
        ("FREQ=MINUTELY;COUNT=5", "MINUTELY is not supported"),
        ("FREQ=SECONDLY", "SECONDLY is not supported"),
        ("FREQ=DAILY;INTERVAL=0", "INTERVAL must be one positive number"),  # dateutil hangs
        ("FREQ=DAILY;COUNT=0", "COUNT must be one positive number"),
    ],
)
def test_rules_that_cannot_be_expanded_are_refused(rule: str, message: str) -> None:
    ics = calendar(event("DTSTART:20240304T140000Z", f"RRULE:{rule}"))

    with pytest.raises(IcsError, match=message):
        parse_calendar(ics, window_start=WINDOW_START, window_end=WINDOW_END)


def test_floating_times_are_read_as_utc_and_say_so() -> None:
    ics = calendar(event("DTSTART:20240305T090000", "DTEND:20240305T093000"))

    occurrence = parse_one(ics)

    assert occurrence.start == utc("2024-03-05T09:00")
    assert occurrence.floating is True
    assert occurrence.tz is None
    assert occurrence.duration_minutes == 30


def test_an_unknown_tzid_without_vtimezone_is_floating() -> None:
    ics = calendar(event("DTSTART;TZID=Mars/Olympus:20240305T090000"))

    occurrence = parse_one(ics)

    assert occurrence.start == utc("2024-03-05T09:00")
    assert occurrence.floating is True


def custom_zone(standard: str, daylight: str) -> str:
    """An Outlook-style VTIMEZONE under the name Outlook gives every zone it invents."""
    return (
        "BEGIN:VTIMEZONE\nTZID:Customized Time Zone\n"
        f"BEGIN:STANDARD\nDTSTART:16010101T030000\nTZOFFSETFROM:{daylight}\n"
        f"TZOFFSETTO:{standard}\nRRULE:FREQ=YEARLY;BYDAY=-1SU;BYMONTH=10\nEND:STANDARD\n"
        f"BEGIN:DAYLIGHT\nDTSTART:16010101T020000\nTZOFFSETFROM:{standard}\n"
        f"TZOFFSETTO:{daylight}\nRRULE:FREQ=YEARLY;BYDAY=-1SU;BYMONTH=3\nEND:DAYLIGHT\n"
        "END:VTIMEZONE\n"
    )


CUSTOM_SERIES = event(
    "DTSTART;TZID=Customized Time Zone:20240305T090000",
    "RRULE:FREQ=DAILY;COUNT=3",
    "EXDATE;TZID=Customized Time Zone:20240306T090000",
)


@pytest.mark.parametrize("zone_first", [True, False])
def test_each_calendar_uses_its_own_definition_of_a_custom_zone(zone_first: bool) -> None:
    """icalendar caches custom zones by TZID for the whole process; two calendars that
    define "Customized Time Zone" differently must each get their own offsets, also when
    the VTIMEZONE comes after the event."""
    for standard, daylight, hour in (("+0100", "+0200", 8), ("-0500", "-0400", 14)):
        zone = custom_zone(standard, daylight)
        parts = (zone, CUSTOM_SERIES) if zone_first else (CUSTOM_SERIES, zone)

        occurrences = parse_calendar(
            calendar(*parts), window_start=WINDOW_START, window_end=WINDOW_END
        )

        assert [o.start for o in occurrences] == [
            utc(f"2024-03-05T{hour:02}:00"),
            utc(f"2024-03-07T{hour:02}:00"),
        ]
        assert all(o.tz == "Customized Time Zone" and not o.floating for o in occurrences)


def test_a_custom_zone_defined_elsewhere_is_not_borrowed() -> None:
    parse_calendar(
        calendar(custom_zone("+0100", "+0200"), CUSTOM_SERIES),
        window_start=WINDOW_START,
        window_end=WINDOW_END,
    )

    occurrences = parse_calendar(
        calendar(CUSTOM_SERIES), window_start=WINDOW_START, window_end=WINDOW_END
    )

    assert [o.start for o in occurrences] == [utc("2024-03-05T09:00"), utc("2024-03-07T09:00")]
    assert all(o.floating for o in occurrences)


def test_an_end_before_the_start_is_a_zero_length_event() -> None:
    ics = calendar(event("DTSTART:20240305T090000Z", "DTEND:20240305T080000Z"))

    assert parse_one(ics).duration_minutes == 0


# ---------------------------------------------------------------- events from other apps

APPLE = """BEGIN:VCALENDAR
VERSION:2.0
PRODID:-//Apple Inc.//macOS 14.4.1//EN
CALSCALE:GREGORIAN
BEGIN:VTIMEZONE
TZID:America/New_York
BEGIN:DAYLIGHT
TZOFFSETFROM:-0500
RRULE:FREQ=YEARLY;BYMONTH=3;BYDAY=2SU
DTSTART:20070311T020000
TZNAME:EDT
TZOFFSETTO:-0400
END:DAYLIGHT
BEGIN:STANDARD
TZOFFSETFROM:-0400
RRULE:FREQ=YEARLY;BYMONTH=11;BYDAY=1SU
DTSTART:20071104T020000
TZNAME:EST
TZOFFSETTO:-0500
END:STANDARD
END:VTIMEZONE
BEGIN:VEVENT
TRANSP:OPAQUE
DTEND;TZID=America/New_York:20241104T103000
UID:9F1E3C2A-5B6D-4E7F-8A9B-0C1D2E3F4A5B
DTSTAMP:20241028T143210Z
LOCATION:Conference Room B\\n350 5th Ave\\, New York
X-APPLE-STRUCTURED-LOCATION;VALUE=URI;X-ADDRESS="350 5th Ave, New York";X-AP
 PLE-RADIUS=70;X-TITLE="Conference Room B":geo:40.748441,-73.985664
DESCRIPTION:Quarterly review. Bring the numbers for the east coast accounts
  and the renewal list.
SEQUENCE:2
X-APPLE-TRAVEL-ADVISORY-BEHAVIOR:AUTOMATIC
SUMMARY:Q4 review with Acme
LAST-MODIFIED:20241028T143205Z
CREATED:20241020T090000Z
DTSTART;TZID=America/New_York:20241104T093000
ATTENDEE;CN="Jane Doe";CUTYPE=INDIVIDUAL;EMAIL="jane@acme.example";PARTSTAT
 =ACCEPTED;ROLE=REQ-PARTICIPANT:mailto:jane@acme.example
ATTENDEE;CN=Room B;CUTYPE=ROOM;PARTSTAT=ACCEPTED:urn:uuid:6E1F0B6C-2D1A-4F8
 A-9C51-3D0C2E7E4B11
ATTENDEE;CUTYPE=INDIVIDUAL;PARTSTAT=NEEDS-ACTION:MAILTO:bob@example.com
ORGANIZER;CN="Sam Sales":mailto:sam@crm.example
BEGIN:VALARM
X-WR-ALARMUID:1C1B5E2A-7D4B-4C52-9A8E-2B7A8D1C0F11
UID:1C1B5E2A-7D4B-4C52-9A8E-2B7A8D1C0F11
TRIGGER:-PT15M
ATTACH;VALUE=URI:Chord
ACTION:AUDIO
END:VALARM
END:VEVENT
END:VCALENDAR
""".replace("\n", "\r\n")


def test_apple_event_with_vtimezone_alarm_and_x_properties() -> None:
    occurrence = parse_one(APPLE)

    # The day after the autumn change: 09:30 EST is 14:30 UTC.
    assert occurrence.start == utc("2024-11-04T14:30")
    assert occurrence.duration_minutes == 60
    assert occurrence.tz == "America/New_York"
    assert occurrence.summary == "Q4 review with Acme"
    assert occurrence.location == "Conference Room B\n350 5th Ave, New York"
    assert occurrence.description == (
        "Quarterly review. Bring the numbers for the east coast accounts and the renewal list."
    )
    assert occurrence.attendees == [("jane@acme.example", "Jane Doe"), ("bob@example.com", None)]
    assert occurrence.sequence == 2
    assert occurrence.last_modified == utc("2024-10-28T14:32:05")
    assert occurrence.activity_id is None
    assert occurrence.busy is True
    assert occurrence.done is False
    assert event_uid_of(APPLE) == "9F1E3C2A-5B6D-4E7F-8A9B-0C1D2E3F4A5B"


GOOGLE = """BEGIN:VCALENDAR
PRODID:-//Google Inc//Google Calendar 70.9054//EN
VERSION:2.0
CALSCALE:GREGORIAN
METHOD:PUBLISH
X-WR-CALNAME:Sales
X-WR-TIMEZONE:Europe/Berlin
BEGIN:VTIMEZONE
TZID:Europe/Berlin
X-LIC-LOCATION:Europe/Berlin
BEGIN:DAYLIGHT
TZOFFSETFROM:+0100
TZOFFSETTO:+0200
TZNAME:CEST
DTSTART:19700329T020000
RRULE:FREQ=YEARLY;BYMONTH=3;BYDAY=-1SU
END:DAYLIGHT
BEGIN:STANDARD
TZOFFSETFROM:+0200
TZOFFSETTO:+0100
TZNAME:CET
DTSTART:19701025T030000
RRULE:FREQ=YEARLY;BYMONTH=10;BYDAY=-1SU
END:STANDARD
END:VTIMEZONE
BEGIN:VEVENT
DTSTART;TZID=Europe/Berlin:20241021T100000
DTEND;TZID=Europe/Berlin:20241021T103000
RRULE:FREQ=WEEKLY;WKST=MO;UNTIL=20241111T085959Z;BYDAY=MO
EXDATE;TZID=Europe/Berlin:20241028T100000
DTSTAMP:20241015T120000Z
UID:7kukuqrfedlm2f9t0vj8f7fg5t@google.com
ATTENDEE;CUTYPE=INDIVIDUAL;ROLE=REQ-PARTICIPANT;PARTSTAT=ACCEPTED;CN=ann@ac
 me.example;X-NUM-GUESTS=0:mailto:ann@acme.example
X-GOOGLE-CONFERENCE:https://meet.google.com/abc-defg-hij
CREATED:20241001T090000Z
DESCRIPTION:
LAST-MODIFIED:20241015T115900Z
LOCATION:
SEQUENCE:0
STATUS:CONFIRMED
SUMMARY:Pipeline sync
TRANSP:OPAQUE
BEGIN:VALARM
ACTION:DISPLAY
DESCRIPTION:This is an event reminder
TRIGGER:-P0DT0H10M0S
END:VALARM
END:VEVENT
BEGIN:VEVENT
DTSTART;TZID=Europe/Berlin:20241104T113000
DTEND;TZID=Europe/Berlin:20241104T120000
DTSTAMP:20241015T120000Z
UID:7kukuqrfedlm2f9t0vj8f7fg5t@google.com
RECURRENCE-ID;TZID=Europe/Berlin:20241104T100000
CREATED:20241001T090000Z
LAST-MODIFIED:20241020T070000Z
SEQUENCE:1
STATUS:CONFIRMED
SUMMARY:Pipeline sync (later)
TRANSP:OPAQUE
END:VEVENT
BEGIN:VEVENT
DTSTART;VALUE=DATE:20241031
DTEND;VALUE=DATE:20241102
DTSTAMP:20241015T120000Z
UID:2b3c4d5e6f7g8h9i0j@google.com
SUMMARY:Trade fair
TRANSP:TRANSPARENT
END:VEVENT
BEGIN:VEVENT
DTSTART:20241022T150000Z
DTEND:20241022T160000Z
DTSTAMP:20241015T120000Z
UID:a1b2c3d4e5@google.com
SUMMARY:Call with Bob
END:VEVENT
END:VCALENDAR
""".replace("\n", "\r\n")


def test_google_export_with_x_wr_timezone_an_override_and_an_all_day_event() -> None:
    occurrences = parse_calendar(
        GOOGLE, window_start=utc("2024-10-01"), window_end=utc("2024-12-01")
    )

    assert [(o.uid.split("@")[0], o.start) for o in occurrences] == [
        ("7kukuqrfedlm2f9t0vj8f7fg5t", utc("2024-10-21T08:00")),
        ("a1b2c3d4e5", utc("2024-10-22T15:00")),
        ("2b3c4d5e6f7g8h9i0j", utc("2024-10-31T00:00")),
        ("7kukuqrfedlm2f9t0vj8f7fg5t", utc("2024-11-04T10:30")),  # 11:30 CET
    ]
    series, call, fair, moved = occurrences
    assert series.duration_minutes == 30
    assert series.location is None
    assert series.description is None
    assert series.attendees == [("ann@acme.example", "ann@acme.example")]
    assert moved.recurrence_id == "2024-11-04T09:00:00+00:00"
    assert moved.summary == "Pipeline sync (later)"
    assert fair.all_day is True
    assert fair.duration_minutes == 2 * 1440
    assert fair.busy is False
    assert call.recurring is False
    assert call.duration_minutes == 60


def test_floating_times_in_a_calendar_with_x_wr_timezone_are_in_that_zone() -> None:
    ics = calendar(
        event("DTSTART:20240305T090000", "DTEND:20240305T100000"),
        header="X-WR-TIMEZONE:America/New_York\n",
    )

    occurrence = parse_one(ics)

    assert occurrence.start == utc("2024-03-05T14:00")
    assert occurrence.floating is False


@pytest.mark.parametrize("zone", ["Mars/Olympus", "W. Europe Standard Time", ""])
def test_an_x_wr_timezone_that_is_no_zone_is_ignored(zone: str) -> None:
    ics = calendar(
        event("DTSTART:20240305T090000", "RRULE:FREQ=DAILY;COUNT=2"),
        header=f"X-WR-TIMEZONE:{zone}\n",
    )

    occurrences = parse_calendar(ics, window_start=WINDOW_START, window_end=WINDOW_END)

    assert [o.start for o in occurrences] == [utc("2024-03-05T09:00"), utc("2024-03-06T09:00")]
    assert all(o.floating for o in occurrences)


OUTLOOK = """BEGIN:VCALENDAR
METHOD:REQUEST
PRODID:Microsoft Exchange Server 2010
VERSION:2.0
BEGIN:VTIMEZONE
TZID:W. Europe Standard Time
BEGIN:STANDARD
DTSTART:16010101T030000
TZOFFSETFROM:+0200
TZOFFSETTO:+0100
RRULE:FREQ=YEARLY;INTERVAL=1;BYDAY=-1SU;BYMONTH=10
END:STANDARD
BEGIN:DAYLIGHT
DTSTART:16010101T020000
TZOFFSETFROM:+0100
TZOFFSETTO:+0200
RRULE:FREQ=YEARLY;INTERVAL=1;BYDAY=-1SU;BYMONTH=3
END:DAYLIGHT
END:VTIMEZONE
BEGIN:VEVENT
ORGANIZER;CN=Max Mustermann:mailto:max@contoso.example
ATTENDEE;ROLE=REQ-PARTICIPANT;PARTSTAT=NEEDS-ACTION;RSVP=TRUE;CN=Erika Muste
 rfrau:mailto:erika@contoso.example
DESCRIPTION;LANGUAGE=de-DE:Agenda folgt.\\n
UID:040000008200E00074C5B7101A82E00800000000D0A5D6F1C2E5DA0100000000000000001
 0000000A1B2C3D4E5F60718293A4B5C6D7E8F90
SUMMARY;LANGUAGE=de-DE:Projektbesprechung
DTSTART;TZID=W. Europe Standard Time:20241030T140000
DTEND;TZID=W. Europe Standard Time:20241030T150000
CLASS:PUBLIC
PRIORITY:5
DTSTAMP:20241025T080000Z
TRANSP:OPAQUE
STATUS:CONFIRMED
SEQUENCE:0
LOCATION;LANGUAGE=de-DE:Raum 4.12
X-MICROSOFT-CDO-APPT-SEQUENCE:0
X-MICROSOFT-CDO-BUSYSTATUS:BUSY
X-MICROSOFT-CDO-INTENDEDSTATUS:BUSY
X-MICROSOFT-CDO-ALLDAYEVENT:FALSE
X-MICROSOFT-CDO-IMPORTANCE:1
X-MICROSOFT-CDO-INSTTYPE:0
X-MICROSOFT-DISALLOW-COUNTER:FALSE
BEGIN:VALARM
DESCRIPTION:REMINDER
TRIGGER;RELATED=START:-PT15M
ACTION:DISPLAY
END:VALARM
END:VEVENT
END:VCALENDAR
""".replace("\n", "\r\n")


def test_outlook_event_with_a_windows_time_zone_name() -> None:
    occurrence = parse_one(OUTLOOK)

    assert occurrence.start == utc("2024-10-30T13:00")  # 14:00 CET
    assert occurrence.duration_minutes == 60
    assert occurrence.tz == "W. Europe Standard Time"
    assert occurrence.summary == "Projektbesprechung"
    assert occurrence.location == "Raum 4.12"
    assert occurrence.description == "Agenda folgt.\n"
    assert occurrence.attendees == [("erika@contoso.example", "Erika Musterfrau")]
    assert occurrence.uid.startswith("040000008200E00074C5B7101A82E008")


def test_occurrence_fields_fit_an_activity() -> None:
    occurrence = parse_one(APPLE).model_copy(
        update={
            "summary": "  " + "x" * 300,
            "description": "n" * 20_000,
            "duration_minutes": 90 * 1440,
            "attendees": [
                ("jane@acme.example", "Jane"),
                ("JANE@acme.example", None),
                ("not an address", None),
                ("rooms@resource.calendar.google.com", "Room"),
            ],
        }
    )

    fields = occurrence_fields(occurrence)
    ActivityCreate.model_validate({"type": "meeting", **fields})

    assert fields["subject"] == "x" * 255
    assert len(fields["note"]) == 10_000
    assert fields["duration_minutes"] == 31 * 1440
    assert [p["email"] for p in fields["participants"]] == [
        "jane@acme.example",
        "rooms@resource.calendar.google.com",
    ]


def test_an_untitled_event_gets_a_subject() -> None:
    occurrence = parse_one(calendar(event("DTSTART:20240305T090000Z")))

    assert occurrence_fields(occurrence)["subject"] == "(no title)"


# ---------------------------------------------------------------- any activity round trips

TZIDS = [None, "Europe/Berlin", "America/New_York", "Australia/Lord_Howe", "Asia/Kolkata"]
SAFE_TEXT = st.text(
    alphabet=st.characters(blacklist_categories=("Cs", "Cc")) | st.sampled_from("\n\t;,:\\\"'^"),
    max_size=120,
)
ONE_LINE = st.text(  # names: a backslash becomes a slash (see the attendee test)
    alphabet=st.characters(
        blacklist_categories=("Cs", "Cc", "Zl", "Zp"), blacklist_characters="\\"
    ),
    max_size=60,
)


def stripped(strategy: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
    return strategy.map(str.strip).filter(bool)


PARTICIPANTS = st.lists(
    st.builds(
        Participant,
        email=st.from_regex(
            r"[a-z][a-z0-9]{0,8}(\.[a-z0-9]{1,5})?@[a-z]{1,8}\.(com|test)", fullmatch=True
        ),
        name=st.none() | stripped(ONE_LINE),
    ),
    max_size=4,
    unique_by=lambda p: p.email,
)
ACTIVITIES = st.builds(
    make_activity,
    subject=stripped(SAFE_TEXT),
    start=st.datetimes(
        min_value=datetime(1971, 1, 1), max_value=datetime(2099, 12, 31), timezones=st.just(UTC)
    ).map(lambda moment: moment.replace(microsecond=0)),
    duration_minutes=st.integers(0, 31 * 1440),
    all_day=st.booleans(),
    location=st.none() | stripped(SAFE_TEXT),
    note=st.none() | SAFE_TEXT,
    participants=PARTICIPANTS,
    busy=st.booleans(),
    done=st.booleans(),
    type=st.sampled_from(["meeting", "call", "lunch", "site_visit"]),
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    activity=ACTIVITIES,
    tzid=st.sampled_from(TZIDS),
    link=st.none() | st.just(LINK),
)
def test_any_activity_survives_the_round_trip(
    activity: Activity, tzid: str | None, link: str | None
) -> None:
    ics = activity_to_ics(activity, uid="crm-x@crmsync", link=link, tzid=tzid, now=NOW)

    occurrence = parse_one(ics)
    fields = occurrence_fields(occurrence)

    if activity.all_day:
        days = max(1, -(-activity.duration_minutes // 1440))
        assert fields["start"] == datetime.combine(activity.start.date(), datetime.min.time(), UTC)
        assert fields["duration_minutes"] == days * 1440
    else:
        assert fields["start"] == activity.start
        assert fields["duration_minutes"] == activity.duration_minutes
    assert fields["all_day"] is activity.all_day
    assert fields["subject"] == activity.subject
    assert fields["location"] == activity.location
    assert fields["note"] == (activity.note or None)
    assert fields["participants"] == [
        p.model_dump(exclude_none=True) for p in activity.participants
    ]
    assert fields["busy"] is activity.busy
    assert fields["done"] is activity.done
    assert occurrence.activity_id == activity.id
    assert occurrence.activity_type == activity.type
    assert occurrence.last_modified == activity.updated_at
    assert occurrence.uid == event_uid_of(ics) == "crm-x@crmsync"
    if tzid is not None:  # a reader without a zone database gets the same times
        alone = parse_one(ics.replace(tzid, "Custom Zone"))
        assert (alone.start, alone.duration_minutes) == (
            fields["start"],
            fields["duration_minutes"],
        )


# ---------------------------------------------------------------- malformed text


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "empty"),
        ("   \r\n", "empty"),
        ("hello, world", "not iCalendar"),
        ("BEGIN:VCARD\r\nFN:Ann\r\nEND:VCARD\r\n", "not iCalendar"),
        ("BEGIN:VCALENDAR\r\nBEGIN:VEVENT\r\nUID:x\r\n", "malformed"),
        (calendar(event("SUMMARY:no start")), "no DTSTART"),
        (calendar(event("DTSTART:2024-03-05")), "DTSTART"),
        (calendar(event("DTSTART:20240305T090000Z", "DTEND:tomorrow")), "DTEND"),
        (calendar(event("DTSTART:20240305T090000Z", "RRULE:FREQ=SOMETIMES")), "RRULE"),
        (calendar(event("DTSTART:20240305T090000Z", "DURATION:an hour")), "DURATION"),
        (calendar(event("DTSTART:20240305T090000Z", "EXDATE:never")), "EXDATE"),
        (calendar(event("DTSTART:20240305T090000Z", "LAST-MODIFIED:yesterday")), "LAST-MODIFIED"),
        (calendar("BEGIN:VEVENT\nDTSTART:20240305T090000Z\nEND:VEVENT\n"), "no UID"),
        (calendar(event("DTSTART:20240305T090000Z")) * 2, "malformed"),
        (
            calendar(
                "BEGIN:VTIMEZONE\nTZID:X\nBEGIN:STANDARD\nDTSTART:16010101T030000\n"
                "TZOFFSETFROM:+0200\nTZOFFSETTO:soon\nEND:STANDARD\nEND:VTIMEZONE\n",
                event("DTSTART;TZID=X:20240305T090000"),
            ),
            "malformed",
        ),
    ],
)
def test_malformed_text_raises_ics_error(text: str, message: str) -> None:
    with pytest.raises(IcsError, match=message):
        parse_calendar(text, window_start=WINDOW_START, window_end=WINDOW_END)


def test_the_error_message_is_short() -> None:
    text = "BEGIN:VCALENDAR\r\n" + "X-JUNK:" + "x" * 5000 + "\r\nBEGIN:VEVENT\r\n"

    with pytest.raises(IcsError) as caught:
        parse_calendar(text, window_start=WINDOW_START, window_end=WINDOW_END)

    assert len(str(caught.value)) < 300


@settings(max_examples=200, deadline=None)
@given(
    cut=st.integers(0, len(WEEKLY)),
    junk=st.text(alphabet=st.sampled_from(":;=,\r\n\\ ABCDTZ0123456789-"), max_size=20),
)
def test_damaged_text_raises_only_ics_error(cut: int, junk: str) -> None:
    damaged = WEEKLY[:cut] + junk + WEEKLY[cut:]
    with contextlib.suppress(IcsError):
        parse_calendar(damaged, window_start=WINDOW_START, window_end=WINDOW_END)


def test_naive_window_is_refused() -> None:
    with pytest.raises(ValueError, match="UTC offset"):
        parse_calendar(WEEKLY, window_start=datetime(2024, 3, 1), window_end=WINDOW_END)


def test_an_empty_calendar_has_no_occurrences() -> None:
    assert parse_calendar(calendar(), window_start=WINDOW_START, window_end=WINDOW_END) == []
