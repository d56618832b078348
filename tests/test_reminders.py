"""The request form, reminders and automatic closing (issue 5, "what must be shown" 3 and 4), with a
controlled clock: mail comes in through intake, letters reach the SMTP server (aiosmtpd), and
`run --once` does the timed work at the moments the test sets.

Every story runs on SQLite and on PostgreSQL.
"""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest

from inboxdesk.form_check import PARTS
from inboxdesk.settings import SettingsError, parse_settings
from tests.clock_world import World, iso_msk, msk
from tests.desk_world import body_lines
from tests.story import letter

FORM_04 = Path(__file__).parent / "fixtures" / "requests" / "04_missing_phone_and_login.txt"
SENDER, NAME = "e.kravchenko@sev.gov.ru", "Кравченко Елена Николаевна"
PNG = b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 8


@pytest.fixture
def world(tmp_path, db_url, smtp_server):
    w = World(tmp_path, db_url, smtp_server, desk="feedback_reminder_days = [2, 5]\nauto_close_days = 5\n")
    yield w
    w.close()


def listed(message) -> list[str]:
    """The parts a letter asks for (its "  - " lines)."""
    return [line.strip()[2:] for line in body_lines(message) if line.startswith("  - ")]


def test_request_missing_phone_and_login_gets_one_letter_and_the_answer_resumes_the_clock(world, smtp_server):
    """MAIL-8, MAIL-7: the issue's example (phone and login missing) is registered and waits in
    `Обратная связь` (audited, actor system); the sender gets one letter with the ID that names
    exactly those two parts. A partial answer (the phone) is told what is still missing (the
    login); the answer with the login completes the request: it goes back to `Новая` and the
    acceptance clock starts running, 8 working hours from that answer."""
    head, body = FORM_04.read_text(encoding="utf-8").split("\n---\n", 1)
    subject = head.splitlines()[0].removeprefix("subject:").strip()
    world.at(msk(2026, 11, 16, 9)).ingest(letter(sender=SENDER, name=NAME, subject=subject, body=body,
                                                 files=[("журнал.png", "image/png", PNG)]))
    world.run_once()

    tid = world.only_ticket()
    [form] = smtp_server.messages  # one letter, not an acknowledgement and a request for data
    assert form.rcpt_tos == [SENDER]
    assert form.message["Subject"] == (f"[{tid}] Заявка зарегистрирована, нужны дополнительные сведения: "
                                       f"{subject}")
    assert listed(form.message) == [PARTS["phone"], PARTS["login"]]
    assert any(f"зарегистрировано под номером {tid}" in line for line in body_lines(form.message))
    waiting = world.ticket(tid)
    assert waiting["status"] == "Обратная связь"
    assert waiting["missing_fields"] == [PARTS["phone"], PARTS["login"]]
    assert waiting["deadlines"]["paused"] is True and waiting["accept_due_at"] is None
    assert world.events(tid)[:2] == [("system", "created", None, "Новая"),
                                     ("system", "status", "Новая", "Обратная связь")]

    world.at(msk(2026, 11, 17, 10)).ingest(letter(
        sender=SENDER, name=NAME, subject=f"Re: {form.message['Subject']}",
        in_reply_to=form.message["Message-ID"],
        body="Телефон: 8 (8692) 33-44-55\n\n> Пожалуйста, укажите:\n"))
    world.run_once()
    assert world.ticket(tid)["status"] == "Обратная связь"
    [_, still] = smtp_server.messages
    assert listed(still.message) == [PARTS["login"]]
    assert any("по-прежнему не хватает" in line for line in body_lines(still.message))

    world.at(msk(2026, 11, 17, 15)).ingest(letter(
        sender=SENDER, name=NAME, subject=f"Re: {still.message['Subject']}",
        in_reply_to=still.message["Message-ID"], body="Логин: kravchenko_en\n"))
    world.run_once()
    done = world.ticket(tid)
    assert done["status"] == "Новая" and done["missing_fields"] == []
    # Tue 15:00–17:00 = 2 h, Wed 08:00 + 6 h: the clock counts from the completing answer.
    assert iso_msk(done["accept_due_at"]) == "2026-11-18 14:00"
    assert world.events(tid)[-2:] == [
        (SENDER, "form_completed", f"{PARTS['login']}", None),
        (SENDER, "status", "Обратная связь", "Новая")]
    assert len(smtp_server.messages) == 2  # the completing answer is not answered automatically

    # The resumed clock is the one the warnings follow: 2 h before Wed 14:00 is Wed 12:00.
    assert world.at(msk(2026, 11, 18, 11, 59)).app.timers.run_due() == {}
    assert world.app.timers.run_due(msk(2026, 11, 18, 12)) == {"accept": 1}


def test_attachments_only_request_is_asked_for_a_description(world, smtp_server):
    """MAIL-8, regulation 3.1: a letter whose only content is a .docx gets the same treatment,
    with the reason said."""
    world.at(msk(2026, 11, 16, 9)).ingest(letter(
        subject="Заявка на доступ", body="Во вложении.\n",
        files=[("заявка.docx", "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
                b"PK\x03\x04 docx bytes")]))
    world.run_once()
    tid = world.only_ticket()
    assert world.ticket(tid)["status"] == "Обратная связь"
    [form] = smtp_server.messages
    assert any("п. 3.1 Регламента" in line for line in body_lines(form.message))


def test_form_check_can_be_turned_off(tmp_path, db_url, smtp_server):
    """`[desk] form_check = false`: the same incomplete request is `Новая` with the plain
    acknowledgement."""
    world = World(tmp_path, db_url, smtp_server, desk="form_check = false\n")
    try:
        world.ingest(letter(subject="Не работает печать", body="Не печатает.\n"))
        world.run_once()
        assert world.ticket(world.only_ticket())["status"] == "Новая"
        [ack] = smtp_server.messages
        assert "Заявка зарегистрирована: Не работает печать" in ack.message["Subject"]
    finally:
        world.close()


def test_reminders_and_automatic_closing_at_the_configured_times(world, smtp_server):
    """`feedback_reminder_days = [2, 5]`, `auto_close_days = 5` (working days). A question is put to
    the sender on Tue 03.11.2026 10:00: reminders go on Fri 06.11 10:00 (Wed 4 November is a
    holiday) and on Wed 11.11 10:00, each once and with a line in the staff chat, audited; the
    daemon restarts between them. The sender answers, staff resolve the ticket on Thu 12.11
    12:00; with no answer it is closed on Thu 19.11 12:00 by `system`, with a letter."""
    world.at(msk(2026, 11, 2, 9)).ingest(letter(subject="Не открывается расписание врача"))
    tid = world.only_ticket()
    world.at(msk(2026, 11, 3, 10)).act(tid, "take")
    world.act(tid, "change_status", "Обратная связь", comment="Какой у вас номер кабинета?")
    world.run_once()
    sent = len(smtp_server.messages)  # acknowledgement, taken into work, the question

    def reminders() -> list:
        return [m for m in smtp_server.messages if "Напоминание" in m.message["Subject"]]

    for when in (msk(2026, 11, 6, 9, 59), msk(2026, 11, 6, 10), msk(2026, 11, 6, 10, 30)):
        world.at(when).run_once()
    [first] = reminders()
    assert first.rcpt_tos == ["i.petrova@sev.gov.ru"]
    assert first.message["Subject"] == (f"[{tid}] Напоминание: нужен ваш ответ по заявке: "
                                        "Не открывается расписание врача")
    assert "Какой у вас номер кабинета?" in body_lines(first.message)
    assert any("с 03.11.2026 10:00" in line for line in body_lines(first.message))
    world.restart()
    for when in (msk(2026, 11, 6, 11), msk(2026, 11, 11, 9, 59), msk(2026, 11, 11, 10), msk(2026, 11, 12, 9)):
        world.at(when).run_once()
    assert len(reminders()) == 2
    assert [text.split("\n")[0] for text in world.alerts()] == [
        f"✉️ <b>{tid}</b>: заявка ждёт ответа заявителя 2 раб. дн. (с 03.11.2026 10:00 MSK); "
        "заявителю отправлено напоминание.",
        f"✉️ <b>{tid}</b>: заявка ждёт ответа заявителя 5 раб. дн. (с 03.11.2026 10:00 MSK); "
        "заявителю отправлено напоминание."]
    assert [e for e in world.events(tid) if e[1] == "reminder"] == [
        ("system", "reminder", None, "2d"), ("system", "reminder", None, "5d")]
    assert len(smtp_server.messages) == sent + 2

    world.at(msk(2026, 11, 12, 10)).ingest(letter(subject=f"Re: [{tid}] Не открывается расписание врача",
                                                  body="Кабинет 214.\n"))
    assert world.ticket(tid)["status"] == "Рассматривается"
    world.at(msk(2026, 11, 12, 12)).act(tid, "change_status", "Решена",
                                        answer_text="Шаблон расписания восстановлен.")
    world.run_once()
    before_close = len(smtp_server.messages)
    world.at(msk(2026, 11, 19, 11, 59)).run_once()
    assert world.ticket(tid)["status"] == "Решена"
    world.restart()
    world.at(msk(2026, 11, 19, 12)).run_once()
    world.at(msk(2026, 11, 20, 12)).run_once()

    closed = world.ticket(tid)
    assert closed["status"] == "Закрыта"
    assert world.events(tid)[-1] == ("system", "status", "Решена", "Закрыта")
    assert closed["events"][-1]["detail"]["reason"] == "нет ответа заявителя 5 раб. дн. после решения"
    [letter_closed] = smtp_server.messages[before_close:]
    assert letter_closed.message["Subject"] == f"[{tid}] Заявка закрыта: Не открывается расписание врача"
    assert any("в течение 5 рабочих дней" in line for line in body_lines(letter_closed.message))
    assert world.alert_state()[-1] == ("auto_close", "5d@20261112T0900Z", True)



@pytest.mark.parametrize("desk, message", [
    ("form_check = 1", "desk.form_check: expected true or false, got 1"),
    ('feedback_reminder_days = ["2"]', "desk.feedback_reminder_days: expected a list of whole numbers"),
    ("feedback_reminder_days = [0, 2]", "desk.feedback_reminder_days: days must be 1 or more"),
    ("appeal_warn_days = 3", "desk.appeal_warn_days: expected a list of whole numbers"),
    ("auto_close_days = -1", "desk.auto_close_days: must not be negative"),
    ("timer_seconds = 0", "desk.timer_seconds: must be positive"),
    ("reminder_days = [2]", "desk.reminder_days: unknown key"),
])
def test_settings_of_issue_5_are_strict_and_name_the_key(tmp_path, desk, message):
    with pytest.raises(SettingsError) as refused:
        parse_settings(tomllib.loads(f"[desk]\n{desk}\n"), tmp_path)
    assert str(refused.value).startswith(message)
