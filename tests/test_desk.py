"""The desk service (issue 3, points 3 and 4): statuses move only as the regulation's table says,
priority and impact only in its pairs, every change is an audit event with its actor, and staff
replies leave as threaded emails whose answers come back into the same ticket.

Every story runs on SQLite and on PostgreSQL.
"""

from __future__ import annotations

import hashlib
from itertools import product

import pytest

from inboxdesk.app import App
from inboxdesk.desk import Refused
from inboxdesk.settings import load_settings
from tests.desk_world import World, attachments, body_lines
from tests.story import HELP, letter, message_id_of

SENDER = "i.petrova@sev.gov.ru"

# MAIL-5 (regulation 4.8) and APL-4, written out here by hand from the regulations: the desk's
# table must say exactly this.
TICKET_MOVES = {
    "Новая": {"Назначена", "Рассматривается", "Обратная связь", "Решена", "Закрыта"},
    "Назначена": {"Рассматривается", "Обратная связь", "Решена", "Закрыта"},
    "Рассматривается": {"Назначена", "Обратная связь", "Решена", "Закрыта"},
    "Обратная связь": {"Рассматривается", "Решена", "Закрыта"},
    "Решена": {"Рассматривается", "Закрыта"},
    "Закрыта": {"Рассматривается"},
}
APPEAL_MOVES = {"Новое": {"На рассмотрении", "Выполнено"}, "На рассмотрении": {"Выполнено"},
                "Выполнено": set()}
# MAIL-6 (regulation 4.9, 4.10).
PAIRS = {1: {"Критический", "Блокирующий"}, 2: {"Малое", "Большое"}, 3: {"Настройка", "Малое"},
         4: {"Текст/опечатка", "Нововведение", "Настройка"}}
IMPACTS = ["Нововведение", "Текст/опечатка", "Настройка", "Малое", "Большое", "Критический", "Блокирующий"]


@pytest.fixture
def world(tmp_path, db_url, dovecot, smtp_server, monkeypatch) -> World:
    """Both mailboxes on Dovecot, letters to aiosmtpd, the database under test."""
    return World(tmp_path, db_url, dovecot, smtp_server, monkeypatch)


@pytest.fixture
def app(world):
    app = App(load_settings(world.config))
    yield app
    app.close()


def phone_record(app, s, mailbox: str = "help"):
    actor = app.desk.staff(s).get("ivanova")
    return app.desk.register_phone_request(s, actor, mailbox, "Петрова Ирина Сергеевна", SENDER,
                                           "+7 978 000-00-00", "Не печатает принтер", "Текст звонка")


def status_events(app, public_id: str) -> list[tuple[str, str, str, str]]:
    with app.db.sessions() as s:
        ticket = app.desk.ticket_by_public_id(s, public_id)
        return [(e.actor, e.action, e.from_value, e.to_value) for e in ticket.events]


@pytest.mark.parametrize("kind, moves", [("help", TICKET_MOVES), ("appeals", APPEAL_MOVES)],
                         ids=["ticket", "appeal"])
def test_every_transition_in_the_table_works_and_every_other_is_refused(app, kind, moves):
    """MAIL-5, APL-4, AUD-1: for every pair of statuses, a ticket standing in the first is moved
    to the second by a staff member: allowed pairs change and are audited with the actor; all
    others are refused with a message naming the allowed statuses, and nothing changes."""
    for old, new in product(moves, moves):
        if old == new:
            continue
        with app.db.transaction() as s:
            record = phone_record(app, s, kind)
            record.status = old  # given: a record standing in `old`
            public_id = record.public_id
        with app.db.transaction() as s:
            record = app.desk.ticket_by_public_id(s, public_id)
            actor = app.desk.staff(s).get("ivanova")  # first line: the record is on it
            assert set(app.desk.allowed_statuses(record)) == moves[old]
            try:
                app.desk.change_status(s, record, actor, new, answer_text="Ответ по существу")
            except Refused as exc:
                refused = str(exc)
            else:
                refused = None
        if new in moves[old]:
            assert refused is None, f"{old} -> {new}: {refused}"
            # Completing a new appeal records `На рассмотрении` on the way (APL-5).
            via = "На рассмотрении" if (old, new) == ("Новое", "Выполнено") else old
            assert ("ivanova", "status", via, new) in status_events(app, public_id)
        else:
            allowed = ", ".join(f"«{m}»" for m in app.desk.allowed_statuses(record)) or "никуда"
            assert refused is not None and refused.startswith(f"Из статуса «{old}» нельзя перейти в «{new}»; "
                                                              f"можно: {allowed}"), refused
            assert "\n" not in refused
            with app.db.sessions() as s:
                assert app.desk.ticket_by_public_id(s, public_id).status == old


def test_priority_and_impact_only_in_the_regulations_pairs(app):
    """MAIL-6: every pair of the table is accepted and audited; every other pair (and an unknown
    priority) is refused with a message naming the allowed values."""
    with app.db.transaction() as s:
        public_id = phone_record(app, s).public_id
    for priority, impact in product([1, 2, 3, 4], IMPACTS):
        with app.db.transaction() as s:
            ticket = app.desk.ticket_by_public_id(s, public_id)
            actor = app.desk.staff(s).get("ivanova")
            assert set(app.desk.allowed_impacts(priority)) == PAIRS[priority]
            if impact in PAIRS[priority]:
                app.desk.set_priority(s, ticket, actor, priority, impact)
                assert (ticket.priority, ticket.impact) == (priority, impact)
            else:
                with pytest.raises(Refused) as refused:
                    app.desk.set_priority(s, ticket, actor, priority, impact)
                allowed = ", ".join(app.desk.allowed_impacts(priority))
                assert str(refused.value).endswith(f"допустимо: {allowed}")
    with app.db.transaction() as s, pytest.raises(Refused, match="допустимы: 1 \\(Неотложный\\)"):
        app.desk.set_priority(s, app.desk.ticket_by_public_id(s, public_id), app.desk.staff(s).get("ivanova"),
                              5, "Малое")
    audited = [e for e in status_events(app, public_id) if e[1] == "priority"]
    assert len(audited) == sum(len(v) for v in PAIRS.values())
    assert all(actor == "ivanova" for actor, *_ in audited)


def test_the_cli_refuses_with_one_clear_line_and_exit_status_1(world):
    """Refusals through the CLI: exit status 1, one line naming the allowed values."""
    world.ok("ticket", "new", "--as", "ivanova", "--mailbox", "help", "--name", "Петрова Ирина",
             "--email", SENDER, "--subject", "Принтер", "--text", "Не печатает")
    [ticket] = world.tickets()
    tid = ticket["id"]
    assert world.refused("ticket", "priority", tid, "1", "--impact", "Малое", "--as", "ivanova") == (
        "Влияние «Малое» не подходит к приоритету 1 «Неотложный»; допустимо: Критический, Блокирующий")
    assert world.refused("ticket", "status", tid, "Готово", "--as", "ivanova").startswith(
        "Неизвестный статус «Готово»; статусы: Новая, Назначена, Рассматривается")
    assert world.refused("ticket", "take", tid, "--as", "nobody") == (
        "Сотрудник «nobody» не найден; сотрудники: ivanova, petrov")
    assert world.refused("ticket", "escalate", tid, "--as", "petrov") == (
        "Эскалировать на вторую линию может только оператор (1-я линия) или администратор; "
        "ваша роль: инженер (2-я линия)")
    assert world.refused("ticket", "take", "HD-2020-999999", "--as", "ivanova") == "Записи HD-2020-999999 нет"
    assert world.refused("ticket", "note", tid, "--as", "ivanova", "--text", "  ") == "Пустая заметка"


def test_every_operation_leaves_an_audit_event_naming_its_actor(world, smtp_server):
    """AUD-1, MAIL-10, MAIL-11: a phone request registered, taken, re-prioritised, noted,
    answered, escalated, taken by the second line and resolved; each step names who did it."""
    world.configure()
    created = world.ok("ticket", "new", "--as", "ivanova", "--mailbox", "help", "--name", "Петрова Ирина",
                       "--email", SENDER, "--phone", "+7 978 111-22-33", "--subject", "Не работает ЭЦП",
                       "--text", "Звонок в 9:10: подпись не ставится")
    tid = created["id"]
    assert created["channel"] == "phone" and created["status"] == "Новая"
    world.ok("ticket", "take", tid, "--as", "ivanova")
    world.ok("ticket", "priority", tid, "2", "--impact", "Большое", "--as", "ivanova")
    world.ok("ticket", "note", tid, "--as", "ivanova", "--text", "Похоже на сертификат")
    world.ok("ticket", "reply", tid, "--as", "ivanova", "--text", "Проверяем сертификат.")
    escalated = world.ok("ticket", "escalate", tid, "--as", "ivanova", "--comment", "Нужен инженер КриптоПро")
    assert escalated["line"] == 2 and escalated["assignee"] is None
    assert world.refused("ticket", "escalate", tid, "--as", "ivanova") == f"{tid} уже на второй линии"
    world.ok("ticket", "assign", tid, "petrov", "--as", "ivanova")
    world.ok("ticket", "take", tid, "--as", "petrov")
    world.ok("ticket", "status", tid, "Решена", "--as", "petrov", "--answer", "Сертификат переустановлен.")
    assert [t["id"] for t in world.ok("ticket", "find", "сертификат")] == [tid]
    assert [t["id"] for t in world.ok("ticket", "find", "ЭЦП")] == [tid]
    assert world.ok("tickets", "list", "--assignee", "petrov")[0]["id"] == tid

    events = [(e["actor"], e["action"], e["from"], e["to"]) for e in world.ticket(tid)["events"]]
    assert events == [
        ("ivanova", "created", None, "Новая"),
        ("ivanova", "assigned", None, "ivanova"),
        ("ivanova", "status", "Новая", "Рассматривается"),
        ("ivanova", "priority", None, "2 Высокий / Большое"),
        ("ivanova", "note", None, None),
        ("ivanova", "reply", None, None),
        ("ivanova", "escalated", "1", "2"),
        ("ivanova", "assigned", "ivanova", None),
        ("ivanova", "assigned", None, "petrov"),
        ("ivanova", "status", "Рассматривается", "Назначена"),
        ("petrov", "status", "Назначена", "Рассматривается"),
        ("petrov", "status", "Рассматривается", "Решена"),
    ]
    notes = [m["body"] for m in world.ticket(tid)["messages"] if m["direction"] == "note"]
    assert notes == ["Похоже на сертификат", "Эскалация на вторую линию: Нужен инженер КриптоПро"]

    # Notes never leave; the sender got: ack, taken, the reply, resolved. The second line taking
    # it over is no news to them: "принята в работу" is told once (issue 18).
    world.run_once()
    subjects = [m.message["Subject"] for m in smtp_server.messages]
    assert subjects == [f"[{tid}] Заявка зарегистрирована: Не работает ЭЦП",
                        f"[{tid}] Заявка принята в работу: Не работает ЭЦП",
                        f"[{tid}] Re: Не работает ЭЦП",
                        f"[{tid}] Заявка решена: Не работает ЭЦП"]
    assert all("КриптоПро" not in m.message.get_content() and "Похоже" not in m.message.get_content()
               for m in smtp_server.messages)
    resolved = body_lines(smtp_server.messages[-1].message)
    assert "Сертификат переустановлен." in resolved


def test_staff_reply_with_two_files_is_threaded_and_the_answer_moves_feedback_back_into_work(world,
                                                                                              smtp_server):
    """Issue 3 point 4, MAIL-4, MAIL-5, OUT-1: the staff reply with two attachments reaches the
    sender as one email, tagged and threaded; the ticket waits in `Обратная связь`; the sender's
    answer to that email lands in the same ticket and moves it back into work."""
    request = letter(subject="Не открывается расписание врача")
    world.send_help(request)
    world.run_once()
    [ticket] = world.tickets()
    tid = ticket["id"]
    world.ok("ticket", "take", tid, "--as", "ivanova")
    png, pdf = world.tmp / "шаг 1.png", world.tmp / "инструкция.pdf"
    png.write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 20)
    pdf.write_bytes(b"%PDF-1.7 instruction \x00\xff" * 100)
    world.ok("ticket", "reply", tid, "--as", "ivanova", "--text", "Очистите кэш браузера, как на скриншоте.",
             "--attach", str(png), str(pdf))
    world.ok("ticket", "status", tid, "Обратная связь", "--as", "ivanova", "--comment", "Помогло?")
    world.run_once()

    ack, taken, reply, feedback = smtp_server.messages  # all to the sender, in this order
    msg = reply.message
    assert reply.rcpt_tos == [SENDER] and reply.mail_from == HELP
    assert msg["Subject"] == f"[{tid}] Re: Не открывается расписание врача"
    assert msg["In-Reply-To"] == taken.message["Message-ID"]  # the last letter of the conversation
    refs = msg["References"].split()
    assert refs[:3] == [message_id_of(request), ack.message["Message-ID"], taken.message["Message-ID"]]
    assert "Auto-Submitted" not in msg  # a person's answer, not automatic mail
    assert body_lines(msg)[0] == "Очистите кэш браузера, как на скриншоте."
    assert "Иванова Мария Петровна" in body_lines(msg)
    assert [(n, hashlib.sha256(d).hexdigest()) for n, d in attachments(msg)] == [
        ("шаг 1.png", hashlib.sha256(png.read_bytes()).hexdigest()),
        ("инструкция.pdf", hashlib.sha256(pdf.read_bytes()).hexdigest())]
    assert "Помогло?" in feedback.message.get_content()

    world.send_help(letter(subject=f"Re: [{tid}] Re: Не открывается расписание врача",
                           body="Спасибо, после очистки кэша всё открылось.\n\n> Очистите кэш браузера\n",
                           in_reply_to=msg["Message-ID"], references=" ".join([*refs, msg["Message-ID"]])))
    world.run_once()

    assert len(world.tickets()) == 1
    shown = world.ticket(tid)
    assert shown["status"] == "Рассматривается"
    assert shown["messages"][-1]["direction"] == "in"
    assert shown["messages"][-1]["body"].strip() == "Спасибо, после очистки кэша всё открылось."
    assert shown["events"][-1]["actor"] == SENDER
    assert (shown["events"][-1]["action"], shown["events"][-1]["from"], shown["events"][-1]["to"]) == (
        "status", "Обратная связь", "Рассматривается")
    assert len(smtp_server.messages) == 4  # the sender's own answer triggers no letter


def test_reply_to_a_resolved_ticket_reopens_it_within_the_window(world, smtp_server):
    """MAIL-5: within `[desk] reopen_days` a sender's reply to `Решена` reopens the ticket."""
    world.send_help(letter(subject="Ошибка в отчёте"))
    world.run_once()
    [ticket] = world.tickets()
    world.ok("ticket", "take", ticket["id"], "--as", "ivanova")
    world.ok("ticket", "status", ticket["id"], "Решена", "--as", "ivanova", "--answer", "Исправлено.")
    world.send_help(letter(subject=f"Re: [{ticket['id']}] Ошибка в отчёте", body="Ошибка вернулась.\n"))
    world.run_once()

    assert [t["status"] for t in world.tickets()] == ["Рассматривается"]


def test_late_reply_to_a_closed_ticket_opens_a_new_linked_one(world, smtp_server):
    """MAIL-5: after the window (`reopen_days = 0` here) a reply to `Закрыта` opens a new ticket
    linked to the old one, which stays closed."""
    world.configure("\n[desk]\nreopen_days = 0\n")
    world.send_help(letter(subject="Ошибка в отчёте"))
    world.run_once()
    [old] = world.tickets()
    world.ok("ticket", "status", old["id"], "Закрыта", "--as", "ivanova")
    world.send_help(letter(subject=f"Re: [{old['id']}] Ошибка в отчёте", body="Снова не работает.\n"))
    world.run_once()

    old_now, new = world.tickets()
    assert old_now["status"] == "Закрыта"
    assert new["status"] == "Новая" and world.ticket(new["id"])["linked_to"] == old["id"]
    assert [r["disposition"] for r in world.ok("inbound", "list")] == ["ticket", "ticket"]
    assert any(e["action"] == "followup_opened_new" and e["to"] == new["id"]
               for e in world.ticket(old["id"])["events"])


def test_status_letters_follow_notify_statuses(world, smtp_server):
    """The sender's status letters are configurable: with `notify_statuses = []` taking a ticket
    sends nothing, yet an answer written by staff is always sent."""
    world.configure('\n[desk]\nnotify_statuses = []\n')
    world.send_help(letter(subject="Вопрос по расписанию"))
    world.run_once()
    [ticket] = world.tickets()
    world.ok("ticket", "take", ticket["id"], "--as", "ivanova")
    world.ok("ticket", "status", ticket["id"], "Обратная связь", "--as", "ivanova")
    world.ok("ticket", "status", ticket["id"], "Решена", "--as", "ivanova", "--answer", "Готово.")
    world.run_once()
    subjects = [m.message["Subject"] for m in smtp_server.messages]
    assert subjects == [f"[{ticket['id']}] Заявка зарегистрирована: Вопрос по расписанию",
                        f"[{ticket['id']}] Заявка решена: Вопрос по расписанию"]


def test_staff_directory_from_settings_and_the_cli(world, app):
    """Staff come from `[[staff]]` and from `staff add`; settings win; Telegram IDs resolve."""
    assert world.run("staff", "add", "sidorov", "--role", "admin", "--telegram-id", "1003")[0] == 0
    assert "задан в settings.toml" in world.refused("staff", "add", "ivanova", "--role", "admin")
    assert "уже принадлежит сотруднику «ivanova»" in world.refused(
        "staff", "add", "kozlov", "--role", "operator", "--telegram-id", "1001")
    bad_email = world.refused("staff", "add", "kozlov", "--role", "operator", "--email", "нет")
    assert bad_email == "Адрес «нет» некорректен"
    listed = world.ok("staff", "list")
    assert [(m["name"], m["role"], m["source"]) for m in listed] == [
        ("ivanova", "operator", "settings"), ("petrov", "engineer", "settings"), ("sidorov", "admin", "db")]
    with app.db.sessions() as s:
        staff = app.desk.staff(s)
        assert staff.by_telegram(1003).name == "sidorov"
        assert staff.by_telegram(1002).full_name == "Петров Олег Игоревич"
        assert staff.by_telegram(999) is None
    assert world.run("staff", "remove", "sidorov")[0] == 0
    assert [m["name"] for m in world.ok("staff", "list")] == ["ivanova", "petrov"]

    world.configure('\n[[staff]]\nname = "boss"\nrole = "chief"\n')
    status, _, err = world.run("staff", "list")
    assert status == 2 and "staff[2].role: must be one of operator, engineer, admin" in err
    world.configure('\n[desk]\nnotify_statuses = ["Готово"]\n')
    status, _, err = world.run("staff", "list")
    assert status == 2 and "desk.notify_statuses: no letter for status 'Готово'" in err


def test_listeners_hear_every_change(app):
    """Other channels (the staff chat) subscribe to `Desk.listeners` and hear each change."""
    heard: list[tuple[str, str]] = []
    app.desk.listeners.append(lambda s, ticket, event: heard.append((ticket.public_id, event)))
    with app.db.transaction() as s:
        staff = app.desk.staff(s)
        ivanova, petrov = staff.get("ivanova"), staff.get("petrov")
        t = phone_record(app, s)
        app.desk.take(s, t, ivanova)
        app.desk.set_priority(s, t, ivanova, 3, "Настройка")
        app.desk.note(s, t, ivanova, "заметка")
        app.desk.reply(s, t, ivanova, "ответ")
        app.desk.escalate(s, t, ivanova)
        app.desk.assign(s, t, ivanova, "petrov")
        app.desk.deescalate(s, t, petrov)
        app.desk.escalate(s, t, ivanova)
        app.desk.take(s, t, petrov)
        app.desk.change_status(s, t, petrov, "Решена")
    assert [e for _, e in heard] == ["created", "assigned", "priority", "note", "reply", "escalated",
                                     "assigned", "deescalated", "escalated", "assigned", "status"]
