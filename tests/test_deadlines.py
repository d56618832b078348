"""Deadlines of issue 5 with a controlled clock ("what must be shown" 1 and 2): acceptance
deadlines of support tickets (MAIL-7) through the desk and the database equal hand-computed
values; warnings and the overdue alert reach the staff chat once each, also across restarts and
with two daemons at once; appeal deadlines (APL-6) are warned about in calendar days.

Desk hours 08:00–17:00 Moscow time (UTC+3), 8 working hours to accept. Calendar facts used:
2025-11-01 Sat was a working day, in exchange Mon 2025-11-03 a day off; 4 November (Unity Day)
is a holiday: Tue 2025-11-04 and Wed 2026-11-04.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import json
import threading
from concurrent.futures import ThreadPoolExecutor
from types import SimpleNamespace

import pytest

from bot.commands import overdue_tickets
from inboxdesk.acceptance import acceptance_clock
from inboxdesk.app import App
from inboxdesk.cli import build_parser
from inboxdesk.daemon import Daemon
from inboxdesk.settings import load_settings
from tests.botapi import BotApiServer
from tests.clock_world import APPEALS, MSK, STAFF_CHAT, World, iso_msk, msk
from tests.story import cli, letter

TOKEN_ENV = "INBOXDESK_TEST_BOT_TOKEN"


@pytest.fixture
def world(tmp_path, db_url, smtp_server):
    w = World(tmp_path, db_url, smtp_server)
    yield w
    w.close()


def overdue_ids(world: World) -> list[str]:
    """`inboxdesk tickets list --overdue --json` as of the desk's clock."""
    args = build_parser().parse_args(["tickets", "list", "--overdue", "--json"])
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        assert args.func(world.app, args) == 0
    return [row["id"] for row in json.loads(out.getvalue())]


# -- 1. deadlines equal hand-computed values -------------------------------------------------------

CASES = [
    # arrival (Moscow)            due (Moscow)                   how
    (msk(2026, 11, 13, 14, 30), "2026-11-16 13:30"),  # Fri 14:30–17:00 = 2.5 h; Sat, Sun; Mon 08:00 + 5.5 h
    (msk(2026, 11, 3, 12), "2026-11-05 11:00"),  # Tue 12–17 = 5 h; Wed 4 Nov holiday; Thu 08:00 + 3 h
    (msk(2025, 10, 31, 16), "2025-11-01 15:00"),  # Fri 16–17 = 1 h; Sat 1 Nov 2025 worked: 08:00 + 7 h
    (msk(2025, 11, 1, 12), "2025-11-05 11:00"),  # Sat (worked) 12–17 = 5 h; Sun; Mon 3 (transferred
    #                                               day off); Tue 4 (holiday); Wed 08:00 + 3 h
    (msk(2026, 11, 16, 19, 30), "2026-11-17 16:00"),  # evening: counting starts Tue 08:00, + 8 h
    (msk(2026, 11, 18, 6, 10), "2026-11-18 16:00"),  # early morning: from 08:00 the same day
]


def test_acceptance_deadlines_equal_hand_computed_values(world):
    """MAIL-7: arrival + 8 working hours across a weekend, the 4 November holiday, a Saturday made a
    working day (and the Monday made a day off for it), evening and early-morning arrivals."""
    for n, (arrival, _) in enumerate(CASES):
        world.at(arrival).ingest(letter(subject=f"Не открывается расписание врача, кабинет {n + 1}"))
    shown = {t["subject"]: t for t in world.tickets()}
    for n, (arrival, expected) in enumerate(CASES):
        ticket = shown[f"Не открывается расписание врача, кабинет {n + 1}"]
        assert ticket["status"] == "Новая"
        assert iso_msk(ticket["accept_due_at"]) == expected, arrival
        started = world.ticket(ticket["id"])["deadlines"]["accept_started_at"]
        assert iso_msk(started) == arrival.astimezone(MSK).strftime("%Y-%m-%d %H:%M")


def test_a_pause_in_feedback_stops_the_clock_and_taking_it_stops_it_for_good(world, smtp_server):
    """MAIL-7: Mon 09:00 arrival, due 17:00; at 11:00 staff ask the sender a question (2 h used);
    the clock stands still while the ticket waits; the answer on Wed 10:00 resumes it with 6 h
    left: due Wed 16:00. Taking it at 11:00 accepts it, on time."""
    world.at(msk(2026, 11, 16, 9)).ingest(letter(subject="Не печатается направление"))
    tid = world.only_ticket()
    assert iso_msk(world.ticket(tid)["accept_due_at"]) == "2026-11-16 17:00"

    world.at(msk(2026, 11, 16, 11)).act(tid, "change_status", "Обратная связь",
                                        comment="Какой принтер установлен?")
    paused = world.ticket(tid)
    assert paused["accept_due_at"] is None and paused["deadlines"]["paused"] is True
    status, out = cli(world.config, "tickets", "show", tid)
    assert status == 0 and "срок принятия в работу: приостановлен" in out
    # The whole of Tuesday passes: nothing is overdue while the ticket waits for the sender.
    world.at(msk(2026, 11, 17, 17)).run_once()
    assert overdue_ids(world) == [] and world.alerts() == []

    world.at(msk(2026, 11, 18, 10)).ingest(letter(subject=f"Re: [{tid}] Не печатается направление",
                                                  body="Принтер HP LaserJet 1020.\n"))
    resumed = world.ticket(tid)
    assert resumed["status"] == "Новая"
    assert iso_msk(resumed["accept_due_at"]) == "2026-11-18 16:00"

    world.at(msk(2026, 11, 18, 11)).act(tid, "take")
    taken = world.ticket(tid)
    assert iso_msk(taken["accepted_at"]) == "2026-11-18 11:00"
    assert taken["deadlines"]["accepted_late"] is False
    world.at(msk(2026, 11, 19, 12)).run_once()
    assert overdue_ids(world) == [] and world.alerts() == []
    status, out = cli(world.config, "tickets", "show", tid)
    assert "принята в работу:" in out


# -- 2. warnings and the overdue alert, once each -------------------------------------------------------

@pytest.fixture
def api():
    with BotApiServer() as server:
        yield server


def test_warnings_and_overdue_alert_reach_the_staff_chat_once_each_across_restarts(
        tmp_path, db_url, smtp_server, api, monkeypatch):
    """MAIL-7, BOT-2: a ticket arrives Mon 09:00 (due 17:00; warnings 2 h and 30 min before). The
    daemon's `run --once` runs at many moments, and is thrown away and built again twice: the
    staff chat gets the 2 h warning at 15:00, the 30 min one at 16:30 and the overdue alert at
    17:00, each exactly once. A ticket taken into work in time gets none."""
    monkeypatch.setenv(TOKEN_ENV, api.token)
    telegram = (f'token_env = "{TOKEN_ENV}"\nbase_url = "{api.base_url}"\n'
                f'base_file_url = "{api.base_file_url}"\nstaff_chat_id = {STAFF_CHAT}\n'
                "request_timeout_seconds = 2\nretry_base_seconds = 0.2\n")
    world = World(tmp_path, db_url, smtp_server, telegram=telegram)
    try:
        world.at(msk(2026, 11, 16, 9)).ingest(letter(subject="Не открывается расписание врача"))
        world.ingest(letter(subject="Не работает ЭЦП", sender="o.sidorov@sev.gov.ru", name="Сидоров Олег"))
        late, on_time = [t["id"] for t in world.tickets()]
        world.run_once()
        world.at(msk(2026, 11, 16, 10)).act(on_time, "take")

        def chat_alerts() -> list[str]:
            return [m.visible for m in api.messages(STAFF_CHAT) if not m.buttons]

        for when in (msk(2026, 11, 16, 14, 59), msk(2026, 11, 16, 15), msk(2026, 11, 16, 15, 30)):
            world.at(when).run_once()
        assert len(chat_alerts()) == 1
        world.restart()
        for when in (msk(2026, 11, 16, 15, 30), msk(2026, 11, 16, 16, 29), msk(2026, 11, 16, 16, 30)):
            world.at(when).run_once()
        assert overdue_ids(world.at(msk(2026, 11, 16, 16, 59))) == []
        for when in (msk(2026, 11, 16, 17), msk(2026, 11, 16, 18)):
            world.at(when).run_once()
        assert overdue_ids(world) == [late]
        with world.app.db.sessions() as s:  # the bot's /overdue lists the same
            assert [t.public_id for t in overdue_tickets(SimpleNamespace(desk=world.app.desk), s)] == [late]
        world.restart()
        world.at(msk(2026, 11, 17, 9)).run_once()

        said = chat_alerts()
        assert len(said) == 3, said
        assert said[0].startswith(f"⏰ {late}: до срока принятия в работу осталось 2 ч рабочего времени "
                                  "— срок 16.11.2026 17:00 MSK.")
        assert said[1].startswith(f"⏰ {late}: до срока принятия в работу осталось 30 мин")
        assert said[2].startswith(f"🔴 {late}: заявка не принята в работу в срок — "
                                  "срок 16.11.2026 17:00 MSK истёк")
        assert "«Не открывается расписание врача»" in said[0] and "Новая" in said[0]
        assert all(on_time not in text for text in said)
        rows = json.loads(cli(world.config, "outbox", "list", "--json")[1])
        sent = [(o["ticket_id"], o["status"]) for o in rows if o["purpose"] == "alert"]
        assert sent == [(late, "sent")] * 3
        assert world.alert_state() == [("accept", "2h@20261116T0600Z", True),
                                       ("accept", "30m@20261116T0600Z", True),
                                       ("accept", "overdue@20261116T0600Z", True)]
        assert [e for e in world.events(late) if e[1] == "deadline_alert"] == [
            ("system", "deadline_alert", None, "2h"), ("system", "deadline_alert", None, "30m"),
            ("system", "deadline_alert", None, "overdue")]
    finally:
        world.close()


def test_a_daemon_stopped_through_the_warnings_sends_only_the_overdue_alert(world):
    """After a night without a daemon the overdue ticket gets one alert, not three messages; the
    warnings it slept through are recorded as passed over and never sent later."""
    world.at(msk(2026, 11, 16, 9)).ingest(letter())
    tid = world.only_ticket()
    assert world.at(msk(2026, 11, 17, 8, 5)).app.timers.run_due() == {"accept": 1}
    assert world.app.timers.run_due(msk(2026, 11, 17, 9)) == {}
    [text] = world.alerts()
    assert text.startswith(f"🔴 <b>{tid}</b>: заявка не принята в работу в срок")
    assert world.alert_state() == [("accept", "overdue@20261116T0600Z", True),
                                   ("accept", "2h@20261116T0600Z", False),
                                   ("accept", "30m@20261116T0600Z", False)]


def test_two_daemons_at_once_warn_once(world):
    """Several daemons share one database (PostgreSQL in production): both find the same due
    warnings at the same moment, and each warning is given by exactly one of them."""
    world.at(msk(2026, 11, 16, 9))
    for n in range(12):
        world.ingest(letter(subject=f"Не открывается расписание, кабинет {n}"))
    other = App(load_settings(world.config))
    other.desk.clock = world.clock
    try:
        start = threading.Barrier(2)

        def run(app: App) -> dict[str, int]:
            start.wait()
            return app.timers.run_due(msk(2026, 11, 16, 15))

        with ThreadPoolExecutor(2) as pool:
            results = list(pool.map(run, [world.app, other]))
    finally:
        other.close()
    assert sum(r.get("accept", 0) for r in results) == 12
    assert len(world.alerts()) == 12 and len(world.alert_state()) == 12
    assert len({point for _, point, _ in world.alert_state()}) == 1  # one 2 h warning per ticket


# -- 3. appeal deadlines (APL-6) -----------------------------------------------------------------

def test_appeal_deadlines_are_warned_about_in_calendar_days(world):
    """APL-6 (59-FZ, calendar days): an appeal arrives Mon 16.11.2026 10:00. Registration term: 3
    days, until Thu 19.11 inclusive; answer term: 30 days from registration, until Wed 16.12
    inclusive. Warnings 3 and 1 days before (the morning of the 17th and 19th; of the 14th and
    16th of December), once each. Taking the appeal up ends the registration watch; an extension
    by 10 days moves the answer term to Sat 26.12, rolled to Mon 28.12, and brings new warnings."""
    world.at(msk(2026, 11, 16, 10)).ingest(letter(
        sender="smirnov@mail.test", name="Смирнов Олег Петрович", to=APPEALS, subject="Нет инсулина в аптеке",
        body="Второй месяц нет инсулина в аптеке на ул. Гоголя.\n"), mailbox="appeals")
    oid = world.only_ticket("appeal")
    timers = world.app.timers

    def alerts_at(*when) -> list[dict[str, int]]:
        return [timers.run_due(w) for w in when]

    assert alerts_at(msk(2026, 11, 17, 7, 59), msk(2026, 11, 17, 8), msk(2026, 11, 17, 12)) == [
        {}, {"appeal_registration": 1}, {}]
    world.at(msk(2026, 11, 18, 10)).act(oid, "take")
    assert alerts_at(msk(2026, 11, 19, 8), msk(2026, 11, 20, 1)) == [{}, {}]
    assert alerts_at(msk(2026, 12, 14, 7, 59), msk(2026, 12, 14, 8)) == [{}, {"appeal_answer": 1}]
    world.at(msk(2026, 12, 15, 12)).act(oid, "extend_deadline", 10, "Запрошены сведения в аптечной сети")
    assert iso_msk(world.ticket(oid)["deadlines"]["answer_due_at"]) == "2026-12-29 00:00"
    assert alerts_at(msk(2026, 12, 16, 8), msk(2026, 12, 26, 8), msk(2026, 12, 28, 8), msk(2026, 12, 28, 23),
                     msk(2026, 12, 29, 0)) == [
        {}, {"appeal_answer": 1}, {"appeal_answer": 1}, {}, {"appeal_answer": 1}]
    assert [text.split("\n")[0] for text in world.alerts()] == [
        f"⏰ <b>{oid}</b>: срок регистрации обращения — до 19.11.2026 включительно (осталось дней: 3).",
        f"⏰ <b>{oid}</b>: срок ответа на обращение — до 16.12.2026 включительно (осталось дней: 3).",
        f"⏰ <b>{oid}</b>: срок ответа на обращение — до 28.12.2026 включительно (осталось дней: 3).",
        f"⏰ <b>{oid}</b>: срок ответа на обращение — до 28.12.2026 включительно (осталось дней: 1).",
        f"🔴 <b>{oid}</b>: срок ответа на обращение истёк (28.12.2026, 59-ФЗ).",
    ]
    assert overdue_ids(world.at(msk(2026, 12, 29, 9))) == [oid]


# -- the acceptance clock as a rule over the status history ---------------------------------------

def _history(*steps: tuple[int, str]) -> list:
    return [(msk(2026, 11, 16, h), status) for h, status in steps]


@pytest.mark.parametrize("steps, started, accepted, pauses", [
    # Assigning is not acceptance; taking is.
    ([(9, "Новая"), (10, "Назначена"), (12, "Рассматривается")], 9, 12, []),
    # A question before taking pauses the clock; the answer resumes it.
    ([(9, "Новая"), (10, "Обратная связь"), (13, "Новая"), (14, "Рассматривается")], 9, 14, [(10, 13)]),
    # Questions after acceptance do not pause anything: the clock has stopped.
    ([(9, "Новая"), (10, "Рассматривается"), (11, "Обратная связь"), (12, "Рассматривается")], 9, 10, []),
    # Resolved straight away: dealt with, accepted.
    ([(9, "Новая"), (9, "Обратная связь"), (11, "Решена")], 9, 11, [(9, 11)]),
    # Escalation is first line's answer too.
    ([(9, "Новая"), (11, "escalated"), (12, "Новая")], 9, 11, []),
    # A reassignment after taking does not restart it ...
    ([(9, "Новая"), (10, "Рассматривается"), (11, "Назначена")], 9, 10, []),
    # ... a sender reopening a finished ticket nobody owns does.
    ([(9, "Новая"), (10, "Решена"), (15, "Новая")], 15, None, []),
    # Created waiting for its form: paused from the start, still paused.
    ([(9, "Новая"), (9, "Обратная связь")], 9, None, [(9, None)]),
])
def test_acceptance_clock_rules(steps, started, accepted, pauses):
    clock = acceptance_clock(_history(*steps))
    assert clock.started_at == msk(2026, 11, 16, started)
    assert clock.accepted_at == (msk(2026, 11, 16, accepted) if accepted else None)
    assert list(clock.pauses) == [(msk(2026, 11, 16, a), msk(2026, 11, 16, b) if b else None)
                                  for a, b in pauses]


def test_the_daemon_runs_the_timers_as_a_scheduled_job(world):
    """`run` (not only `run --once`) does the timed work: an APScheduler job every
    `[desk] timer_seconds`, here with the desk's clock standing at a due warning."""
    world.at(msk(2026, 11, 16, 9)).ingest(letter())
    world.at(msk(2026, 11, 16, 15))
    daemon = Daemon(world.app)

    async def story() -> None:
        task = asyncio.ensure_future(daemon.run_forever())
        try:
            for _ in range(100):
                if world.alerts():
                    break
                await asyncio.sleep(0.1)
        finally:
            daemon.stop()
            await asyncio.wait_for(task, 30)

    asyncio.run(story())
    [text] = world.alerts()
    assert "осталось 2 ч" in text
