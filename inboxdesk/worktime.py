"""The working-time clock: acceptance deadlines (MAIL-7) and appeal deadlines (APL-6).

Everything takes and returns aware datetimes; results are in UTC. Working days and hours are
computed in the configured time zone, because "08:00–17:00" and "the 4th of November" are local
facts, while storage and comparisons are safest in UTC (comparing two aware datetimes that share
one tzinfo compares wall clocks and ignores DST folds, so we always convert before comparing).

Working days: the configured weekdays, minus Russian public holidays and the government's
transferred days off, plus the Saturdays the government made working days. The `holidays` library
knows both (its `RU` calendar carries the yearly transfer decrees, e.g. 2025-11-01 worked for
2025-11-03, and the "observed" Mondays such as 2026-03-09); `extra_days_off` / `extra_work_days`
from the settings cover a production calendar the library does not know yet. The extras win.

Not modelled: the one-hour-shorter pre-holiday day of Labour Code art. 95. The clock measures the
desk's published hours (regulation 2.8: 08:00–17:00), not each employee's working time.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, date, datetime, time, timedelta
from typing import TYPE_CHECKING, Literal, overload
from zoneinfo import ZoneInfo

import holidays

if TYPE_CHECKING:
    from inboxdesk.settings import WorktimeSettings

Roll = Literal["next", "previous", "none"]
_OFFICIAL_WEEK = frozenset(range(5))  # the legal five-day week, for calendar-day (59-FZ) deadlines
_SEARCH_LIMIT = 3700  # days (~10 years): a calendar with no working day must fail, not hang


class WorkCalendar:
    """Working days and hours of the desk.

    `weekdays` uses Python's numbering (Monday = 0). `end` must be after `start` on the same day.
    """

    def __init__(self, tz: str = "Europe/Moscow", start: time = time(8), end: time = time(17),
                 weekdays: Iterable[int] = _OFFICIAL_WEEK, extra_days_off: Iterable[date] = (),
                 extra_work_days: Iterable[date] = ()) -> None:
        self.tz = ZoneInfo(tz)
        if not start < end:
            raise ValueError(f"working day must end after it starts: {start}–{end}")
        self.start, self.end = start, end
        self.weekdays = frozenset(weekdays)
        if not self.weekdays or not self.weekdays <= set(range(7)):
            raise ValueError(f"weekdays must be a non-empty subset of 0..6, got {sorted(self.weekdays)}")
        self.extra_days_off = frozenset(extra_days_off)
        self.extra_work_days = frozenset(extra_work_days)
        both = self.extra_days_off & self.extra_work_days
        if both:
            raise ValueError(f"{min(both)} is listed both as a day off and as a working day")
        self._years: dict[int, tuple[frozenset[date], frozenset[date]]] = {}

    @classmethod
    def from_settings(cls, ws: WorktimeSettings) -> WorkCalendar:
        return cls(tz=ws.tz, start=ws.day_start, end=ws.day_end, weekdays=ws.weekdays,
                   extra_days_off=ws.extra_days_off, extra_work_days=ws.extra_work_days)

    # -- days -------------------------------------------------------------------------------

    def _official(self, year: int) -> tuple[frozenset[date], frozenset[date]]:
        """(days off, weekend days made working) for `year` from the library, cached per year."""
        if year not in self._years:
            ru = holidays.country_holidays("RU", years=year)
            self._years[year] = (frozenset(ru), frozenset(d for d in ru.weekend_workdays if d.year == year))
        return self._years[year]

    def _working(self, d: date, weekdays: frozenset[int]) -> bool:
        if d in self.extra_work_days:
            return True
        if d in self.extra_days_off:
            return False
        days_off, worked_weekends = self._official(d.year)
        if d in days_off:
            return False
        return d in worked_weekends or d.weekday() in weekdays

    def is_working_day(self, d: date) -> bool:
        """Is the desk open on `d` (a local date)?"""
        return self._working(d, self.weekdays)

    def is_official_working_day(self, d: date) -> bool:
        """Is `d` a working day of the national five-day week? Legal terms roll by this, not by the
        desk's own schedule (a desk that also works Saturdays does not move a citizen's deadline)."""
        return self._working(d, _OFFICIAL_WEEK)

    # -- instants ---------------------------------------------------------------------------

    def _local_date(self, t: datetime) -> date:
        return t.astimezone(self.tz).date()

    def _hours(self, d: date) -> tuple[datetime, datetime]:
        """The working interval of local day `d`, in UTC."""
        return (datetime.combine(d, self.start, self.tz).astimezone(UTC),
                datetime.combine(d, self.end, self.tz).astimezone(UTC))

    def is_working_time(self, t: datetime) -> bool:
        t = _utc(t)
        d = self._local_date(t)
        if not self.is_working_day(d):
            return False
        s, e = self._hours(d)
        return s <= t < e

    def next_working_moment(self, t: datetime) -> datetime:
        """`t` itself during working hours, else the start of the next working period: where an
        evening, weekend or holiday arrival starts counting."""
        t = _utc(t)
        d = self._local_date(t)
        for _ in range(_SEARCH_LIMIT):
            if self.is_working_day(d):
                s, e = self._hours(d)
                if t < e:
                    return max(s, t)
            d += timedelta(days=1)
        raise ValueError(f"no working time within {_SEARCH_LIMIT} days after {t}")

    def working_time_between(self, a: datetime, b: datetime) -> timedelta:
        """Working time from `a` to `b`; negative when `b` is before `a`."""
        a, b = _utc(a), _utc(b)
        if b < a:
            return -self.working_time_between(b, a)
        total = timedelta(0)
        d, last = self._local_date(a), self._local_date(b)
        while d <= last:
            if self.is_working_day(d):
                s, e = self._hours(d)
                lo, hi = max(s, a), min(e, b)
                if hi > lo:
                    total += hi - lo
            d += timedelta(days=1)
        return total

    def add_working_time(self, start: datetime, delta: timedelta) -> datetime:
        """The instant `delta` of working time after `start` (before it, when negative).

        Forward, the earliest such instant: 9 h from Monday 08:00 is Monday 17:00, not Tuesday
        08:00. Backward, the latest: 2 h before Tuesday 10:00 is Tuesday 08:00. Zero is `start`.
        """
        start = _utc(start)
        if not delta:
            return start
        remaining, step = abs(delta), timedelta(days=1 if delta > timedelta(0) else -1)
        d = self._local_date(start)
        for _ in range(_SEARCH_LIMIT + remaining.days * 3):
            if self.is_working_day(d):
                s, e = self._hours(d)
                if step.days > 0:
                    lo = max(s, start)
                    if e > lo:
                        if remaining <= e - lo:
                            return lo + remaining
                        remaining -= e - lo
                else:
                    hi = min(e, start)
                    if hi > s:
                        if remaining <= hi - s:
                            return hi - remaining
                        remaining -= hi - s
            d += step
        raise ValueError(f"no working time to add {delta} to {start}")

    def deadline_with_pauses(self, arrival: datetime, hours: float | timedelta,
                             pauses: Iterable[tuple[datetime, datetime | None]] = ()) -> datetime | None:
        """Arrival plus `hours` working hours, the clock stopped during each pause (a ticket waiting
        in `Обратная связь`). None while a pause is still open: the deadline is not known until
        the sender answers. Pauses may overlap or start before the arrival; they are merged."""
        budget = hours if isinstance(hours, timedelta) else timedelta(hours=hours)
        cursor = _utc(arrival)
        for p_start, p_end in _merge(pauses):
            if p_end is not None and p_end <= cursor:
                continue
            if p_start > cursor:
                available = self.working_time_between(cursor, p_start)
                if budget <= available:
                    return self.add_working_time(cursor, budget)
                budget -= available
            if p_end is None:
                return None
            cursor = p_end
        return self.add_working_time(cursor, budget)

    def elapsed_working_time(self, arrival: datetime, now: datetime,
                             pauses: Iterable[tuple[datetime, datetime | None]] = ()) -> timedelta:
        """Working time on the clock at `now`: from arrival, not counting pauses (an open pause
        runs until `now`). For "used 5 h 20 min of 8 h" displays and for paused tickets."""
        arrival, now = _utc(arrival), _utc(now)
        total = self.working_time_between(arrival, now) if now > arrival else timedelta(0)
        for p_start, p_end in _merge(pauses):
            lo, hi = max(p_start, arrival), min(p_end or now, now)
            if hi > lo:
                total -= self.working_time_between(lo, hi)
        return total

    # -- whole days -------------------------------------------------------------------------

    @overload
    def add_working_days(self, start: datetime, n: int) -> datetime: ...
    @overload
    def add_working_days(self, start: date, n: int) -> date: ...

    def add_working_days(self, start: date, n: int) -> date:
        """The n-th working day after `start` (before it, when n < 0; `start` itself for 0).
        A datetime gives the same local time of day on that day, in UTC (reminders: "after two
        working days" sent on Friday 15:00 means Tuesday 15:00)."""
        d = self._local_date(_utc(start)) if isinstance(start, datetime) else start
        step = timedelta(days=1 if n >= 0 else -1)
        for _ in range(abs(n)):
            d += step
            for _ in range(_SEARCH_LIMIT):
                if self.is_working_day(d):
                    break
                d += step
            else:
                raise ValueError(f"no working day within {_SEARCH_LIMIT} days of {d}")
        if isinstance(start, datetime):
            wall = _utc(start).astimezone(self.tz).time()
            return datetime.combine(d, wall, self.tz).astimezone(UTC)
        return d

    def add_calendar_days(self, start: date, days: int, roll: Roll = "next") -> date:
        """The last day of a term of `days` calendar days that starts on `start` (59-FZ appeals).

        59-FZ does not say how its terms are counted; we follow the commentary's analogy with the
        Civil Code: the term begins the day after the event (art. 191), so "30 days from
        registration on 1 March" ends on 31 March, and it lasts until 24:00 of its last day
        (art. 194, see `end_of_day`). A last day that is not a working day moves to the next
        working day (art. 193): `roll="next"`, the default. Some departmental instructions on
        appeals instead take the preceding working day (never late, the cautious reading):
        `roll="previous"`. `roll="none"` keeps the calendar date.
        """
        d = (self._local_date(_utc(start)) if isinstance(start, datetime) else start) + timedelta(days=days)
        if roll == "none":
            return d
        step = timedelta(days=1 if roll == "next" else -1)
        for _ in range(_SEARCH_LIMIT):
            if self.is_official_working_day(d):
                return d
            d += step
        raise ValueError(f"no working day within {_SEARCH_LIMIT} days of {d}")

    def end_of_day(self, d: date) -> datetime:
        """The instant a term whose last day is `d` expires: 24:00 local time, in UTC."""
        return datetime.combine(d + timedelta(days=1), time(0), self.tz).astimezone(UTC)

    def calendar_deadline(self, start: date, days: int, roll: Roll = "next") -> datetime:
        """`add_calendar_days` as the instant of expiry."""
        return self.end_of_day(self.add_calendar_days(start, days, roll))


def _utc(t: datetime) -> datetime:
    if t.tzinfo is None or t.utcoffset() is None:
        # A naive datetime is a bug upstream (whose local time?); refuse rather than guess.
        raise ValueError(f"naive datetime {t!r}: pass an aware datetime")
    return t.astimezone(UTC)


def _merge(pauses: Iterable[tuple[datetime, datetime | None]]) -> list[tuple[datetime, datetime | None]]:
    """Sorted, non-overlapping pauses; an open pause swallows everything after its start."""
    spans: list[tuple[datetime, datetime | None]] = []
    for p_start, p_end in sorted(((_utc(s), _utc(e) if e else None) for s, e in pauses),
                                 key=lambda p: p[0]):
        if p_end is not None and p_end < p_start:
            raise ValueError(f"pause ends before it starts: {p_start} – {p_end}")
        if spans and (spans[-1][1] is None or p_start <= spans[-1][1]):
            last_start, last_end = spans[-1]
            end = None if last_end is None or p_end is None else max(last_end, p_end)
            spans[-1] = (last_start, end)
        else:
            spans.append((p_start, p_end))
    return spans
