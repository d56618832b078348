"""Times as people read them: the desk's time zone (`[worktime] tz`), to the minute, labelled.

Everything is stored in UTC; these are the only functions that turn a stored time into text, for
the CLI, the bot, letters and chat alerts alike. Machine-readable output (JSON) keeps ISO 8601,
with the local offset, to the second.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo


def as_utc(at: datetime) -> datetime:
    """`at` as an aware UTC time (SQLite hands back naive values, stored as UTC)."""
    return at.replace(tzinfo=UTC) if at.tzinfo is None else at.astimezone(UTC)


def minute(at: datetime | None, zone: ZoneInfo) -> str:
    """`07.12.2026 16:00 MSK`; "" for no time."""
    return as_utc(at).astimezone(zone).strftime("%d.%m.%Y %H:%M %Z") if at else ""


def day(at: datetime | None, zone: ZoneInfo) -> str:
    """`11.01.2027`: the local day of `at`; for a term, its last day (a term that runs out at
    00:00 ends with the day before, as the applicant's letter says "до 11.01.2027")."""
    if at is None:
        return ""
    local = as_utc(at).astimezone(zone)
    if local.hour == local.minute == local.second == local.microsecond == 0:
        local -= timedelta(microseconds=1)
    return local.strftime("%d.%m.%Y")


def iso(at: datetime | None, zone: ZoneInfo) -> str | None:
    """`2026-12-07T16:00:00+03:00` for JSON; None for no time."""
    return as_utc(at).astimezone(zone).isoformat(timespec="seconds") if at else None
