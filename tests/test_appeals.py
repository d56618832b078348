"""Stories of the citizens' appeals mailbox (issue 3, points 1, 2 and 5): appeals arrive in an IMAP
mailbox, staff work them through the CLI, and the department at org-appeal@mos.ru receives the
regulated emails (seed 000) exactly as the regulation lists their contents.

Every story runs on SQLite and on PostgreSQL.
"""

from __future__ import annotations

import hashlib
import re

import pytest

from inboxdesk.appeal_fields import FIELDS
from tests.desk_world import APPEALS, DEPARTMENT, World, attachments, body_lines, wait_due
from tests.story import letter, message_id_of

APPLICANT = "p.ivanov@example.ru"
PDF = b"%PDF-1.4\n%\xe2\xe3\xcf\xd3 referral scan \x00\xff" * 50
JPG = b"\xff\xd8\xff\xe0 photo of the queue \x00\x01" * 40
PAPER = b"%PDF-1.4 paper answer No 10-18/45 signed \x00\xfe" * 30

FORM_BODY = """Фамилия: Иванов
Имя: Пётр
Отчество: Алексеевич
Адрес: г. Севастополь, ул. Ленина, д. 1, кв. 2
Адрес электронной почты: p.ivanov@example.ru
Тема вопроса: Запись к врачу
Содержание обращения: Не могу записаться к кардиологу через портал.
Прошу помочь с записью на ближайшую дату.
Файл: направление.pdf
"""


@pytest.fixture
def world(tmp_path, db_url, dovecot, smtp_server, monkeypatch) -> World:
    """Both mailboxes on Dovecot, letters to aiosmtpd, the database under test."""
    return World(tmp_path, db_url, dovecot, smtp_server, monkeypatch)


def form_letter(**extra) -> bytes:
    """What the institution's web form sends: a robot's From, the applicant in the fields."""
    kwargs = dict(sender="noreply@gb1.example", name="Форма обратной связи", to=APPEALS,
                  subject="Обращение с сайта: Запись к врачу", body=FORM_BODY,
                  files=[("направление.pdf", "application/pdf", PDF), ("фото.jpg", "image/jpeg", JPG)])
    kwargs.update(extra)
    return letter(**kwargs)


def department_new_lines(appeal_id: str, values: dict[str, str]) -> list[str]:
    """APL-3 / seed 000 items 5-7: the body the regulation asks for, field by field in its order."""
    lines = ["Наименование учреждения: ГБУЗС «МИАЦ»", f"Уникальный идентификатор обращения: {appeal_id}",
             "Статус обращения: Новое"]
    for name in FIELDS:
        value = values.get(name, "")
        lines += f"{name}: {value}".rstrip().splitlines()
    return lines


def test_web_form_letter_becomes_an_appeal_and_the_department_gets_the_regulated_email(world):
    """APL-1, APL-2, APL-3, OUT-1, OUT-2: fields from `Поле: значение` lines, the applicant (not
    the form's robot) is the requester; the department email's subject and body follow the
    regulation line by line, the files are attached byte-identical; the applicant is acknowledged."""
    request = form_letter()
    world.send_appeal(request)
    world.run_once()

    [appeal] = world.tickets("--kind", "appeal")
    appeal_id = appeal["id"]
    assert re.fullmatch(r"OBR-\d{4}-\d{6}", appeal_id)
    assert appeal["status"] == "Новое"
    assert appeal["requester_email"] == APPLICANT
    assert appeal["requester_name"] == "Иванов Пётр Алексеевич"
    assert appeal["subject"] == "Запись к врачу"
    assert appeal["missing_fields"] == []
    shown = world.ticket(appeal_id)
    assert list(shown["fields"]) == list(FIELDS)
    assert shown["fields"]["Содержание обращения"] == ("Не могу записаться к кардиологу через портал.\n"
                                                      "Прошу помочь с записью на ближайшую дату.")
    assert shown["fields"]["Файл"] == "направление.pdf, фото.jpg"

    [notice] = world.letters_to(DEPARTMENT)
    msg = notice.message
    assert notice.rcpt_tos == [DEPARTMENT] and notice.mail_from == APPEALS
    assert msg["Subject"] == f"[{appeal_id}] Запись к врачу"  # seed 000 item 6: the ID and the topic
    assert msg["Auto-Submitted"] == "auto-generated"
    assert body_lines(msg) == [
        "Наименование учреждения: ГБУЗС «МИАЦ»",
        f"Уникальный идентификатор обращения: {appeal_id}",
        "Статус обращения: Новое",
        "Фамилия: Иванов",
        "Имя: Пётр",
        "Отчество: Алексеевич",
        "Адрес: г. Севастополь, ул. Ленина, д. 1, кв. 2",
        "Адрес электронной почты: p.ivanov@example.ru",
        "Тема вопроса: Запись к врачу",
        "Содержание обращения: Не могу записаться к кардиологу через портал.",
        "Прошу помочь с записью на ближайшую дату.",
        "Файл: направление.pdf, фото.jpg",
    ]
    files = attachments(msg)
    assert [name for name, _ in files] == ["направление.pdf", "фото.jpg"]
    assert [hashlib.sha256(data).hexdigest() for _, data in files] == [
        hashlib.sha256(PDF).hexdigest(), hashlib.sha256(JPG).hexdigest()]

    [ack] = world.letters_to(APPLICANT)  # to the applicant, never to the form's robot
    assert not world.letters_to("noreply@gb1.example")
    assert ack.message["Subject"] == f"[{appeal_id}] Обращение зарегистрировано: Запись к врачу"
    assert ack.message["In-Reply-To"] == message_id_of(request)
    text = ack.message.get_content()
    assert f"Номер обращения: {appeal_id}" in text and "Статус обращения: Новое" in text
    assert "Срок ответа: до " in text

    # APL-6 and the delivery ledger are on the appeal.
    assert shown["deadlines"]["answer_due_at"] and shown["deadlines"]["registration_due_at"]
    assert [(o["purpose"], o["status"]) for o in shown["outbox"]] == [("department_new", "sent"),
                                                                      ("ack", "sent")]


def test_free_form_letter_yields_fields_from_the_envelope(world):
    """APL-1: a letter written by a person: ФИО from the From display name, the address, the
    subject as the topic and the body as the content; the department email lists every field."""
    world.send_appeal(letter(sender="a.sidorova@mail.example", name="Сидорова Анна Викторовна", to=APPEALS,
                             subject="Нет льготного лекарства в аптеке",
                             body="Здравствуйте!\n\nВторой месяц нет инсулина в аптеке на ул. Гоголя.\n"))
    world.run_once()

    [appeal] = world.tickets("--kind", "appeal")
    values = world.ticket(appeal["id"])["fields"]
    assert values == {
        "Фамилия": "Сидорова", "Имя": "Анна", "Отчество": "Викторовна", "Адрес": "",
        "Адрес электронной почты": "a.sidorova@mail.example",
        "Тема вопроса": "Нет льготного лекарства в аптеке",
        "Содержание обращения": "Здравствуйте!\n\nВторой месяц нет инсулина в аптеке на ул. Гоголя.",
        "Файл": "",
    }
    [notice] = world.letters_to(DEPARTMENT)
    assert notice.message["Subject"] == f"[{appeal['id']}] Нет льготного лекарства в аптеке"
    assert body_lines(notice.message) == department_new_lines(appeal["id"], values)
    assert attachments(notice.message) == []
    assert len(world.letters_to("a.sidorova@mail.example")) == 1  # the acknowledgement


def test_missing_mandatory_fields_never_lose_the_appeal(world):
    """APL-1: a form without the first name and the email is registered anyway and flagged with
    exactly what is missing; the department is told; there is no address to acknowledge to."""
    body = FORM_BODY.replace("Имя: Пётр\n", "").replace("Адрес электронной почты: p.ivanov@example.ru\n", "")
    world.send_appeal(form_letter(body=body, files=[]))
    world.run_once()

    [appeal] = world.tickets("--kind", "appeal")
    assert appeal["missing_fields"] == ["Имя", "Адрес электронной почты"]
    assert appeal["requester_email"] == ""
    [notice] = world.smtp.messages  # only the department's letter: nobody to acknowledge
    assert notice.rcpt_tos == [DEPARTMENT]
    lines = body_lines(notice.message)
    assert "Имя:" in lines and "Адрес электронной почты:" in lines
    shown = world.ticket(appeal["id"])
    assert any(e["action"] == "fields_missing" and e["to"] == "Имя, Адрес электронной почты"
               for e in shown["events"])


def test_appeal_life_take_complete_with_text_then_with_a_paper_copy(world):
    """APL-4, APL-5: take into review, complete with an answer text: the department's completion
    email and the applicant's answer, exact contents. A second appeal is completed straight from
    `Новое` with a paper answer's copy: `На рассмотрении` is recorded first, the copy is attached
    byte-identical to both letters. Completing without either is refused."""
    world.send_appeal(form_letter(files=[]))
    world.send_appeal(form_letter(subject="Обращение с сайта: Справка", files=[],
                                  body=FORM_BODY.replace("Запись к врачу", "Справка для бассейна")))
    world.run_once()
    first, second = (t["id"] for t in world.tickets("--kind", "appeal"))
    before = len(world.smtp.messages)

    taken = world.ok("ticket", "take", first, "--as", "ivanova")
    assert (taken["status"], taken["assignee"]) == ("На рассмотрении", "ivanova")
    refusal = world.refused("ticket", "complete", first, "--as", "ivanova")
    assert refusal == "Для статуса «Выполнено» нужен текст ответа или копия бумажного ответа (файл)"
    answer = "Запись к кардиологу открыта: 25.11 в 10:00, каб. 214.\nВозьмите полис ОМС."
    done = world.ok("ticket", "complete", first, "--as", "ivanova", "--answer", answer)
    assert done["status"] == "Выполнено"
    world.run_once()

    new = world.new_letters(before)
    [dep] = [m for m in new if m.rcpt_tos == [DEPARTMENT]]
    assert dep.message["Subject"] == f"[{first}] Запись к врачу"
    assert body_lines(dep.message) == [
        "Наименование учреждения: ГБУЗС «МИАЦ»",
        "Уникальный идентификатор учреждения: MIAC-92",
        f"Уникальный идентификатор обращения: {first}",
        "Статус обращения: Выполнено",
        "Ответ на обращение: Запись к кардиологу открыта: 25.11 в 10:00, каб. 214.",
        "Возьмите полис ОМС.",
    ]
    creation = next(m for m in world.letters_to(DEPARTMENT) if first in m.message["Subject"])
    assert dep.message["In-Reply-To"] == creation.message["Message-ID"]
    [reply] = [m for m in new if m.rcpt_tos == [APPLICANT]]
    assert reply.message["Subject"] == f"[{first}] Ответ на обращение: Запись к врачу"
    registered = world.ticket(first)["deadlines"]["registered_at"]
    lines = body_lines(reply.message)
    assert lines[0] == "Здравствуйте, Иванов Пётр Алексеевич!"
    assert lines[2].startswith(f"Ваше обращение {first} от ")
    assert lines[2].endswith(" «Запись к врачу» рассмотрено.")
    assert registered[:4] in lines[2]
    assert lines[3:] == ["", "Ответ на обращение:", "Запись к кардиологу открыта: 25.11 в 10:00, каб. 214.",
                         "Возьмите полис ОМС.", "", "Статус обращения: Выполнено", "", "--", "ГБУЗС «МИАЦ»"]
    assert attachments(reply.message) == []
    events = [(e["actor"], e["action"], e["from"], e["to"]) for e in world.ticket(first)["events"]]
    assert ("ivanova", "status", "Новое", "На рассмотрении") in events
    assert ("ivanova", "status", "На рассмотрении", "Выполнено") in events
    assert world.refused("ticket", "complete", first, "--as", "ivanova", "--answer", "ещё раз") == (
        "Статус уже «Выполнено»")

    # The second appeal: completed from `Новое` with a scan of the paper answer only.
    paper = world.tmp / "ответ на бумаге.pdf"
    paper.write_bytes(PAPER)
    before = len(world.smtp.messages)
    world.ok("ticket", "complete", second, "--as", "petrov", "--attach", str(paper))
    world.run_once()
    new = world.new_letters(before)
    [dep] = [m for m in new if m.rcpt_tos == [DEPARTMENT]]
    assert body_lines(dep.message) == [
        "Наименование учреждения: ГБУЗС «МИАЦ»",
        "Уникальный идентификатор учреждения: MIAC-92",
        f"Уникальный идентификатор обращения: {second}",
        "Статус обращения: Выполнено",
        "Копия ответа на бумажном носителе: ответ на бумаге.pdf (во вложении)",
    ]
    [reply] = [m for m in new if m.rcpt_tos == [APPLICANT]]
    assert "Копия ответа на бумажном носителе во вложении: ответ на бумаге.pdf" in body_lines(reply.message)
    for sent in (dep, reply):
        [(name, data)] = attachments(sent.message)
        assert name == "ответ на бумаге.pdf"
        assert hashlib.sha256(data).hexdigest() == hashlib.sha256(PAPER).hexdigest()
    statuses = [(e["from"], e["to"]) for e in world.ticket(second)["events"] if e["action"] == "status"]
    assert statuses == [("Новое", "На рассмотрении"), ("На рассмотрении", "Выполнено")]


def test_deadline_extension_once_with_a_letter_to_the_applicant(world):
    """APL-6: registration and answer deadlines are stored and shown; one extension with its
    reason, told to the applicant; a second one is refused."""
    world.send_appeal(form_letter(files=[]))
    world.run_once()
    [appeal] = world.tickets("--kind", "appeal")
    shown = world.ticket(appeal["id"])
    due = shown["deadlines"]["answer_due_at"]

    extend = ("ticket", "extend", appeal["id"], "--as", "ivanova")
    too_long = world.refused(*extend, "--days", "45", "--reason", "x")
    assert too_long == "Продлить можно на 1–30 дней, а не на 45"
    world.ok("ticket", "extend", appeal["id"], "--as", "ivanova", "--days", "20",
             "--reason", "нужен ответ страховой компании")
    again = world.refused(*extend, "--days", "5", "--reason", "ещё")
    assert "продлить можно один раз" in again
    world.run_once()

    d = world.ticket(appeal["id"])["deadlines"]
    assert d["extension_days"] == 20 and d["extension_reason"] == "нужен ответ страховой компании"
    assert d["answer_due_at"] > due
    [letter_] = [m for m in world.letters_to(APPLICANT) if "продлён" in m.message["Subject"]]
    text = letter_.message.get_content()
    assert "продлён на 20 дн." in text and "Причина продления: нужен ответ страховой компании" in text
    status, out, _ = world.run("tickets", "show", appeal["id"])
    assert status == 0 and "срок ответа:" in out and "продлён на 20 дн." in out


def test_bounced_department_email_is_marked_on_its_appeal(world):
    """Delivery ledger: a DSN for the department email marks it `bounced` on the appeal."""
    world.send_appeal(form_letter(files=[]))
    world.run_once()
    [appeal] = world.tickets("--kind", "appeal")
    [notice] = world.letters_to(DEPARTMENT)
    dsn = DSN.replace(b"MESSAGE-ID", notice.message["Message-ID"].encode())
    world.send_appeal(dsn)
    world.run_once()

    ledger = {o["purpose"]: o["status"] for o in world.ticket(appeal["id"])["outbox"]}
    assert ledger["department_new"] == "bounced"
    assert len(world.letters_to(DEPARTMENT)) == 1  # a bounce is never answered


def test_smtp_down_while_completing_delays_the_department_email_but_never_doubles_it(world):
    """Issue 3 point 5: SMTP is down when an appeal is completed: the status change is committed,
    the department email waits in the outbox, leaves when the server is back, and only once."""
    world.send_appeal(form_letter(files=[]))
    world.run_once()
    [appeal] = world.tickets("--kind", "appeal")
    world.smtp.stop()

    world.ok("ticket", "complete", appeal["id"], "--as", "ivanova", "--answer", "Запись открыта.")
    world.run_once()
    shown = world.ticket(appeal["id"])
    assert shown["status"] == "Выполнено"
    waiting = {o["purpose"]: (o["status"], o["attempts"]) for o in shown["outbox"]}
    assert waiting["department_done"] == ("pending", 0)
    assert waiting["answer"] == ("pending", 0)

    world.smtp.start()
    wait_due()
    world.run_once()
    world.run_once()
    done = [m for m in world.letters_to(DEPARTMENT) if "Статус обращения: Выполнено" in body_lines(m.message)]
    assert len(done) == 1
    assert len([m for m in world.letters_to(APPLICANT) if "Ответ на обращение" in m.message["Subject"]]) == 1
    ledger = {o["purpose"]: o["status"] for o in world.ticket(appeal["id"])["outbox"]}
    assert ledger == {"department_new": "sent", "ack": "sent", "department_done": "sent", "answer": "sent"}


DSN = b"""From: MAILER-DAEMON@mx.mos.ru (Mail Delivery System)
To: appeals@miac.test
Subject: Undelivered Mail Returned to Sender
Message-ID: <dsn-7@mx.mos.ru>
Auto-Submitted: auto-replied
MIME-Version: 1.0
Content-Type: multipart/report; report-type=delivery-status; boundary="B"

--B
Content-Type: text/plain

Your message could not be delivered.

--B
Content-Type: message/delivery-status

Reporting-MTA: dns; mx.mos.ru

Final-Recipient: rfc822; org-appeal@mos.ru
Action: failed
Status: 5.1.1

--B
Content-Type: text/rfc822-headers

From: appeals@miac.test
To: org-appeal@mos.ru
Subject: notice
Message-ID: MESSAGE-ID

--B--
"""
