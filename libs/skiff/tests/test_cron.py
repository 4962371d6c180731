"""Cron schedules: parsing, next activation (time zones, DST) and the API server's checks."""

from __future__ import annotations

from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pytest

from skiff.api.cron import (
    ScheduleError,
    format_time,
    parse_schedule,
    validate_schedule,
    validate_time_zone,
)

NEW_YORK = ZoneInfo("America/New_York")


def runs(spec: str, start: str, n: int, tz: ZoneInfo | None = None) -> list[str | None]:
    """The next ``n`` activations after ``start``, in the schedule's zone."""
    s = parse_schedule(spec, tz)
    t: float | None = datetime.fromisoformat(start).timestamp()
    out: list[str | None] = []
    for _ in range(n):
        assert t is not None
        t = s.next(t)
        out.append(None if t is None else datetime.fromtimestamp(t, s.tz).isoformat())
        if t is None:
            break
    return out


def test_steps_lists_ranges_and_names() -> None:
    assert runs("*/15 * * * *", "2025-01-01T10:07:00+00:00", 3) == [
        "2025-01-01T10:15:00+00:00",
        "2025-01-01T10:30:00+00:00",
        "2025-01-01T10:45:00+00:00",
    ]
    assert runs("5,35 9-10 * * *", "2025-01-01T09:30:00+00:00", 3) == [
        "2025-01-01T09:35:00+00:00",
        "2025-01-01T10:05:00+00:00",
        "2025-01-01T10:35:00+00:00",
    ]
    # 2025-01-03 is a Friday: the next weekday runs are Monday and Tuesday.
    assert runs("0 9 * * MON-fri", "2025-01-03T10:00:00+00:00", 2) == [
        "2025-01-06T09:00:00+00:00",
        "2025-01-07T09:00:00+00:00",
    ]
    assert runs("0 0 1 jan,Jul *", "2025-02-01T00:00:00+00:00", 2) == [
        "2025-07-01T00:00:00+00:00",
        "2026-01-01T00:00:00+00:00",
    ]
    assert runs("10/20 * * * *", "2025-01-01T00:00:00+00:00", 3) == [
        "2025-01-01T00:10:00+00:00",
        "2025-01-01T00:30:00+00:00",
        "2025-01-01T00:50:00+00:00",
    ]


def test_day_of_month_and_week_are_ored_when_both_restricted() -> None:
    # The 1st and 15th, and every Wednesday (2025-01-01 is a Wednesday).
    assert runs("0 0 1,15 * 3", "2025-01-01T00:00:00+00:00", 4) == [
        "2025-01-08T00:00:00+00:00",
        "2025-01-15T00:00:00+00:00",
        "2025-01-22T00:00:00+00:00",
        "2025-01-29T00:00:00+00:00",
    ]
    # With a * day of week, only the day of month counts.
    assert runs("0 0 15 * *", "2025-01-01T00:00:00+00:00", 1) == ["2025-01-15T00:00:00+00:00"]


def test_macros() -> None:
    start = "2025-03-04T05:06:00+00:00"
    assert runs("@yearly", start, 1) == runs("@annually", start, 1) == ["2026-01-01T00:00:00+00:00"]
    assert runs("@monthly", start, 1) == ["2025-04-01T00:00:00+00:00"]
    assert runs("@weekly", start, 1) == ["2025-03-09T00:00:00+00:00"]  # a Sunday
    assert runs("@daily", start, 1) == runs("@midnight", start, 1) == ["2025-03-05T00:00:00+00:00"]
    assert runs("@hourly", start, 1) == ["2025-03-04T06:00:00+00:00"]
    assert runs("@every 90s", start, 2) == [
        "2025-03-04T05:07:30+00:00",
        "2025-03-04T05:09:00+00:00",
    ]


def test_leap_day_and_never() -> None:
    assert runs("0 0 29 2 *", "2025-01-01T00:00:00+00:00", 2) == [
        "2028-02-29T00:00:00+00:00",
        "2032-02-29T00:00:00+00:00",
    ]
    assert runs("0 0 30 2 *", "2025-01-01T00:00:00+00:00", 1) == [None]


def test_time_zone_and_daylight_saving() -> None:
    assert runs("0 9 * * *", "2024-12-31T12:00:00+00:00", 1, ZoneInfo("Asia/Tokyo")) == [
        "2025-01-01T09:00:00+09:00"
    ]
    # 2025-03-09 02:30 does not exist in New York: that day is skipped.
    assert runs("30 2 * * *", "2025-03-08T00:00:00-05:00", 2, NEW_YORK) == [
        "2025-03-08T02:30:00-05:00",
        "2025-03-10T02:30:00-04:00",
    ]
    # 2025-11-02 01:30 happens twice: both run (as robfig/cron, hence Kubernetes).
    assert runs("30 1 * * *", "2025-11-01T12:00:00-04:00", 3, NEW_YORK) == [
        "2025-11-02T01:30:00-04:00",
        "2025-11-02T01:30:00-05:00",
        "2025-11-03T01:30:00-05:00",
    ]
    assert runs("CRON_TZ=Asia/Tokyo 0 9 * * *", "2024-12-31T12:00:00+00:00", 1) == [
        "2025-01-01T09:00:00+09:00"
    ]


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("", "empty spec string"),
        ("* * * *", "expected exactly 5 fields, found 4: [* * * *]"),
        ("* * * * * *", "expected exactly 5 fields, found 6: [* * * * * *]"),
        ("61 * * * *", "end of range (61) above maximum (59): 61"),
        ("* 5-1 * * *", "beginning of range (5) beyond end of range (1): 5-1"),
        ("* * 0 * *", "beginning of range (0) below minimum (1): 0"),
        ("*/0 * * * *", "step of range should be a positive number: */0"),
        ("1-2-3 * * * *", "too many hyphens: 1-2-3"),
        ("1/2/3 * * * *", "too many slashes: 1/2/3"),
        ("* * * * 7", "end of range (7) above maximum (6): 7"),
        (
            "* * * foo *",
            'failed to parse int from foo: strconv.Atoi: parsing "foo": invalid syntax',
        ),
        ("@fortnightly", "unrecognized descriptor: @fortnightly"),
        ("@every soon", 'failed to parse duration @every soon: time: invalid duration "soon"'),
    ],
)
def test_invalid_schedules(spec: str, message: str) -> None:
    with pytest.raises(ScheduleError) as e:
        parse_schedule(spec)
    assert str(e.value) == message
    assert validate_schedule(spec) == message


def test_validate_schedule_refuses_tz_prefix_on_create() -> None:
    assert validate_schedule("*/5 * * * *") is None
    assert validate_schedule("@hourly") is None
    msg = "cannot use TZ or CRON_TZ in schedule, use timeZone field instead"
    assert validate_schedule("CRON_TZ=UTC 0 * * * *") == msg
    assert validate_schedule("TZ=UTC 0 * * * *", allow_tz_in_schedule=True) is None
    assert (
        validate_schedule("TZ=UTC 0 * * * *", "Europe/Paris", allow_tz_in_schedule=True)
        == "cannot use both timeZone field and TZ or CRON_TZ in schedule"
    )
    assert validate_schedule("TZ=Mars/Olympus 0 * * * *", allow_tz_in_schedule=True) == (
        "provided bad location Mars/Olympus: unknown time zone Mars/Olympus"
    )


def test_validate_time_zone() -> None:
    assert validate_time_zone(None) is None
    assert validate_time_zone("Europe/Paris") is None
    assert validate_time_zone("Etc/UTC") is None
    assert validate_time_zone("") == "timeZone must be nil or non-empty string"
    assert validate_time_zone("Mars/Olympus") == "unknown time zone Mars/Olympus"
    assert validate_time_zone("../etc/passwd") == "unknown time zone ../etc/passwd"
    assert validate_time_zone("Local") == (
        "timeZone must be an explicit time zone as defined in https://www.iana.org/time-zones"
    )


def test_format_time() -> None:
    t = datetime(2025, 1, 1, tzinfo=UTC).timestamp()
    assert format_time(t) == "2025-01-01T00:00:00Z"
    assert format_time(t, ZoneInfo("Asia/Tokyo")) == "2025-01-01T09:00:00+09:00"
