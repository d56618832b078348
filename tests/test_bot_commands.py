"""The bot's commands are the CLI's operations (issue 4, BOT-3): what a staff member does with a
command or a button shows in `inboxdesk tickets show`, and the other way round."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from tests.bot_world import (
    IVANOV,
    STAFF_CHAT,
    bot_said,
    cards,
    daemon_running,
    one_card,
    public_id_of,
    until,
)
from tests.story import cli_json, letter

pytestmark = pytest.mark.filterwarnings("ignore::telegram.warnings.PTBDeprecationWarning")


def test_commands_do_what_the_cli_does(desk_config, dovecot, smtp_server, api):
    """Lists, search, take, assign, note, reply, status and priority menus, and the /phone
    dialogue: each shows in the CLI; a bad ID is refused in one line."""
    config = desk_config()
    dovecot.append(desk_config.help.address, letter(subject="Принтер не печатает талоны"))

    async def ask(user: dict[str, Any], text: str, count: int = 1) -> list[str]:
        mark = max((m.message_id for m in api.messages(STAFF_CHAT)), default=0)
        api.send(user, STAFF_CHAT, text)
        return await until(lambda: len(said := bot_said(api, STAFF_CHAT, mark)) >= count and said)

    def show(public_id: str) -> dict[str, Any]:
        return cli_json(config, "tickets", "show", public_id)

    async def story() -> None:
        async with daemon_running(config):
            public_id = public_id_of(await until(lambda: one_card(api)))
            assert "/take" in (await ask(IVANOV, "/help"))[0]
            assert public_id in (await ask(IVANOV, "/new"))[0]
            assert public_id in (await ask(IVANOV, "/find принтер"))[0]
            [refused] = await ask(IVANOV, "/take HD-2026-999999")
            assert refused.startswith("⛔") and "не найдена" in refused and "\n" not in refused
            assert "Взято" in (await ask(IVANOV, f"/take {public_id}"))[0]
            assert public_id in (await ask(IVANOV, "/mine"))[0]
            await ask(IVANOV, f"/note {public_id} Позвонил, ждём перезагрузки")
            await ask(IVANOV, f"/assign {public_id} petrova")
            ticket = await asyncio.to_thread(show, public_id)
            assert ticket["assignee"] == "petrova"
            assert any(m["direction"] == "note" and "перезагрузки" in m["body"] for m in ticket["messages"])

            await ask(IVANOV, f"/status {public_id}")
            status_card = api.messages(STAFF_CHAT)[-1]
            api.press(IVANOV, STAFF_CHAT, status_card.message_id, status_card.button("Обратная связь"))
            await until(lambda: show(public_id)["status"] == "Обратная связь")
            assert public_id in (await ask(IVANOV, "/list обратная связь"))[0]

            await ask(IVANOV, f"/priority {public_id}")
            prio_card = api.messages(STAFF_CHAT)[-1]
            api.press(IVANOV, STAFF_CHAT, prio_card.message_id, prio_card.button("1 Неотложный"))
            await until(lambda: "Блокирующий" in " ".join(t for t, _ in prio_card.buttons))
            impacts = [t for t, _ in prio_card.buttons if t != "« Назад"]
            assert impacts == ["Критический", "Блокирующий"]  # only what fits priority 1 (MAIL-6)
            api.press(IVANOV, STAFF_CHAT, prio_card.message_id, prio_card.button("Блокирующий"))
            await until(lambda: show(public_id)["impact"] == "Блокирующий")
            assert show(public_id)["priority"] == 1

            await ask(IVANOV, f"/reply {public_id} Перезагрузите, пожалуйста, принтер.")
            await until(lambda: any("Перезагрузите" in m.message.get_body(("plain",)).get_content()
                                    for m in smtp_server.messages))

            for answer in ("/phone", "Кузнецова Анна Викторовна", "+7 978 000-00-00", "-",
                           "Не работает сканер", "В регистратуре не сканируются полисы."):
                said = await ask(IVANOV, answer)
            assert "Зарегистрировано" in said[0]
            phoned = [t for t in cli_json(config, "tickets", "list") if t["subject"] == "Не работает сканер"]
            assert len(phoned) == 1
            await until(lambda: cards(api, phoned[0]["id"]))  # its card came like any new ticket's

    asyncio.run(story())
