"""The working-time clock against hand-computed deadlines (issue 5, "what must be shown" 1).

Desk hours 08:00–17:00 Moscow time (UTC+3, no DST), Monday–Friday, 9 working hours a day.
Calendar facts used below (production calendar, as the `holidays` library knows it):
  2025-11-01 Sat is a working day (transferred to Mon 2025-11-03); 2025-11-04 Tue is a holiday;
  2025-12-31 Wed is a day off (transferred from Sun 2025-01-05);
  2026-01-01..08 holidays, 2026-01-09 Fri a day off (transferred from Sat 2026-01-03);
  2026-03-08 is a Sunday, so Mon 2026-03-09 is a day off; 2026-11-04 Wed is a holiday (Unity Day);
  2026-12-31 Thu is a day off (transferred from Sun 2026-01-04); 2027-01-01..08 holidays.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from inboxdesk.settings import SettingsError, parse_settings
from inboxdesk.worktime import WorkCalendar

MSK = ZoneInfo("Europe/Moscow")
H = timedelta(hours=1)


def msk(y: int, mo: int, d: int, h: int = 0, mi: int = 0) -> datetime:
    return datetime(y, mo, d, h, mi, tzinfo=MSK)


@pytest.fixture
def cal() -> WorkCalendar:
    return WorkCalendar()


def test_library_calendar_facts(cal: WorkCalendar) -> None:
    assert not cal.is_working_day(date(2026, 11, 4))  # Unity Day, a Wednesday
    assert date(2026, 11, 4).weekday() == 2
    assert cal.is_working_day(date(2026, 11, 3))  # no bridge day in 2026
    assert not cal.is_working_day(date(2026, 1, 9))  # Friday, transferred from Sat 3 January
    assert not cal.is_working_day(date(2026, 3, 9))  # Monday after 8 March falling on Sunday
    assert cal.is_working_day(date(2025, 11, 1))  # Saturday made a working day by the 2025 decree
    assert not cal.is_working_day(date(2025, 11, 3))  # ... in exchange for this Monday
    assert not cal.is_working_day(date(2025, 12, 31))
    assert not cal.is_working_day(date(2026, 3, 14))  # an ordinary Saturday


def test_weekend(cal: WorkCalendar) -> None:
    # Fri 13 March 15:00: Fri 15–17 = 2 h; Sat, Sun off; Mon 08:00 + 6 h = 14:00.
    assert cal.add_working_time(msk(2026, 3, 13, 15), 8 * H) == msk(2026, 3, 16, 14)
    # And back: Fri 15:00 → Mon 10:00 is Fri 2 h + Mon 2 h.
    assert cal.working_time_between(msk(2026, 3, 13, 15), msk(2026, 3, 16, 10)) == 4 * H
    assert cal.working_time_between(msk(2026, 3, 16, 10), msk(2026, 3, 13, 15)) == -4 * H


def test_observed_monday(cal: WorkCalendar) -> None:
    # Fri 6 March 16:00: Fri 16–17 = 1 h; Sat 7, Sun 8 off; Mon 9 off (8 March was a Sunday);
    # Tue 10: 08:00 + 7 h = 15:00.
    assert cal.add_working_time(msk(2026, 3, 6, 16), 8 * H) == msk(2026, 3, 10, 15)


def test_public_holiday_4_november(cal: WorkCalendar) -> None:
    # Tue 3 Nov 10:00: Tue 10–17 = 7 h; Wed 4 Nov holiday; Thu 5: 08:00 + 1 h = 09:00.
    assert cal.add_working_time(msk(2026, 11, 3, 10), 8 * H) == msk(2026, 11, 5, 9)


def test_arrival_on_a_holiday(cal: WorkCalendar) -> None:
    # Wed 4 Nov 11:00 (holiday): counting starts Thu 5 at 08:00; + 8 h = 16:00.
    assert cal.next_working_moment(msk(2026, 11, 4, 11)) == msk(2026, 11, 5, 8)
    assert cal.add_working_time(msk(2026, 11, 4, 11), 8 * H) == msk(2026, 11, 5, 16)


def test_new_year_holidays(cal: WorkCalendar) -> None:
    # Tue 30 Dec 2025 13:00: Tue 13–17 = 4 h; 31 Dec day off; 1–8 Jan holidays; Fri 9 Jan day off;
    # Sat 10, Sun 11; Mon 12 Jan: 08:00 + 4 h = 12:00.
    assert cal.add_working_time(msk(2025, 12, 30, 13), 8 * H) == msk(2026, 1, 12, 12)
    # Whole of Tue 30 Dec (9 h) + whole of Mon 12 Jan (9 h): nothing in between counts.
    assert cal.working_time_between(msk(2025, 12, 30, 8), msk(2026, 1, 12, 17)) == 18 * H


def test_saturday_worked_by_decree(cal: WorkCalendar) -> None:
    # Fri 31 Oct 2025 12:00: Fri 12–17 = 5 h; Sat 1 Nov is a working day: 08:00 + 3 h = 11:00.
    assert cal.add_working_time(msk(2025, 10, 31, 12), 8 * H) == msk(2025, 11, 1, 11)


def test_configured_extra_work_saturday_and_day_off() -> None:
    plain = WorkCalendar()
    # Fri 6 Nov 2026 14:00: Fri 14–17 = 3 h; weekend; Mon 9: 08:00 + 5 h = 13:00.
    assert plain.add_working_time(msk(2026, 11, 6, 14), 8 * H) == msk(2026, 11, 9, 13)
    # With Sat 7 Nov declared a working day: Fri 3 h; Sat 08:00 + 5 h = 13:00 on Saturday.
    worked = WorkCalendar(extra_work_days={date(2026, 11, 7)})
    assert worked.add_working_time(msk(2026, 11, 6, 14), 8 * H) == msk(2026, 11, 7, 13)
    # With Thu 5 Nov declared a day off: Tue 3 Nov 10:00 → Tue 7 h; Wed holiday; Thu off;
    # Fri 6: 08:00 + 1 h = 09:00.
    off = WorkCalendar(extra_days_off={date(2026, 11, 5)})
    assert off.add_working_time(msk(2026, 11, 3, 10), 8 * H) == msk(2026, 11, 6, 9)
    # The extra lists override the library too: a library holiday can be made a working day.
    assert WorkCalendar(extra_work_days={date(2026, 11, 4)}).is_working_day(date(2026, 11, 4))


def test_evening_early_and_boundary_arrivals(cal: WorkCalendar) -> None:
    # Mon 16 Mar 19:30: counting starts Tue 08:00; + 8 h = Tue 16:00.
    assert cal.add_working_time(msk(2026, 3, 16, 19, 30), 8 * H) == msk(2026, 3, 17, 16)
    # Mon 07:00: counting starts Mon 08:00; + 8 h = Mon 16:00.
    assert cal.add_working_time(msk(2026, 3, 16, 7), 8 * H) == msk(2026, 3, 16, 16)
    # Exactly 17:00 is already after hours: Tue 16:00.
    assert cal.add_working_time(msk(2026, 3, 16, 17), 8 * H) == msk(2026, 3, 17, 16)
    # Mon 09:00 + 8 h ends exactly at closing: Mon 17:00 (the earliest instant, not Tue 08:00).
    assert cal.add_working_time(msk(2026, 3, 16, 9), 8 * H) == msk(2026, 3, 16, 17)
    # Sat 14 Mar 10:00: Mon 08:00 + 8 h = Mon 16:00.
    assert cal.add_working_time(msk(2026, 3, 14, 10), 8 * H) == msk(2026, 3, 16, 16)


def test_backwards_for_warnings(cal: WorkCalendar) -> None:
    # 2 h before Thu 5 Nov 09:00: Thu 08–09 = 1 h; Wed holiday; Tue 17:00 − 1 h = Tue 16:00.
    assert cal.add_working_time(msk(2026, 11, 5, 9), -2 * H) == msk(2026, 11, 3, 16)
    # 30 min before Thu 09:00 is 08:30.
    assert cal.add_working_time(msk(2026, 11, 5, 9), -H / 2) == msk(2026, 11, 5, 8, 30)
    # 2 h before Tue 10:00 is Tue 08:00 (the latest instant, not Mon 17:00).
    assert cal.add_working_time(msk(2026, 3, 17, 10), -2 * H) == msk(2026, 3, 17, 8)


def test_utc_in_utc_out(cal: WorkCalendar) -> None:
    # Mon 16 Mar 05:00 UTC is 08:00 Moscow; + 8 h = 16:00 Moscow = 13:00 UTC.
    got = cal.add_working_time(datetime(2026, 3, 16, 5, tzinfo=UTC), 8 * H)
    assert got == datetime(2026, 3, 16, 13, tzinfo=UTC) and got.tzinfo is UTC
    with pytest.raises(ValueError, match="naive"):
        cal.add_working_time(datetime(2026, 3, 16, 8), 8 * H)


def test_pause_in_feedback(cal: WorkCalendar) -> None:
    arrival = msk(2026, 3, 16, 9)  # Monday
    # No pause: Mon 09:00 + 8 h = Mon 17:00.
    assert cal.deadline_with_pauses(arrival, 8) == msk(2026, 3, 16, 17)
    # In `Обратная связь` Mon 12:00 (3 h used) → Wed 18 Mar 10:00; 5 h left: Wed 15:00.
    paused = [(msk(2026, 3, 16, 12), msk(2026, 3, 18, 10))]
    assert cal.deadline_with_pauses(arrival, 8, paused) == msk(2026, 3, 18, 15)
    # Still waiting for the sender: no deadline yet.
    assert cal.deadline_with_pauses(arrival, 8, [(msk(2026, 3, 16, 12), None)]) is None
    # ... 3 h on the clock so far, however long the wait.
    assert cal.elapsed_working_time(arrival, msk(2026, 3, 20, 12),
                                    [(msk(2026, 3, 16, 12), None)]) == 3 * H
    # A pause entirely after hours changes nothing.
    evening = [(msk(2026, 3, 16, 17, 30), msk(2026, 3, 17, 7))]
    assert cal.deadline_with_pauses(msk(2026, 3, 16, 12), 8, evening) == msk(2026, 3, 17, 11)


def test_pause_answered_in_the_evening_and_two_pauses(cal: WorkCalendar) -> None:
    # Fri 13 Mar 15:00: Fri 15–17 = 2 h; paused Mon 16 09:00 (Mon 08–09 = 1 h, 3 h used);
    # the sender answers Mon 20:15, so the clock resumes Tue 08:00 with 5 h left: Tue 13:00.
    pauses = [(msk(2026, 3, 16, 9), msk(2026, 3, 16, 20, 15))]
    assert cal.deadline_with_pauses(msk(2026, 3, 13, 15), 8, pauses) == msk(2026, 3, 17, 13)
    # Two pauses, given out of order and one overlapping: Mon 09:00 arrival; 09–10 runs (1 h);
    # paused 10:00–12:00 and 11:00–13:00 (merged 10–13); 13–17 runs (4 h, 5 h used);
    # paused Tue 08:00–09:00; Tue 09:00 + 3 h = 12:00.
    pauses = [(msk(2026, 3, 17, 8), msk(2026, 3, 17, 9)), (msk(2026, 3, 16, 11), msk(2026, 3, 16, 13)),
              (msk(2026, 3, 16, 10), msk(2026, 3, 16, 12))]
    assert cal.deadline_with_pauses(msk(2026, 3, 16, 9), timedelta(hours=8), pauses) == msk(2026, 3, 17, 12)
    with pytest.raises(ValueError, match="ends before"):
        cal.deadline_with_pauses(msk(2026, 3, 16, 9), 8, [(msk(2026, 3, 16, 12), msk(2026, 3, 16, 11))])


def test_working_days(cal: WorkCalendar) -> None:
    assert cal.add_working_days(date(2026, 11, 3), 1) == date(2026, 11, 5)  # over the holiday
    assert cal.add_working_days(date(2026, 3, 6), 1) == date(2026, 3, 10)  # over Sat, Sun, Mon 9
    # A reminder "after 2 working days" from Fri 26 Dec 2025 15:00: Mon 29 (1), Tue 30 (2).
    assert cal.add_working_days(msk(2025, 12, 26, 15), 2) == msk(2025, 12, 30, 15)
    # After 3: 31 Dec – 11 Jan are all days off, so Mon 12 Jan 15:00.
    assert cal.add_working_days(msk(2025, 12, 26, 15), 3) == msk(2026, 1, 12, 15)
    assert cal.add_working_days(date(2026, 1, 12), -1) == date(2025, 12, 30)


def test_appeal_calendar_days(cal: WorkCalendar) -> None:
    # Registration within 3 days of arrival on Thu 5 Nov 2026: the term starts the next day,
    # 5 + 3 = Sun 8 Nov, not a working day: Mon 9 Nov (next), Fri 6 Nov (previous), or as is.
    assert cal.add_calendar_days(date(2026, 11, 5), 3) == date(2026, 11, 9)
    assert cal.add_calendar_days(date(2026, 11, 5), 3, roll="previous") == date(2026, 11, 6)
    assert cal.add_calendar_days(date(2026, 11, 5), 3, roll="none") == date(2026, 11, 8)
    # 30 days from registration on Mon 2 Mar 2026: Wed 1 Apr, a working day.
    assert cal.add_calendar_days(date(2026, 3, 2), 30) == date(2026, 4, 1)
    # 30 days from Wed 2 Dec 2026 is Fri 1 Jan 2027: holidays to 8 Jan, then Sat 9, Sun 10 → Mon 11;
    # backwards: 31 Dec 2026 is a transferred day off → Wed 30 Dec.
    assert cal.add_calendar_days(date(2026, 12, 2), 30) == date(2027, 1, 11)
    assert cal.add_calendar_days(date(2026, 12, 2), 30, roll="previous") == date(2026, 12, 30)
    # The term runs to 24:00 Moscow of its last day: 9 Nov 24:00 MSK = 9 Nov 21:00 UTC.
    assert cal.calendar_deadline(date(2026, 11, 5), 3) == datetime(2026, 11, 9, 21, tzinfo=UTC)
    # An aware arrival counts by its Moscow date: 5 Nov 23:30 MSK is still 5 Nov.
    assert cal.add_calendar_days(datetime(2026, 11, 5, 20, 30, tzinfo=UTC), 3) == date(2026, 11, 9)


def test_legal_roll_ignores_the_desks_own_saturdays() -> None:
    six_days = WorkCalendar(weekdays=range(6))
    assert six_days.is_working_day(date(2026, 11, 7))  # the desk works this Saturday
    assert not six_days.is_official_working_day(date(2026, 11, 7))
    assert six_days.add_calendar_days(date(2026, 11, 4), 3) == date(2026, 11, 9)  # Sat 7 → Mon 9


def test_calendar_validation() -> None:
    with pytest.raises(ValueError, match="end after"):
        WorkCalendar(start=time(17), end=time(8))
    with pytest.raises(ValueError, match="both"):
        WorkCalendar(extra_days_off={date(2026, 1, 1)}, extra_work_days={date(2026, 1, 1)})


# -- settings --------------------------------------------------------------------------------

def _parse(worktime: dict) -> object:
    return parse_settings({"worktime": worktime}, Path("/tmp")).worktime


def test_settings_defaults_and_calendar() -> None:
    ws = parse_settings({}, Path("/tmp")).worktime
    assert (ws.tz, ws.day_start, ws.day_end) == ("Europe/Moscow", time(8), time(17))
    assert ws.weekdays == (0, 1, 2, 3, 4)
    assert ws.acceptance_hours == 8 and ws.warn_before == (2 * H, H / 2)
    ws = _parse({"day_start": "09:00", "day_end": "18:00", "weekdays": ["mon", "tue", "sat"],
                 "extra_work_days": ["2026-11-07"], "warn_before": ["30m", "1h30m"],
                 "acceptance_hours": 4})
    cal = WorkCalendar.from_settings(ws)
    assert ws.warn_before == (90 * H / 60, H / 2)  # longest first
    # Tue 3 Nov 2026 16:00: Tue 16–18 = 2 h; Wed 4 Nov holiday; Thu, Fri not desk days;
    # Sat 7 (a configured workday anyway): 09:00 + 2 h = 11:00.
    assert cal.add_working_time(msk(2026, 11, 3, 16), ws.acceptance_hours * H) == msk(2026, 11, 7, 11)


@pytest.mark.parametrize(("worktime", "message"), [
    ({"tz": "Mars/Olympus"}, "worktime.tz"),
    ({"day_start": "8am"}, "worktime.day_start"),
    ({"day_start": "18:00"}, "worktime.day_end"),
    ({"weekdays": ["monday"]}, "worktime.weekdays"),
    ({"weekdays": []}, "worktime.weekdays"),
    ({"extra_days_off": ["04.11.2026"]}, "worktime.extra_days_off"),
    ({"extra_days_off": ["2026-11-07"], "extra_work_days": ["2026-11-07"]}, "worktime.extra_work_days"),
    ({"acceptance_hours": 0}, "worktime.acceptance_hours"),
    ({"acceptance_hours": "8"}, "worktime.acceptance_hours"),
    ({"warn_before": ["2 hours"]}, "worktime.warn_before"),
    ({"warn_before": ["9h"]}, "worktime.warn_before"),
    ({"appeal_deadline_roll": "later"}, "worktime.appeal_deadline_roll"),
    ({"holidays": []}, "worktime.holidays"),
])
def test_settings_errors_name_the_key(worktime: dict, message: str) -> None:
    with pytest.raises(SettingsError, match=message.replace(".", r"\.")):
        _parse(worktime)
