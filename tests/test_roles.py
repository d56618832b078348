"""Issue 17: who may do what, from one table (inboxdesk.workflow.MAY). Regulation 003 §2.7: the
first line registers requests, answers, sets the priority (§4.5) and escalates to the second
line (MAIL-10); the second line works what was escalated and may hand it back. An admin does
both. Every refusal is one Russian line naming who may; staff directory changes are audited
(AUD-1). Driven through the CLI against Dovecot, aiosmtpd and SQLite/PostgreSQL."""

from __future__ import annotations

import getpass

import pytest

from tests.desk_world import World

ADMIN = """
[[staff]]
name = "sidorova"
role = "admin"
telegram_id = 1003
"""


@pytest.fixture
def world(tmp_path, db_url, dovecot, smtp_server, monkeypatch) -> World:
    w = World(tmp_path, db_url, dovecot, smtp_server, monkeypatch)
    w.configure(ADMIN)
    return w


def phone_request(world: World, actor: str = "ivanova") -> str:
    return world.ok("ticket", "new", "--as", actor, "--mailbox", "help", "--name", "Петрова Ирина",
                    "--email", "i.petrova@sev.gov.ru", "--phone", "+7 978 111-22-33",
                    "--subject", "Не ставится подпись", "--text", "Звонок: ЭЦП не ставится")["id"]


def test_the_first_line_works_a_new_request_and_the_second_line_does_not(world):
    """§2.7: registering, answering, the priority and escalation are first line's."""
    assert world.refused("ticket", "new", "--as", "petrov", "--mailbox", "help", "--name", "Кто-то",
                         "--subject", "Звонок", "--text", "…") == (
        "Регистрировать заявки может только оператор (1-я линия) или администратор; "
        "ваша роль: инженер (2-я линия)")
    tid = phone_request(world)
    on_first = (f"{tid} на 1-й линии: {{}} по ней может оператор (1-я линия) или администратор; "
                "ваша роль: инженер (2-я линия)")
    assert world.refused("ticket", "take", tid, "--as", "petrov") == on_first.format("брать в работу")
    assert world.refused("ticket", "reply", tid, "--as", "petrov", "--text", "Здравствуйте") == (
        on_first.format("отвечать заявителю"))
    assert world.refused("ticket", "status", tid, "Рассматривается", "--as", "petrov") == (
        on_first.format("менять статус"))
    assert world.refused("ticket", "priority", tid, "2", "--impact", "Большое", "--as", "petrov") == (
        "Менять приоритет и влияние может только оператор (1-я линия) или администратор; "
        "ваша роль: инженер (2-я линия)")
    assert world.refused("ticket", "assign", tid, "petrov", "--as", "ivanova") == (
        f"{tid} на 1-й линии: назначить её можно на сотрудника с ролью оператор (1-я линия) или "
        "администратор; у petrov роль инженер (2-я линия)")
    world.ok("ticket", "note", tid, "--as", "petrov", "--text", "Посмотрю, если эскалируют")  # anyone
    world.ok("ticket", "take", tid, "--as", "ivanova")
    world.ok("ticket", "priority", tid, "2", "--impact", "Большое", "--as", "ivanova")
    shown = world.ticket(tid)
    assert (shown["assignee"], shown["status"], shown["priority"], shown["line"]) == (
        "ivanova", "Рассматривается", 2, 1)


def test_an_escalated_ticket_is_second_line_work_until_it_is_handed_back(world):
    """MAIL-10: after escalation the first line no longer works it (it may still write a note);
    the second line takes it, or hands it back to the first line (audited, the owner lets go)."""
    tid = phone_request(world)
    world.ok("ticket", "take", tid, "--as", "ivanova")
    world.ok("ticket", "escalate", tid, "--as", "ivanova", "--comment", "Нужен инженер КриптоПро")
    on_second = (f"{tid} на 2-й линии: {{}} по ней может инженер (2-я линия) или администратор; "
                 "ваша роль: оператор (1-я линия)")
    assert world.refused("ticket", "take", tid, "--as", "ivanova") == on_second.format("брать в работу")
    assert world.refused("ticket", "status", tid, "Решена", "--as", "ivanova") == (
        on_second.format("менять статус"))
    assert world.refused("ticket", "deescalate", tid, "--as", "ivanova") == (
        "Возвращать на первую линию может только инженер (2-я линия) или администратор; "
        "ваша роль: оператор (1-я линия)")
    world.ok("ticket", "note", tid, "--as", "ivanova", "--text", "Заявитель ждёт до 17:00")
    world.ok("ticket", "assign", tid, "petrov", "--as", "ivanova")

    back = world.ok("ticket", "deescalate", tid, "--as", "petrov", "--comment",
                    "Это настройка МИС, не КриптоПро")
    assert (back["line"], back["assignee"], back["status"]) == (1, None, "Новая")
    assert world.refused("ticket", "deescalate", tid, "--as", "petrov") == f"{tid} уже на первой линии"
    events = [(e["actor"], e["action"], e["from"], e["to"]) for e in world.ticket(tid)["events"]]
    assert events[-3:] == [("petrov", "deescalated", "2", "1"), ("petrov", "assigned", "petrov", None),
                           ("petrov", "status", "Назначена", "Новая")]
    notes = [m["body"] for m in world.ticket(tid)["messages"] if m["direction"] == "note"]
    assert notes[-1] == "Возврат на первую линию: Это настройка МИС, не КриптоПро"
    world.ok("ticket", "take", tid, "--as", "ivanova")  # first line's again


def test_an_admin_works_both_lines(world):
    tid = phone_request(world, actor="sidorova")
    world.ok("ticket", "escalate", tid, "--as", "sidorova")
    world.ok("ticket", "take", tid, "--as", "sidorova")
    world.ok("ticket", "deescalate", tid, "--as", "sidorova")
    world.ok("ticket", "status", tid, "Решена", "--as", "sidorova", "--answer", "Готово")


def test_changes_to_the_staff_directory_are_audited_with_who_made_them(world):
    """AUD-1: who was added, changed and removed, by which account on the server."""
    world.ok("staff", "list")
    assert world.run("staff", "add", "kozlov", "--role", "operator", "--telegram-id", "1004")[0] == 0
    assert world.run("staff", "add", "kozlov", "--role", "engineer", "--telegram-id", "1004",
                     "--full-name", "Козлов Пётр")[0] == 0
    assert world.run("staff", "add", "kozlov", "--role", "engineer", "--telegram-id", "1004",
                     "--full-name", "Козлов Пётр")[0] == 0  # no change: nothing to record
    assert world.run("staff", "remove", "kozlov")[0] == 0
    who = f"cli:{getpass.getuser()}"
    operator, engineer = "kozlov · operator · 1004 · — · —", "kozlov · engineer · 1004 · — · Козлов Пётр"
    assert [(e["actor"], e["action"], e["from"], e["to"]) for e in world.ok("staff", "log")] == [
        (who, "staff_added", None, operator), (who, "staff_changed", operator, engineer),
        (who, "staff_removed", engineer, None)]
