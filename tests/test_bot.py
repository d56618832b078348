"""Stories of the staff bot (issue 4, points 1-5): the real daemon with its bot polling a Bot API
server in `tests/botapi.py`, mail from Dovecot, letters to aiosmtpd (see `tests/bot_world.py`).
"""

from __future__ import annotations

import asyncio
import logging
import time
from pathlib import Path
from typing import Any

import pytest

from inboxdesk.app import App
from inboxdesk.settings import load_settings
from tests.bot_world import (
    DEPARTMENT,
    IVANOV,
    PETROVA,
    SIDOROV,
    STAFF_CHAT,
    STRANGER,
    bot_said,
    cards,
    daemon_running,
    one_card,
    public_id_of,
    until,
)
from tests.botapi import ChatMessage
from tests.botapi_text import utf16_len
from tests.story import cli, cli_json, letter, message_id_of

# PTB itself touches the deprecated int form of RetryAfter.retry_after when it builds the error.
pytestmark = pytest.mark.filterwarnings("ignore::telegram.warnings.PTBDeprecationWarning")


# -- 1. a card, "take", a reply with a document ------------------------------------------------------

def test_card_take_and_reply_with_a_document(desk_config, db_url, dovecot, smtp_server, api):
    """An email becomes a card with buttons in the staff chat; "take" assigns it to the presser and
    the card is edited in place; a Telegram reply to the card with a document leaves as an email
    threaded to the request, with the document attached. On SQLite and on PostgreSQL."""
    config = desk_config(database_url=db_url)
    screenshot = b"\x89PNG\r\n\x1a\n screenshot of the print dialog"
    request = letter(subject="Не печатается рецепт", body="Принтер в кабинете 12 не печатает рецепты.\n",
                     files=[("экран.png", "image/png", screenshot)])
    dovecot.append(desk_config.help.address, request)

    async def story() -> None:
        async with daemon_running(config) as daemon:
            card = await until(lambda: one_card(api))
            public_id = public_id_of(card)
            shown = card.visible
            assert "Не печатается рецепт" in shown and "i.petrova@sev.gov.ru" in shown
            assert "Принтер в кабинете 12" in shown and "Новая" in shown
            labels = " ".join(text for text, _ in card.buttons)
            for label in ("Взять", "Ответить", "Статус", "Приоритет", "Эскалировать", "Файлы (1)"):
                assert label in labels
            assert "экран.png" in shown

            api.press(IVANOV, STAFF_CHAT, card.message_id, card.button("Файлы"))  # fetched from the card
            [sent] = await until(lambda: [m for m in api.messages(STAFF_CHAT) if m.document])
            assert sent.document == ("экран.png", screenshot) and sent.reply_to == card.message_id

            query = api.press(IVANOV, STAFF_CHAT, card.message_id, card.button("Взять"))
            await until(lambda: "Исполнитель: ivanov" in card.visible and "Рассматривается" in card.visible)
            assert len(cards(api)) == 1  # edited in place, not posted again
            assert api.answers(query)
            ticket = await asyncio.to_thread(cli_json, config, "tickets", "show", public_id)
            assert ticket["assignee"] == "ivanov" and ticket["status"] == "Рассматривается"

            # The CLI and the bot are one desk: a priority set in the CLI shows on the card.
            await asyncio.to_thread(cli_json, config, "ticket", "priority", public_id, "2", "--impact",
                                    "Большое", "--as", "petrova")
            daemon.wake_delivery()
            await until(lambda: "2 Высокий" in card.visible and "Большое" in card.visible)

            pdf = b"%PDF-1.4 instruction for the printer \x00\x01\x02"
            api.send(IVANOV, STAFF_CHAT, "Установите драйвер по инструкции во вложении.",
                     reply_to=card.message_id, document=("инструкция.pdf", "application/pdf", pdf))
            started = time.monotonic()
            [answer] = await until(lambda: [m for m in smtp_server.messages if "Установите драйвер"
                                            in m.message.get_body(("plain",)).get_content()])
            assert time.monotonic() - started < 5
            assert answer.rcpt_tos == ["i.petrova@sev.gov.ru"]
            assert f"[{public_id}]" in answer.message["Subject"]
            assert message_id_of(request) in answer.message["References"]
            assert "Установите драйвер" in answer.message.get_body(("plain",)).get_content()
            [attached] = list(answer.message.iter_attachments())
            assert attached.get_filename() == "инструкция.pdf"
            assert attached.get_content() == pdf
            assert any("Ответ отправлен" in t for t in bot_said(api, STAFF_CHAT))

    asyncio.run(story())


# -- 2. completing an appeal through the dialogue -------------------------------------------------------

def _department_lines(raw_body: str) -> list[str]:
    return [line for line in raw_body.splitlines() if line.strip()]


def test_appeal_completed_from_the_chat(desk_config, dovecot, smtp_server, api):
    """An appeal is taken and completed from its card: the bot asks for the answer, then the
    department's completion email and the applicant's answer carry what APL-5 asks for; a second
    appeal is completed with a paper answer's scan instead of text."""
    config = desk_config()
    citizen = "smirnov@mail.test"
    for subject in ("Запись к эндокринологу", "Справка для бассейна"):
        dovecot.append(desk_config.appeals.address, letter(
            sender=citizen, name="Смирнов Олег Петрович", to="appeals@miac.test", subject=subject,
            body="Прошу помочь.\n"))

    async def complete(card: ChatMessage, **answer: Any) -> str:
        public_id = public_id_of(card)
        api.press(IVANOV, STAFF_CHAT, card.message_id, card.button("Взять"))
        await until(lambda: "На рассмотрении" in card.visible)
        before = len(api.messages(STAFF_CHAT))
        api.press(IVANOV, STAFF_CHAT, card.message_id, card.button("Выполнить"))
        prompt = (await until(lambda: [m for m in api.messages(STAFF_CHAT)[before:]
                                       if "текст ответа" in m.visible]))[0]
        assert public_id in prompt.visible
        api.send(IVANOV, STAFF_CHAT, reply_to=prompt.message_id, **answer)
        await until(lambda: "Выполнено" in card.visible)
        return public_id

    def letters_to(address: str, public_id: str, status: str) -> list[Any]:
        return [m for m in smtp_server.messages
                if m.rcpt_tos == [address] and public_id in m.message["Subject"]
                and status in m.message.get_body(("plain",)).get_content()]

    async def story() -> None:
        async with daemon_running(config):
            found = await until(lambda: len(cards(api)) == 2 and cards(api))
            first, second = sorted(found, key=lambda c: c.message_id)
            assert "Выполнить" in " ".join(t for t, _ in first.buttons)
            assert "Приоритет" not in " ".join(t for t, _ in first.buttons)

            public_id = await complete(first, text="Вы записаны на 3 декабря, 10:00, каб. 204.")
            [done] = await until(lambda: letters_to(DEPARTMENT, public_id, "Статус обращения: Выполнено"))
            assert _department_lines(done.message.get_body(("plain",)).get_content()) == [
                "Наименование учреждения: ГБУЗС «МИАЦ»",
                "Уникальный идентификатор учреждения: MIAC-92",
                f"Уникальный идентификатор обращения: {public_id}",
                "Статус обращения: Выполнено",
                "Ответ на обращение: Вы записаны на 3 декабря, 10:00, каб. 204.",
            ]
            [answer] = await until(lambda: letters_to(citizen, public_id, "Вы записаны на 3 декабря"))
            assert "Статус обращения: Выполнено" in answer.message.get_body(("plain",)).get_content()

            scan = b"%PDF-1.4 paper answer scan"
            public_id = await complete(second, document=("ответ.pdf", "application/pdf", scan))
            [done] = await until(lambda: letters_to(DEPARTMENT, public_id, "Статус обращения: Выполнено"))
            body = _department_lines(done.message.get_body(("plain",)).get_content())
            assert body[:4] == ["Наименование учреждения: ГБУЗС «МИАЦ»",
                                "Уникальный идентификатор учреждения: MIAC-92",
                                f"Уникальный идентификатор обращения: {public_id}",
                                "Статус обращения: Выполнено"]
            assert "ответ.pdf" in body[4]
            [copy] = list(done.message.iter_attachments())
            assert copy.get_filename() == "ответ.pdf" and copy.get_content() == scan
            [answer] = await until(lambda: letters_to(citizen, public_id, "Статус обращения: Выполнено"))
            assert [a.get_content() for a in answer.message.iter_attachments()] == [scan]

    asyncio.run(story())


# -- 3. strangers and roles ----------------------------------------------------------------------------------

def test_strangers_see_nothing_and_change_nothing(desk_config, dovecot, smtp_server, api, caplog):
    """A stranger's /list, /show, button press and reply are refused without data, logged and
    audited; a forged or stale button changes nothing; an operator cannot list staff (admin only),
    an engineer cannot escalate, each told why in one line."""
    config = desk_config()
    dovecot.append(desk_config.help.address, letter(subject="Секретная тема пациента"))
    caplog.set_level(logging.INFO)

    async def story() -> None:
        async with daemon_running(config):
            card = await until(lambda: one_card(api))
            public_id = public_id_of(card)
            private = STRANGER["id"]
            api.send(STRANGER, private, "/list")
            api.send(STRANGER, private, f"/show {public_id}")
            api.send(STRANGER, STAFF_CHAT, f"/show {public_id}")
            query = api.press(STRANGER, STAFF_CHAT, card.message_id, card.button("Взять"))
            api.send(STRANGER, STAFF_CHAT, "Вот вам ответ", reply_to=card.message_id)
            await until(lambda: len(bot_said(api, private)) == 2 and api.answers(query))
            refusals = bot_said(api, private) + [m.visible for m in api.messages(STAFF_CHAT)
                                                  if m.reply_to and not m.buttons]
            assert refusals and all("только для сотрудников" in t for t in refusals)
            assert all(public_id not in t and "Секретная" not in t for t in refusals)
            assert "только для сотрудников" in api.answers(query)[0].params["text"]

            # Forged data (another ticket number under a copied signature) and a stale button.
            escalate_before = card.button("Эскалировать")
            action, _ticket, *rest = card.button("Взять").split(":")
            forged = api.press(IVANOV, STAFF_CHAT, card.message_id, ":".join([action, "999", *rest]))
            await until(lambda: api.answers(forged))
            assert "недействительна" in api.answers(forged)[0].params["text"]
            api.press(IVANOV, STAFF_CHAT, card.message_id, card.button("Взять"))
            await until(lambda: "Исполнитель: ivanov" in card.visible)
            stale = api.press(IVANOV, STAFF_CHAT, card.message_id, escalate_before)
            await until(lambda: api.answers(stale))
            assert "устарела" in api.answers(stale)[0].params["text"]

            # Roles: the admin's /staff, the operator refused; the engineer may not escalate.
            mark = max((m.message_id for m in api.messages(STAFF_CHAT)), default=0)
            api.send(IVANOV, STAFF_CHAT, "/staff")
            await until(lambda: bot_said(api, STAFF_CHAT, mark))
            [refused] = bot_said(api, STAFF_CHAT, mark)
            assert refused.startswith("⛔") and "администратор" in refused and "\n" not in refused
            api.send(PETROVA, STAFF_CHAT, "/staff")
            await until(lambda: any("sidorov" in t for t in bot_said(api, STAFF_CHAT, mark)))
            no_escalation = api.press(SIDOROV, STAFF_CHAT, card.message_id, card.button("Эскалировать"))
            await until(lambda: api.answers(no_escalation))
            assert api.answers(no_escalation)[0].params["text"].startswith(
                "⛔ Эскалировать на вторую линию может только оператор")

            ticket = await asyncio.to_thread(cli_json, config, "tickets", "show", public_id)
            assert ticket["line"] == 1 and ticket["assignee"] == "ivanov"
            assert not [e for e in ticket["events"] if e["actor"].startswith("telegram:")]
            assert not [m for m in smtp_server.messages  # the stranger's "answer" never left
                        if "Вот вам ответ" in m.message.get_body(("plain",)).get_content()]
            assert await asyncio.to_thread(_refusals_audited, config) == 5

    asyncio.run(story())
    assert len([r for r in caplog.records if "refused user 6660" in r.getMessage()]) == 5


def test_the_card_hands_an_escalated_ticket_back_to_the_first_line(desk_config, dovecot, smtp_server, api):
    """MAIL-10, 003 §2.7: once escalated, the card offers the second line a way back; the operator
    may not use it (one line why), the engineer does, and the card offers escalation again."""
    config = desk_config()
    dovecot.append(desk_config.help.address, letter(subject="Не ставится подпись"))

    async def story() -> None:
        async with daemon_running(config):
            card = await until(lambda: one_card(api))
            public_id = public_id_of(card)
            api.press(IVANOV, STAFF_CHAT, card.message_id, card.button("Эскалировать"))
            await until(lambda: "На 1-ю линию" in " ".join(t for t, _ in card.buttons))
            refused = api.press(IVANOV, STAFF_CHAT, card.message_id, card.button("На 1-ю линию"))
            await until(lambda: api.answers(refused))
            assert api.answers(refused)[0].params["text"] == (
                "⛔ Возвращать на первую линию может только инженер (2-я линия) или администратор; "
                "ваша роль: оператор (1-я линия)")
            back = api.press(SIDOROV, STAFF_CHAT, card.message_id, card.button("На 1-ю линию"))
            await until(lambda: api.answers(back) and "Эскалировать" in " ".join(t for t, _ in card.buttons))
            assert api.answers(back)[0].params["text"] == "Возвращено на первую линию"
            ticket = await asyncio.to_thread(cli_json, config, "tickets", "show", public_id)
            assert ticket["line"] == 1
            assert [(e["actor"], e["action"]) for e in ticket["events"] if "escalated" in e["action"]] == [
                ("ivanov", "escalated"), ("sidorov", "deescalated")]

    asyncio.run(story())


def _refusals_audited(config: Path) -> int:
    from sqlalchemy import func, select

    from storage.models import AuditEvent

    app = App(load_settings(config))
    try:
        with app.db.sessions() as s:
            return s.scalar(select(func.count()).select_from(AuditEvent).where(
                AuditEvent.action == "bot_refused", AuditEvent.actor == "telegram:6660")) or 0
    finally:
        app.close()


# -- 4. escaping and long texts ---------------------------------------------------------------

def test_markup_in_subjects_shows_literally_and_long_bodies_fit(desk_config, dovecot, api):
    """A subject with `<b>` and `&` is shown as typed (Telegram would refuse broken HTML with 400);
    a 20,000-character body is trimmed on the card and split in /show, every message accepted."""
    config = desk_config()
    subject = 'Ошибка <b>жирная</b> & "кавычки" <script>alert(1)</script>'
    paragraph = "Строка длинного письма с подробностями ошибки в МИС, повторяется много раз. "
    body = "\n".join(f"{i:04d} {paragraph}" for i in range(270))[:20000]
    assert len(body) == 20000
    dovecot.append(desk_config.help.address, letter(subject=subject, body=body))

    async def story() -> None:
        async with daemon_running(config):
            card = await until(lambda: one_card(api))
            assert subject in card.visible
            assert "&lt;b&gt;жирная&lt;/b&gt; &amp;" in card.text
            assert utf16_len(card.visible) <= 4096 and "0000 Строка" in card.visible
            mark = card.message_id
            api.send(IVANOV, STAFF_CHAT, f"/show {public_id_of(card)}")
            shown = await until(lambda: len(said := bot_said(api, STAFF_CHAT, mark)) >= 3 and said)
            assert all(utf16_len(t) <= 4096 for t in shown)
            assert subject in shown[0]
        sends = api.calls_of("sendMessage")
        assert len(sends) == len(api.messages(STAFF_CHAT))  # every call was accepted, none refused

    asyncio.run(story())


# -- 5. the Bot API failing -------------------------------------------------------------------

def test_bot_api_errors_lose_nothing(desk_config, dovecot, smtp_server, api, caplog):
    """429 with retry_after, 500s and a hanging request: cards wait in the outbox and arrive once
    each; the long poll survives errors too, and mail keeps being turned into tickets meanwhile."""
    config = desk_config()
    caplog.set_level(logging.INFO)
    api.fail("sendMessage", "429", retry_after=1)
    api.fail("sendMessage", "500", times=2)
    api.fail("sendMessage", "hang")
    api.fail("getUpdates", "500", times=2)
    dovecot.append(desk_config.help.address, letter(subject="Первая во время сбоя"))

    async def story() -> None:
        async with daemon_running(config):
            await until(lambda: len(cli_json(config, "tickets", "list")) == 1)
            dovecot.append(desk_config.help.address, letter(subject="Вторая во время сбоя"))
            await until(lambda: len(cli_json(config, "tickets", "list")) == 2)  # mail goes on
            await until(lambda: len(cards(api)) == 2, timeout=30)
            await asyncio.sleep(0.5)
            card = cards(api, "Вторая")[0]
            api.press(IVANOV, STAFF_CHAT, card.message_id, card.button("Взять"))  # polling works
            await until(lambda: "Исполнитель: ivanov" in card.visible)
            await until(lambda: len(smtp_server.messages) == 3)
            # Every card row ends up sent (the edit after "Взять" may still be on its way).
            await until(lambda: {r["status"] for r in cli_json(config, "outbox", "list")
                                 if r["channel"] == "telegram"} == {"sent"})
        assert len(cards(api, "Первая")) == 1 and len(cards(api, "Вторая")) == 1
        rows = [r for r in cli_json(config, "outbox", "list") if r["channel"] == "telegram"]
        assert rows and all(r["status"] == "sent" for r in rows)
        warnings = [r.getMessage() for r in caplog.records if r.getMessage().startswith("telegram:")]
        assert any("flood control" in w for w in warnings)
        assert any("Internal Server Error" in w for w in warnings)
        assert any("polling" in w for w in warnings)

    asyncio.run(story())


def test_a_chat_that_does_not_exist_fails_the_row_not_the_daemon(desk_config, dovecot, smtp_server, api):
    """A permanent refusal (400 chat not found) marks the card's row failed, with the reason; the
    daemon goes on receiving mail and acknowledging it."""
    api.unknown_chats = frozenset({STAFF_CHAT})
    config = desk_config()
    dovecot.append(desk_config.help.address, letter(subject="В никуда"))

    async def story() -> None:
        async with daemon_running(config):
            row = await until(lambda: [r for r in cli_json(config, "outbox", "list")
                                       if r["channel"] == "telegram" and r["status"] == "failed"])
            assert "chat not found" in row[0]["last_error"].lower()
            dovecot.append(desk_config.help.address, letter(subject="Вторая"))
            await until(lambda: len(smtp_server.messages) == 2)

    asyncio.run(story())


def test_without_a_token_the_daemon_runs_without_the_bot(desk_config, dovecot, smtp_server, api, caplog,
                                                         monkeypatch):
    """No token in the environment: one line says the bot is off, mail is handled as always, and
    the cards wait in the outbox for the day the bot is switched on."""
    config = desk_config()
    monkeypatch.delenv("INBOXDESK_TEST_BOT_TOKEN")
    caplog.set_level(logging.INFO)
    dovecot.append(desk_config.help.address, letter(subject="Без бота"))

    async def story() -> None:
        async with daemon_running(config):
            await until(lambda: smtp_server.messages)

    asyncio.run(story())
    assert [r.getMessage() for r in caplog.records].count(
        "Telegram bot off: no token ($INBOXDESK_TEST_BOT_TOKEN is empty)") == 1
    assert not api.calls
    [row] = [r for r in cli_json(config, "outbox", "list") if r["channel"] == "telegram"]
    assert row["status"] == "pending"


def test_run_once_sends_the_cards_too(desk_config, dovecot, api):
    """`inboxdesk run --once` (cron style) delivers the cards along with the letters."""
    config = desk_config()
    dovecot.append(desk_config.help.address, letter(subject="Разовый запуск"))
    status, output = cli(config, "run", "--once")
    assert status == 0, output
    assert "Разовый запуск" in cards(api)[0].visible
    assert not api.calls_of("getUpdates")  # no polling in a one-off run
