"""Issue 17, nothing hidden from staff. Filtered mail reaches the staff chat once a working day
with a button to read each letter and one to take it in as a request (first line; audited);
`/filtered` shows the last day on demand. A letter to the sender that failed or came back shows
on the record's card. `/show` lists the record's letters with their delivery state.
The bot runs against the Bot API server of tests/botapi.py; mail is real (Dovecot, aiosmtpd)."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

import pytest

from inboxdesk.digest import DIGEST, queue_daily_digest
from tests.bot_world import (
    DIGEST_HEAD,
    IVANOV,
    SIDOROV,
    STAFF_CHAT,
    bot_said,
    cards,
    daemon_running,
    one_card,
    public_id_of,
    until,
)
from tests.clock_world import MSK, World, msk
from tests.story import cli_json, letter

PROMO = "promo@shop.example"
WORKING_TODAY = """
[worktime]
day_start = "00:00"
day_end = "23:59"
weekdays = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
extra_work_days = ["{today}"]
"""


def digests(api) -> list:
    return [m for m in api.messages(STAFF_CHAT) if m.text.startswith(DIGEST_HEAD)]


def test_the_daily_digest_lets_the_first_line_take_a_wrongly_filtered_letter_in(desk_config, dovecot,
                                                                              smtp_server, api):
    config = desk_config()
    today = datetime.now(MSK).date().isoformat()  # a working day all day long, whatever day it is
    config.write_text(config.read_text(encoding="utf-8") + WORKING_TODAY.format(today=today),
                      encoding="utf-8")
    dovecot.append(desk_config.help.address, letter(sender=PROMO, name="Магазин", subject="Скидки до 90%"))
    dovecot.append(desk_config.help.address, letter(
        sender="glavvrach@gb7.example", name="Главврач ГБ №7", subject="Не работает запись к врачу",
        body="Здравствуйте! С утра не работает запись к врачу.\nЛогин: gb7_reg, тел. 89780001122"))

    async def story() -> None:
        async with daemon_running(config) as daemon:
            await until(lambda: len(cli_json(config, "inbound", "list")) == 2)
            assert cli_json(config, "tickets", "list") == []  # both from outside the allowed domains
            now = datetime.now(UTC)
            assert await asyncio.to_thread(queue_daily_digest, daemon.app.db, daemon.app.desk, now)
            assert not await asyncio.to_thread(queue_daily_digest, daemon.app.db, daemon.app.desk, now)
            daemon.wake_delivery()
            [digest] = await until(lambda: digests(api))
            assert "Отфильтрованная почта" in digest.visible and ": 2." in digest.visible
            assert "Скидки до 90%" in digest.visible and "Не работает запись к врачу" in digest.visible
            [promo, request] = sorted(r["id"] for r in cli_json(config, "inbound", "list"))

            read = api.press(IVANOV, STAFF_CHAT, digest.message_id, digest.button(f"👁 #{request}"))
            await until(lambda: api.answers(read)
                        and any("С утра не работает" in t for t in bot_said(api, STAFF_CHAT)))

            refused = api.press(SIDOROV, STAFF_CHAT, digest.message_id, digest.button(f"✅ #{request}"))
            await until(lambda: api.answers(refused))
            assert api.answers(refused)[0].params["text"].startswith(
                "⛔ Регистрировать заявки может только оператор (1-я линия) или администратор")
            taken = api.press(IVANOV, STAFF_CHAT, digest.message_id, digest.button(f"✅ #{request}"))
            await until(lambda: api.answers(taken) and one_card(api))
            public_id = public_id_of(one_card(api))
            assert api.answers(taken)[0].params["text"] == f"Принято: {public_id}"
            again = api.press(IVANOV, STAFF_CHAT, digest.message_id, digest.button(f"✅ #{request}"))
            await until(lambda: api.answers(again))
            assert "не отфильтровано" in api.answers(again)[0].params["text"]
            await until(lambda: any("glavvrach@gb7.example" in m.rcpt_tos for m in smtp_server.messages))

        shown = cli_json(config, "tickets", "show", public_id)
        [event] = [e for e in shown["events"] if e["action"] == "filtered_accepted"]
        assert (event["actor"], event["from"], event["to"]) == ("ivanov", "filtered", "ticket")
        assert event["detail"]["reasons"] == [
            "домен отправителя gb7.example не входит в разрешённые: sev.gov.ru"]
        inbound = {r["id"]: r for r in cli_json(config, "inbound", "list")}
        assert (inbound[request]["disposition"], inbound[request]["ticket_id"]) == ("ticket", public_id)
        assert inbound[request]["reasons"][0].startswith("принято вручную (ivanov); правила: ")
        assert inbound[promo]["disposition"] == "filtered"

    asyncio.run(story())


@pytest.fixture
def clock(tmp_path, db_url, smtp_server):
    w = World(tmp_path, db_url, smtp_server)
    yield w
    w.close()


def test_the_digest_comes_once_each_working_day_and_only_when_something_was_filtered(clock):
    def queued() -> list[dict]:
        return [o for o in cli_json(clock.config, "outbox", "list") if o["purpose"] == DIGEST]

    clock.at(msk(2026, 12, 4, 7, 59)).ingest(letter(sender=PROMO, subject="Реклама"))  # Friday
    clock.run_once()
    assert queued() == []  # before the working day starts
    clock.at(msk(2026, 12, 4, 8, 0)).run_once()
    clock.at(msk(2026, 12, 4, 15, 0)).run_once()
    assert len(queued()) == 1
    clock.at(msk(2026, 12, 5, 9, 0)).ingest(letter(sender=PROMO, subject="Реклама в субботу"))
    clock.run_once()
    assert len(queued()) == 1  # Saturday: no digest
    clock.at(msk(2026, 12, 7, 9, 0)).run_once()  # Monday: Saturday's letter
    assert len(queued()) == 2
    clock.at(msk(2026, 12, 8, 9, 0)).run_once()  # Tuesday: nothing new was filtered
    assert len(queued()) == 2


def test_a_letter_that_failed_shows_on_the_card_and_in_show(desk_config, dovecot, smtp_server, api):
    config = desk_config()
    smtp_server.fail_next(1, "permfail")  # the acknowledgement is refused: 550
    dovecot.append(desk_config.help.address, letter(subject="Заявка, чьё письмо не ушло"))

    async def story() -> None:
        async with daemon_running(config):
            card = await until(lambda: one_card(api))
            await until(lambda: "Письмо не отправлено" in card.visible)
            assert "ack → i.petrova@sev.gov.ru: SMTP 550" in card.visible
            mark = max(m.message_id for m in api.messages(STAFF_CHAT))
            api.send(IVANOV, STAFF_CHAT, f"/show {public_id_of(card)}")
            await until(lambda: any("Письма" in t for t in bot_said(api, STAFF_CHAT, mark)))
            [letters] = [t for t in bot_said(api, STAFF_CHAT, mark) if "Письма" in t]
            assert "❌" in letters and "ack → i.petrova@sev.gov.ru: SMTP 550" in letters
            assert len(cards(api)) >= 1

    asyncio.run(story())


def test_the_cli_takes_a_filtered_letter_in_once_and_refuses_what_is_no_filtered_mail(clock):
    """`inbound accept ID --as NAME`: first line only; a record made; a second time refused."""
    from tests.story import cli

    clock.at(msk(2026, 12, 4, 10)).ingest(letter(sender="head@gb9.example", subject="Не работает МИС"))
    [row] = cli_json(clock.config, "inbound", "list")
    assert row["disposition"] == "filtered"
    status, out = cli(clock.config, "inbound", "accept", str(row["id"]), "--as", "ivanova")
    [record] = clock.tickets()
    assert (status, out) == (0, f"#{row['id']} принято: {record['id']}, статус «Новая»\n")
    assert record["requester_email"] == "head@gb9.example"
    assert cli(clock.config, "inbound", "accept", str(row["id"]), "--as", "ivanova")[0] == 1
    assert cli(clock.config, "inbound", "accept", "999", "--as", "ivanova")[0] == 1
    assert len(clock.tickets()) == 1
