"""Issue 17, MAIL-5 with `[desk] notify_statuses`: a status the sender's own reply brings about
is told to them like one a staff member sets, once per round of work. A reply that reopens a
resolved ticket starts a new round: "принята в работу" again. A reply to a question in
`Обратная связь` returns the ticket to work it was already in this round: no second letter.
SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import timedelta

import pytest

from tests.clock_world import World, msk
from tests.story import letter

SENDER = "i.petrova@sev.gov.ru"
T0 = msk(2026, 11, 16, 10)


@pytest.fixture
def world(tmp_path, db_url, smtp_server):
    w = World(tmp_path, db_url, smtp_server)
    yield w
    w.close()


def subjects_since(world: World, before: int) -> list[str]:
    return [str(m.message["Subject"]) for m in world.smtp.messages[before:] if SENDER in m.rcpt_tos]


def reply(world: World, body: str) -> None:
    last = [m.message for m in world.smtp.messages if SENDER in m.rcpt_tos][-1]
    world.ingest(letter(subject="Re: " + str(last["Subject"]), in_reply_to=last["Message-ID"], body=body))


def test_a_reopening_reply_is_told_as_taken_into_work_and_a_feedback_answer_is_not_told_twice(world):
    world.at(T0).ingest(letter(subject="Не печатается рецепт"))
    tid = world.only_ticket()
    world.act(tid, "take")
    world.act(tid, "change_status", "Обратная связь", comment="Какой принтер?")
    world.run_once()

    before = len(world.smtp.messages)
    world.at(T0 + timedelta(hours=1))
    reply(world, "Принтер HP LaserJet 1020.")
    world.run_once()
    assert world.ticket(tid)["status"] == "Рассматривается"
    assert subjects_since(world, before) == []  # already told "in work" this round

    world.at(T0 + timedelta(hours=2)).act(tid, "change_status", "Решена", answer_text="Драйвер обновлён.")
    world.run_once()
    before = len(world.smtp.messages)
    world.at(T0 + timedelta(days=1))
    reply(world, "Снова не печатает.")
    world.run_once()
    shown = world.ticket(tid)
    assert shown["status"] == "Рассматривается" and shown["assignee"] == "ivanova"
    assert subjects_since(world, before) == [f"[{tid}] Заявка принята в работу: Не печатается рецепт"]
    [event] = [e for e in shown["events"] if e["action"] == "status"][-1:]
    assert (event["actor"], event["from"], event["to"]) == (SENDER, "Решена", "Рассматривается")
