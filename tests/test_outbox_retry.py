"""Issue 9, letters that failed: a relay that answered 5xx for a while left acknowledgements
`failed` for good. An admin sends them again (`outbox retry`), each retry audited; others may not."""

from __future__ import annotations

import asyncio

import pytest

from tests.bot_world import IVANOV, PETROVA, STAFF_CHAT, bot_said, daemon_running, until
from tests.desk_world import World
from tests.story import cli_json, letter

ADMIN = '\n[[staff]]\nname = "sidorova"\nrole = "admin"\n'


@pytest.fixture
def world(tmp_path, db_url, dovecot, smtp_server, monkeypatch) -> World:
    world = World(tmp_path, db_url, dovecot, smtp_server, monkeypatch)
    world.configure(ADMIN)
    return world


def test_failed_letters_go_out_again_when_an_admin_says_so(world, smtp_server):
    smtp_server.fail_next(2, "permfail")  # the relay refuses for a while: 550
    for n in range(3):
        world.send_help(letter(sender=f"user{n}@sev.gov.ru", subject=f"Заявка {n}"))
    world.run_once()
    letters = world.ok("outbox", "list")
    assert [o["status"] for o in letters] == ["failed", "failed", "sent"]
    assert "550" in letters[0]["last_error"]

    assert world.refused("outbox", "retry", "--failed", "--as", "ivanova") == (
        "Отправлять письма повторно может только администратор; ваша роль: оператор (1-я линия)")
    assert world.refused("outbox", "retry", "3", "--as", "sidorova").startswith(
        "Повторить можно только неотправленные письма; не такие: #3 (sent)")
    status, out, _ = world.run("outbox", "retry", "--failed", "--as", "sidorova")
    assert (status, out) == (0, "снова в очереди писем: 2 (#1, #2)\n")

    world.run_once()
    assert [o["status"] for o in world.ok("outbox", "list")] == ["sent", "sent", "sent"]
    assert sorted(m.rcpt_tos[0] for m in smtp_server.messages) == [f"user{n}@sev.gov.ru" for n in range(3)]
    ticket = world.tickets()[0]["id"]
    [retry] = [e for e in world.ticket(ticket)["events"] if e["action"] == "letter_retry"]
    assert (retry["actor"], retry["from"], retry["to"]) == ("sidorova", "failed", "pending")
    assert "550" in retry["detail"]["last_error"]


def test_admins_see_failed_letters_in_the_bot_and_send_them_again(desk_config, dovecot, smtp_server, api):
    """BOT-3, BOT-1: /failed shows an admin each failed letter with a button; the press sends it
    again (audited); an operator's /failed is refused."""
    config = desk_config()
    smtp_server.fail_next(1, "permfail")
    dovecot.append(desk_config.help.address, letter(subject="Заявка, чьё письмо не ушло"))

    async def story() -> None:
        async with daemon_running(config):
            await until(lambda: [o["status"] for o in cli_json(config, "outbox", "list")
                                 if o["channel"] == "email"] == ["failed"])
            mark = max((m.message_id for m in api.messages(STAFF_CHAT)), default=0)
            api.send(IVANOV, STAFF_CHAT, "/failed")
            await until(lambda: bot_said(api, STAFF_CHAT, mark))
            assert bot_said(api, STAFF_CHAT, mark)[0].startswith("⛔")
            mark = max(m.message_id for m in api.messages(STAFF_CHAT))
            api.send(PETROVA, STAFF_CHAT, "/failed")
            await until(lambda: [m for m in api.messages(STAFF_CHAT) if m.message_id > mark and m.buttons])
            [shown] = [m for m in api.messages(STAFF_CHAT) if m.message_id > mark and m.buttons]
            assert "#1 ack" in shown.visible and "550" in shown.visible
            query = api.press(PETROVA, STAFF_CHAT, shown.message_id, shown.button("Отправить снова"))
            await until(lambda: api.answers(query))
            assert "снова в очереди" in api.answers(query)[0].params["text"]
            await until(lambda: len(smtp_server.messages) == 1)
        ticket = cli_json(config, "tickets", "list")[0]["id"]
        events = cli_json(config, "tickets", "show", ticket)["events"]
        assert [(e["actor"], e["action"]) for e in events if e["action"] == "letter_retry"] == [
            ("petrova", "letter_retry")]

    asyncio.run(story())
