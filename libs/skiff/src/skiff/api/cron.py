"""Cron schedules as the CronJob controller reads them (robfig/cron v3 ``ParseStandard``).

A schedule is five fields — minute, hour, day of month, month, day of week — each a
comma-separated list of ``*`` (or ``?``), values, ``a-b`` ranges and ``/step`` steps;
months and days of the week may be named (``jan``, ``mon-fri``, any case). When both
day fields are restricted a day matching either one matches (as Vixie cron). The
descriptors ``@yearly`` (``@annually``), ``@monthly``, ``@weekly``, ``@daily``
(``@midnight``), ``@hourly`` and ``@every <duration>`` are accepted, and so is a
``TZ=<zone>`` or ``CRON_TZ=<zone>`` prefix (the API server refuses it on create, as
Kubernetes does: ``spec.timeZone`` is the supported way).

:meth:`Schedule.next` walks forward in the schedule's time zone the way robfig/cron
does: a time skipped by a daylight-saving jump does not run, a repeated hour runs
twice, and a schedule that never matches (``0 0 30 2 *``) yields None after five
years of search.

:func:`validate_schedule` and :func:`validate_time_zone` are the API server's checks
(``validateScheduleFormat`` / ``validateTimeZone``): they return the message of a
``FieldValueInvalid`` cause, or None.
"""

from __future__ import annotations

import functools
import math
import os
import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, tzinfo
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

STAR_BIT = 1 << 63
"""Set on a day field written ``*`` or ``?``: then the day fields are ANDed, not ORed."""
YEARS_OF_SEARCH = 5
""":meth:`Schedule.next` gives up after this many years (robfig/cron's ``yearLimit``)."""

_MONTH_NAMES = {
    n: i + 1
    for i, n in enumerate(
        ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec")
    )
}
_DOW_NAMES = {n: i for i, n in enumerate(("sun", "mon", "tue", "wed", "thu", "fri", "sat"))}
_DESCRIPTORS = {
    "@yearly": "0 0 1 1 *",
    "@annually": "0 0 1 1 *",
    "@monthly": "0 0 1 * *",
    "@weekly": "0 0 * * 0",
    "@daily": "0 0 * * *",
    "@midnight": "0 0 * * *",
    "@hourly": "0 * * * *",
}
_EVERY = "@every "
_INT = re.compile(r"[+-]?[0-9]+")
_DURATION_PART = re.compile(r"([0-9]*(?:\.[0-9]*)?)(ns|us|µs|μs|ms|s|m|h)")
_DURATION_UNITS = {
    "ns": 1e-9,
    "us": 1e-6,
    "µs": 1e-6,
    "μs": 1e-6,
    "ms": 1e-3,
    "s": 1.0,
    "m": 60.0,
    "h": 3600.0,
}
_TIME_ZONE_PART = re.compile(r"[A-Za-z.\-_0-9+]{1,14}")


class ScheduleError(ValueError):
    """A schedule (or time zone) that cannot be parsed; the message says why."""


@dataclass(frozen=True, slots=True)
class _Bounds:
    low: int
    high: int
    names: dict[str, int] | None = None


_MINUTES = _Bounds(0, 59)
_HOURS = _Bounds(0, 23)
_DOM = _Bounds(1, 31)
_MONTHS = _Bounds(1, 12, _MONTH_NAMES)
_DOW = _Bounds(0, 6, _DOW_NAMES)


@dataclass(frozen=True, slots=True)
class Schedule:
    """A parsed schedule: one bit per allowed value of every field, in ``tz``."""

    minute: int
    hour: int
    dom: int
    month: int
    dow: int
    tz: tzinfo
    every: float | None = None
    """Seconds between runs of an ``@every`` schedule (the fields are then unused)."""

    def next(self, after: float) -> float | None:
        """The first activation strictly after ``after`` (epoch seconds), None if never."""
        if self.every is not None:
            return math.floor(after) + self.every
        tz = self.tz
        dt = datetime.fromtimestamp((math.floor(after / 60) + 1) * 60, tz)
        year_limit = dt.year + YEARS_OF_SEARCH
        added = False  # whether the fields below the one moving were zeroed already
        while dt.year <= year_limit:
            wrapped = False
            while not self.month >> dt.month & 1:
                if not added:
                    added = True
                    dt = _midnight(tz, dt.year, dt.month, 1)
                year, month = (dt.year + 1, 1) if dt.month == 12 else (dt.year, dt.month + 1)
                dt = _midnight(tz, year, month, 1)
                if dt.month == 1:
                    wrapped = True
                    break
            if wrapped:
                continue
            while not self._day_matches(dt):
                if not added:
                    added = True
                    dt = _midnight(tz, dt.year, dt.month, dt.day)
                day = dt.date() + timedelta(days=1)
                dt = _midnight(tz, day.year, day.month, day.day)
                if dt.day == 1:
                    wrapped = True
                    break
            if wrapped:
                continue
            while not self.hour >> dt.hour & 1:
                if not added:
                    added = True
                    dt = _at(dt.timestamp() - dt.minute * 60 - dt.second, tz)
                dt = _at(dt.timestamp() + 3600, tz)
                if dt.hour == 0:
                    wrapped = True
                    break
            if wrapped:
                continue
            while not self.minute >> dt.minute & 1:
                added = True
                dt = _at(dt.timestamp() + 60, tz)
                if dt.minute == 0:
                    wrapped = True
                    break
            if wrapped:
                continue
            return dt.timestamp()
        return None

    def _day_matches(self, dt: datetime) -> bool:
        dom = bool(self.dom >> dt.day & 1)
        dow = bool(self.dow >> ((dt.weekday() + 1) % 7) & 1)  # Sunday is 0
        if self.dom & STAR_BIT or self.dow & STAR_BIT:
            return dom and dow
        return dom or dow


def _at(ts: float, tz: tzinfo) -> datetime:
    return datetime.fromtimestamp(ts, tz)


def _midnight(tz: tzinfo, year: int, month: int, day: int) -> datetime:
    """The start of a local day (the first instant after a gap when midnight is skipped)."""
    return _at(datetime(year, month, day, tzinfo=tz).timestamp(), tz)


# -- parsing ---------------------------------------------------------------------------


def parse_schedule(spec: str, tz: tzinfo | None = None) -> Schedule:
    """Parse a standard schedule, interpreted in ``tz`` (default UTC) unless it has a
    ``TZ=``/``CRON_TZ=`` prefix. Raises :class:`ScheduleError` with robfig/cron's wording.
    """
    if not spec:
        raise ScheduleError("empty spec string")
    loc = tz or UTC
    if spec.startswith(("TZ=", "CRON_TZ=")):
        eq = spec.index("=")
        space = spec.find(" ")
        name = spec[eq + 1 : space] if space > eq else spec[eq + 1 :]
        try:
            loc = load_time_zone(name)
        except ScheduleError as e:
            raise ScheduleError(f"provided bad location {name}: {e}") from None
        spec = spec[space:].strip() if space > eq else ""
    if spec.startswith("@"):
        if spec.startswith(_EVERY):
            seconds = _parse_duration(spec[len(_EVERY) :], spec)
            return Schedule(0, 0, 0, 0, 0, loc, every=max(1.0, math.floor(seconds)))
        fields_spec = _DESCRIPTORS.get(spec)
        if fields_spec is None:
            raise ScheduleError(f"unrecognized descriptor: {spec}")
        spec = fields_spec
    fields = spec.split()
    if len(fields) != 5:
        raise ScheduleError(f"expected exactly 5 fields, found {len(fields)}: [{' '.join(fields)}]")
    return Schedule(
        minute=_field(fields[0], _MINUTES),
        hour=_field(fields[1], _HOURS),
        dom=_field(fields[2], _DOM),
        month=_field(fields[3], _MONTHS),
        dow=_field(fields[4], _DOW),
        tz=loc,
    )


def _field(text: str, bounds: _Bounds) -> int:
    bits = 0
    for expr in (e for e in text.split(",") if e):
        bits |= _range(expr, bounds)
    return bits


def _range(expr: str, b: _Bounds) -> int:
    range_and_step = expr.split("/")
    low_high = range_and_step[0].split("-")
    extra = 0
    if low_high[0] in ("*", "?"):
        start, end, extra = b.low, b.high, STAR_BIT
    else:
        start = _int_or_name(low_high[0], b.names)
        if len(low_high) == 1:
            end = start
        elif len(low_high) == 2:
            end = _int_or_name(low_high[1], b.names)
        else:
            raise ScheduleError(f"too many hyphens: {expr}")
    if len(range_and_step) == 1:
        step = 1
    elif len(range_and_step) == 2:
        step = _must_int(range_and_step[1])
        if len(low_high) == 1:
            end = b.high  # "N/step" means "N-max/step"
        if step > 1:
            extra = 0
    else:
        raise ScheduleError(f"too many slashes: {expr}")
    if start < b.low:
        raise ScheduleError(f"beginning of range ({start}) below minimum ({b.low}): {expr}")
    if end > b.high:
        raise ScheduleError(f"end of range ({end}) above maximum ({b.high}): {expr}")
    if start > end:
        raise ScheduleError(f"beginning of range ({start}) beyond end of range ({end}): {expr}")
    if step == 0:
        raise ScheduleError(f"step of range should be a positive number: {expr}")
    bits = 0
    for v in range(start, end + 1, step):
        bits |= 1 << v
    return bits | extra


def _int_or_name(expr: str, names: dict[str, int] | None) -> int:
    if names is not None and (v := names.get(expr.lower())) is not None:
        return v
    return _must_int(expr)


def _must_int(expr: str) -> int:
    if not _INT.fullmatch(expr):
        raise ScheduleError(
            f'failed to parse int from {expr}: strconv.Atoi: parsing "{expr}": invalid syntax'
        )
    num = int(expr)
    if num < 0:
        raise ScheduleError(f"negative number ({num}) not allowed: {expr}")
    return num


def _parse_duration(text: str, descriptor: str) -> float:
    """Seconds in a Go duration (``90s``, ``1h30m``, ``1.5h``)."""
    err = ScheduleError(f'failed to parse duration {descriptor}: time: invalid duration "{text}"')
    body = text[1:] if text[:1] in ("+", "-") else text
    if body == "0":
        return 0.0
    pos, total = 0, 0.0
    while pos < len(body):
        m = _DURATION_PART.match(body, pos)
        if m is None or m.group(1) in ("", "."):
            raise err
        total += float(m.group(1)) * _DURATION_UNITS[m.group(2)]
        pos = m.end()
    if not body:
        raise err
    return -total if text.startswith("-") else total


# -- time zones ------------------------------------------------------------------------


@functools.lru_cache(maxsize=256)
def load_time_zone(name: str) -> tzinfo:
    """The zone called ``name`` (``""`` and ``UTC`` are UTC); ScheduleError if unknown."""
    if name in ("", "UTC"):
        return UTC
    if name == "Local":
        return local_time_zone()
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, OSError):
        raise ScheduleError(f"unknown time zone {name}") from None


def local_time_zone() -> tzinfo:
    """The process's zone (``TZ``, else ``/etc/localtime``, else UTC), as Go's ``time.Local``."""
    name = os.environ.get("TZ")
    if name is not None:
        try:
            return load_time_zone(name.removeprefix(":"))
        except ScheduleError:
            return UTC
    try:
        with open("/etc/localtime", "rb") as f:
            return ZoneInfo.from_file(f, key="Local")
    except (OSError, ValueError):
        return UTC


# -- validation (the API server's) -----------------------------------------------------


def validate_schedule(
    schedule: str, time_zone: str | None = None, *, allow_tz_in_schedule: bool = False
) -> str | None:
    """Why ``spec.schedule`` is invalid, or None when it is fine.

    ``allow_tz_in_schedule`` is true on an update whose old schedule already had a
    ``TZ``/``CRON_TZ`` prefix (Kubernetes keeps such objects updatable); on create it is
    false and any ``TZ`` in the schedule is refused in favour of ``spec.timeZone``.
    """
    errors: list[str] = []
    try:
        parse_schedule(schedule)
    except ScheduleError as e:
        errors.append(str(e))
    if allow_tz_in_schedule and "TZ" in schedule and time_zone is not None:
        errors.append("cannot use both timeZone field and TZ or CRON_TZ in schedule")
    elif not allow_tz_in_schedule and "TZ" in schedule:
        errors.append("cannot use TZ or CRON_TZ in schedule, use timeZone field instead")
    return "; ".join(errors) or None


def validate_time_zone(time_zone: str | None) -> str | None:
    """Why ``spec.timeZone`` is invalid, or None (None itself is valid: the local zone)."""
    if time_zone is None:
        return None
    if time_zone == "":
        return "timeZone must be nil or non-empty string"
    for part in time_zone.split("/"):
        if part in (".", "..") or part.startswith("-") or not _TIME_ZONE_PART.fullmatch(part):
            return f"unknown time zone {time_zone}"
    if time_zone.lower() == "local":
        return (
            "timeZone must be an explicit time zone as defined in https://www.iana.org/time-zones"
        )
    try:
        load_time_zone(time_zone)
    except ScheduleError as e:
        return str(e)
    return None


def format_time(ts: float, tz: tzinfo = UTC) -> str:
    """RFC 3339 at second precision in ``tz`` (``Z`` for UTC), as Go's ``time.RFC3339``."""
    dt = datetime.fromtimestamp(math.floor(ts), tz)
    if dt.utcoffset() == timedelta(0):
        return dt.strftime("%Y-%m-%dT%H:%M:%SZ")
    return dt.isoformat(timespec="seconds")
