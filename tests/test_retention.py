"""Issue 13: keeping personal data lawfully. With a controlled clock, retention deletes the raw
letters of filtered mail after `filtered_raw_days`, the raw letters and sent letters of finished
records after `closed_raw_days`, their files after `closed_files_days`, and anonymises finished
records after `anonymise_days`: exactly what is due, nothing else (an open record, a reopened one,
another person's, a letter still to be sent). Each step is audited and counted in `status`.
SQLite and PostgreSQL."""

from __future__ import annotations

import contextlib
import io
import json
from datetime import timedelta
from email import message_from_bytes, policy

import pytest
from sqlalchemy import MetaData, select

from inboxdesk.cli import build_parser
from inboxdesk.retention import REMOVED, REMOVED_TEXT
from inboxdesk.settings import SettingsError
from storage.models import AuditEvent, InboundMessage, OutboxItem
from tests.clock_world import APPEALS, World, msk
from tests.story import cli, cli_json, letter

RETENTION = """
[retention]
filtered_raw_days = 30
closed_raw_days = 60
closed_files_days = 90
anonymise_days = 365
"""
DAY = timedelta(days=1)
T0 = msk(2026, 11, 16, 10)
SCAN = b"%PDF-1.4 scan of the error window \x00\xff" * 40

FORM_BODY = """Фамилия: Кузнецов
Имя: Пётр
Отчество: Алексеевич
Адрес: г. Севастополь, ул. Ленина, д. 1, кв. 2
Адрес электронной почты: p.kuznetsov@example.ru
Тема вопроса: Запись к врачу
Содержание обращения: Не могу записаться к кардиологу через портал.
Файл: нет
"""
# What identifies the applicant of the appeal, anywhere it could have been copied to.
APPLICANT = ("Кузнецов", "p.kuznetsov@example.ru", "Ленина")


@pytest.fixture
def world(tmp_path, db_url, smtp_server):
    w = World(tmp_path, db_url, smtp_server, extra=RETENTION)
    yield w
    w.close()


def raw_of(world: World, **where: object) -> list[bytes]:
    with world.app.db.sessions() as s:
        return list(s.scalars(select(InboundMessage.raw).filter_by(**where).order_by(InboundMessage.id)))


def payloads(world: World, public_id: str) -> list[bytes]:
    with world.app.db.sessions() as s:
        ticket = world.app.desk.ticket_by_public_id(s, public_id)
        return list(s.scalars(select(OutboxItem.payload).where(
            OutboxItem.ticket_id == ticket.id, OutboxItem.channel == "email").order_by(OutboxItem.id)))


def actions(world: World, public_id: str) -> list[str]:
    return [e["action"] for e in world.ticket(public_id)["events"] if e["actor"] == "retention"]


def at_clock(world: World, *args: str) -> str:
    """`inboxdesk ARGS` on the world's App, so at its clock; the standard output."""
    parsed = build_parser().parse_args(list(args))
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        parsed.func(world.app, parsed)
    return out.getvalue()


def due(world: World) -> dict[str, int]:
    return json.loads(at_clock(world, "status", "--json"))["retention"]["due"]


def test_filtered_mail_loses_its_raw_letter_after_the_days_and_nothing_else_does(world):
    """A letter from a foreign domain (MAIL-1, filtered) and a request arrive on day 0. On day 29
    nothing is deleted; on day 30 the filtered letter's raw bytes are gone (its record of arrival
    stays: sender, subject, disposition), the request's are not."""
    world.at(T0).ingest(letter(sender="promo@shop.example", subject="Скидки на всё"))
    world.ingest(letter(subject="Не печатается рецепт"))
    [spam, request] = raw_of(world)
    assert due(world)["filtered_raw"] == 0

    world.at(T0 + 30 * DAY - timedelta(minutes=1)).run_once()
    assert raw_of(world) == [spam, request]

    world.at(T0 + 30 * DAY + timedelta(minutes=1))
    assert due(world)["filtered_raw"] == 1
    world.run_once()
    assert raw_of(world) == [b"", request]
    [filtered, ticket] = sorted(cli_json(world.config, "inbound", "list", "--json"), key=lambda r: r["id"])
    assert (filtered["disposition"], filtered["from"], filtered["subject"]) == (
        "filtered", "promo@shop.example", "Скидки на всё")
    assert filtered["raw_deleted_at"] is not None and ticket["raw_deleted_at"] is None
    with world.app.db.sessions() as s:
        [event] = s.scalars(select(AuditEvent).where(AuditEvent.action == "filtered_raw_deleted"))
        assert (event.actor, event.detail) == ("retention", {"inbound_ids": [filtered["id"]]})
    assert due(world)["filtered_raw"] == 0
    world.run_once()  # a second run finds nothing more
    with world.app.db.sessions() as s:
        assert len(s.scalars(select(AuditEvent).where(AuditEvent.actor == "retention")).all()) == 1


def test_a_finished_record_loses_raw_letters_then_files_and_an_open_or_reopened_one_keeps_them(world):
    """Three requests on day 0, one with a scan. A is resolved on day 1 and closed by the desk on
    day 10 (no answer for 5 working days); B stays open; C is resolved on day 1 and reopened by its
    sender's reply on day 3 (MAIL-5). The days count from A's last status change: on day 70 only
    A's raw letters in and its sent letters out are emptied (its text and the scan stay); on day
    100 A's scan goes too. B and C keep everything."""
    scan = ("ошибка.pdf", "application/pdf", SCAN)
    world.at(T0).ingest(letter(subject="A: ошибка при печати", files=[scan]))
    world.ingest(letter(sender="b.orlova@sev.gov.ru", name="Орлова Б.", subject="B: нет доступа"))
    world.ingest(letter(sender="c.popov@sev.gov.ru", name="Попов В.", subject="C: медленно работает"))
    a, b, c = (t["id"] for t in sorted(world.tickets(), key=lambda t: t["id"]))
    world.run_once()
    world.at(T0 + DAY)
    for public_id in (a, c):
        world.act(public_id, "change_status", "Решена", answer_text="Исправлено, проверьте.")
    world.run_once()
    resolution = [m.message for m in world.smtp.messages if "c.popov@sev.gov.ru" in m.rcpt_tos][-1]
    world.at(T0 + 3 * DAY).ingest(letter(sender="c.popov@sev.gov.ru", name="Попов В.",
                                         subject="Re: " + resolution["Subject"], body="Всё ещё медленно.",
                                         in_reply_to=resolution["Message-ID"]))
    assert world.ticket(c)["status"] == "Новая"  # reopened; nobody owned it
    world.at(T0 + 10 * DAY).run_once()
    assert world.ticket(a)["status"] == "Закрыта"
    kept = {public_id: (raw_of(world, ticket_id=world.record(public_id).id), payloads(world, public_id))
            for public_id in (a, b, c)}
    assert all(kept[a]) and all(kept[a][1])

    world.at(T0 + 70 * DAY - timedelta(minutes=1)).run_once()
    assert {p: (raw_of(world, ticket_id=world.record(p).id), payloads(world, p)) for p in kept} == kept

    world.at(T0 + 70 * DAY + timedelta(minutes=1))
    assert due(world) == {"filtered_raw": 0, "closed_raw": 1, "closed_files": 0, "anonymised": 0}
    world.run_once()
    assert raw_of(world, ticket_id=world.record(a).id) == [b""]
    assert set(payloads(world, a)) == {b""}
    for p in (b, c):
        assert (raw_of(world, ticket_id=world.record(p).id), payloads(world, p)) == kept[p]
    shown = world.ticket(a)
    assert "ошибка" in shown["subject"] and shown["messages"][0]["body"].startswith("Добрый день!")
    [scan] = shown["messages"][0]["attachments"]
    assert (scan["stored"], scan["deleted_at"]) == (True, None)
    assert actions(world, a) == ["raw_deleted"]
    assert [e["detail"] for e in shown["events"] if e["action"] == "raw_deleted"] == [
        {"letters_in": 1, "letters_out": len(kept[a][1])}]

    world.at(T0 + 100 * DAY + timedelta(minutes=1)).run_once()
    [scan] = world.ticket(a)["messages"][0]["attachments"]
    assert (scan["filename"], scan["size"], scan["stored"]) == ("ошибка.pdf", len(SCAN), False)
    assert scan["deleted_at"] is not None
    assert actions(world, a) == ["raw_deleted", "files_deleted"]
    assert actions(world, b) == actions(world, c) == []


def test_anonymising_a_finished_appeal_leaves_its_shape_and_nothing_of_the_applicant(world):
    """An appeal from a web form (APL-1) is answered on day 2 (APL-5: letters to the applicant and
    to the department). Another person's request, finished later, is not yet due. A year and a
    day after the answer, the appeal keeps its number, kind, status, dates and topic, and nothing
    anywhere in the database names the applicant: not the record, its letters in and out, its
    history, nor the raw bytes. The subject-access export finds nothing about them any more."""
    world.at(T0).ingest(letter(sender="noreply@gb1.example", name="Форма обратной связи", to=APPEALS,
                               subject="Обращение с сайта: Запись к врачу", body=FORM_BODY),
                        mailbox="appeals")
    appeal = world.only_ticket("appeal")
    world.act(appeal, "note", "Звонил Кузнецов, просил ускорить")
    world.at(T0 + 2 * DAY).act(appeal, "change_status", "Выполнено",
                               answer_text="Уважаемый Пётр Алексеевич! Вы записаны на 10.12.")
    world.run_once()
    world.at(T0 + 100 * DAY).ingest(letter(subject="Не открывается расписание"))
    other = world.only_ticket("ticket")
    world.act(other, "change_status", "Решена", answer_text="Готово.")
    world.run_once()
    export = json.loads(at_clock(world, "export-data", "--requester", "p.kuznetsov@example.ru"))
    assert len(export["records"]) == 1 and export["letters_to_them"]
    assert all(name in dump(world) for name in APPLICANT)

    world.at(T0 + 368 * DAY)
    assert due(world)["anonymised"] == 1
    world.run_once()
    shown = world.ticket(appeal)
    assert (shown["id"], shown["kind"], shown["status"]) == (appeal, "appeal", "Выполнено")
    assert (shown["requester_email"], shown["requester_name"]) == ("", "")
    assert shown["fields"]["Тема вопроса"] == "Запись к врачу"
    assert shown["fields"]["Фамилия"] == shown["fields"]["Адрес"] == REMOVED
    assert shown["anonymised_at"] is not None
    by_direction = {d: [m for m in shown["messages"] if m["direction"] == d] for d in ("in", "note", "out")}
    [into], [note], out = by_direction.values()
    assert into["body"] == REMOVED_TEXT and into["from"] == ""
    assert note["body"] == f"Звонил {REMOVED}, просил ускорить"
    department = [m["body"] for m in out if m["to"] == ["org-appeal@mos.ru"]]
    assert len(department) == 2  # registered, done (APL-5)
    registered, answered = department
    assert f"Фамилия: {REMOVED}\nИмя: {REMOVED}" in registered
    assert "Тема вопроса: Запись к врачу" in registered
    assert f"Ответ на обращение: Уважаемый {REMOVED} {REMOVED}! Вы записаны на 10.12." in answered
    assert {m["body"] for m in out if m["to"] != ["org-appeal@mos.ru"]} == {REMOVED_TEXT}
    assert actions(world, appeal)[-1] == "anonymised"
    everything = dump(world)
    assert [name for name in APPLICANT if name in everything] == []
    # The other requester, whose record finished 98 days later, is all there.
    assert "Петрова Ирина Сергеевна" in everything and "i.petrova@sev.gov.ru" in everything
    export = json.loads(at_clock(world, "export-data", "--requester", "p.kuznetsov@example.ru"))
    assert (export["records"], export["received_letters"], export["letters_to_them"]) == ([], [], [])
    assert due(world)["anonymised"] == 0


def test_a_letter_still_to_be_sent_holds_anonymisation_back(world):
    """A closed request whose acknowledgement is still in the outbox (the mail server was away for
    a year, say) is anonymised only after the letter has gone: anonymising it first would send it
    to nobody, or keep it forever."""
    world.at(T0).ingest(letter())
    public_id = world.only_ticket()
    world.act(public_id, "change_status", "Закрыта")
    world.at(T0 + 367 * DAY)
    assert world.app.retention.run(world.clock()).anonymised == 0  # the acknowledgement is pending
    assert world.ticket(public_id)["requester_email"] == "i.petrova@sev.gov.ru"
    world.run_once()  # retention, then delivery: the letters leave
    assert world.ticket(public_id)["requester_email"] == "i.petrova@sev.gov.ru"
    world.run_once()
    assert world.ticket(public_id)["requester_email"] == ""


def test_status_shows_what_retention_keeps_and_what_is_due(world):
    world.at(T0).ingest(letter(sender="promo@shop.example", subject="Скидки"))
    world.at(T0 + 31 * DAY)
    out = at_clock(world, "status")
    assert ("хранение: исходные письма отфильтрованной почты через 30 дн. (сейчас к выполнению: 1 писем); "
            "исходные письма завершённых записей через 60 дн.") in out
    assert at_clock(world, "retention", "--dry-run") == (
        "к выполнению: исходных писем отфильтрованной почты 1; записей: без исходных писем 0, "
        "без вложений 0, обезличено 0\n")
    assert at_clock(world, "retention") == (
        "выполнено: исходных писем отфильтрованной почты 1; записей: без исходных писем 0, "
        "без вложений 0, обезличено 0\n")
    assert "последний раз" in at_clock(world, "status")


def test_settings_refuse_anonymising_inside_the_reopen_window(tmp_path, db_url, smtp_server):
    """MAIL-5 lets a sender reopen a finished ticket for `desk.reopen_days`; a record anonymised
    inside that window would lose the reply. Zero days is no retention period either."""
    with pytest.raises(SettingsError):
        World(tmp_path, db_url, smtp_server, desk="reopen_days = 14",
              extra="[retention]\nanonymise_days = 10\nclosed_raw_days = 0\n")
    status, out = cli(tmp_path / "settings.toml", "check-config")
    assert status == 1
    assert ("ПРОБЛЕМА: retention.closed_raw_days: expected a number of days of at least 1, got 0" in out)
    assert ("ПРОБЛЕМА: retention.anonymise_days: 10 is within desk.reopen_days (14): a sender's reply "
            "could reopen a record that no longer knows them") in out


def dump(world: World) -> str:
    """Every value of every row of every table as text; bytes also as the email they may hold
    (headers and text parts decoded), so an encoded name is found too."""
    meta = MetaData()
    meta.reflect(world.app.db.engine)
    parts = []
    with world.app.db.engine.connect() as conn:
        for table in meta.sorted_tables:
            for row in conn.execute(table.select()):
                for value in row:
                    if not isinstance(value, bytes | memoryview):
                        parts.append(str(value))
                        continue
                    raw = bytes(value)
                    parts.append(raw.decode("utf-8", "replace"))
                    message = message_from_bytes(raw, policy=policy.default)
                    parts += [f"{k}: {v}" for k, v in message.items()]
                    parts += [p.get_content() for p in message.walk() if p.get_content_maintype() == "text"]
    return "\n".join(parts)
