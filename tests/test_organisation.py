"""Issue 17: the organisation a request comes from (Appendix 1 of 003: "наименование МО
пользователя"). It is read from the request itself, else from `[organisations]` (a sender's
address, else its domain or a parent domain), filled in later when an answer to the form names
it, corrected by staff (audited), shown in `tickets list` and `show`, and filtered by.
SQLite and PostgreSQL."""

from __future__ import annotations

import pytest

from tests.clock_world import World, msk
from tests.story import REQUEST_BODY, cli, cli_json, letter

ORGANISATIONS = """
[organisations]
"gb2.sev.gov.ru" = "ГБУЗС «Городская больница №2»"
"minzdrav.sev.gov.ru" = "Департамент здравоохранения Севастополя"
"glavvrach@gb2.sev.gov.ru" = "ГБУЗС «Городская больница №2», администрация"
"""
# A complete request (MAIL-8) that does not name its organisation.
UNNAMED = ("Не открывается расписание врача.\n"
           "Действия: Регистратура → Расписание → ошибка «Нет шаблона».\n"
           "Логин: orlova_b\nОрлова Бэлла Игоревна, тел. +7 (8692) 55-00-11\n")


@pytest.fixture
def world(tmp_path, db_url, smtp_server):
    w = World(tmp_path, db_url, smtp_server, extra=ORGANISATIONS, allow_subdomains=True)
    w.at(msk(2026, 11, 16, 10))
    yield w
    w.close()


def organisation_of(world: World, subject: str) -> str | None:
    [record] = [t for t in world.tickets() if t["subject"] == subject]
    return record["organisation"]


def test_the_organisation_comes_from_the_request_else_from_the_sender_address(world):
    world.ingest(letter(subject="Из письма", body=REQUEST_BODY))  # names ГБ №1 in its signature
    world.ingest(letter(sender="b.orlova@gb2.sev.gov.ru", name="Орлова Б. И.", subject="По домену",
                        body=UNNAMED))
    world.ingest(letter(sender="glavvrach@gb2.sev.gov.ru", name="Главврач", subject="По адресу",
                        body=UNNAMED))
    world.ingest(letter(sender="x.kto@otdel.minzdrav.sev.gov.ru", name="Кто-то",
                        subject="По родительскому домену", body=UNNAMED))
    assert organisation_of(world, "Из письма") == "ГБУЗС «Городская больница №1»"
    assert organisation_of(world, "По домену") == "ГБУЗС «Городская больница №2»"
    assert organisation_of(world, "По адресу") == "ГБУЗС «Городская больница №2», администрация"
    assert organisation_of(world, "По родительскому домену") == "Департамент здравоохранения Севастополя"

    listed = cli(world.config, "tickets", "list")[1]
    assert "ГБУЗС «Городская больница №1»" in listed
    by_name = cli_json(world.config, "tickets", "list", "--organisation", "больница №2")
    assert sorted(t["subject"] for t in by_name) == ["По адресу", "По домену"]
    upper = cli_json(world.config, "tickets", "list", "--organisation", "ГОРОДСКАЯ БОЛЬНИЦА №1")
    assert [t["subject"] for t in upper] == ["Из письма"]


def test_an_answer_to_the_form_names_the_organisation_and_staff_correct_it(world):
    """A request without its МО waits in `Обратная связь` (§3.2); the sender's answer names it,
    and the record takes it. Staff then correct it; the change is in the history (AUD-1)."""
    world.ingest(letter(sender="n.novikov@sev.gov.ru", name="Новиков Н.", subject="Нет доступа",
                        body="Не могу войти в МИС, логин novikov_n, тел. 89781112233. Новиков Николай."))
    [record] = world.tickets()
    assert record["status"] == "Обратная связь" and record["organisation"] is None
    world.run_once()
    ask = [m.message for m in world.smtp.messages if "n.novikov@sev.gov.ru" in m.rcpt_tos][-1]
    world.ingest(letter(sender="n.novikov@sev.gov.ru", name="Новиков Н.",
                        subject="Re: " + ask["Subject"], in_reply_to=ask["Message-ID"],
                        body="Действия: Вход → ввожу логин → «Неверный пароль».\n"
                             "Организация: ГБУЗС «Центр медицинской профилактики»\n"))
    assert world.ticket(record["id"])["organisation"] == "ГБУЗС «Центр медицинской профилактики»"

    status, out = cli(world.config, "ticket", "organisation", record["id"],
                      "ГБУЗС «Городской центр медицинской профилактики»", "--as", "ivanova")
    assert status == 0
    assert out.startswith(f"{record['id']}: организация: ГБУЗС «Городской центр медицинской профилактики»")
    shown = world.ticket(record["id"])
    assert shown["organisation"] == "ГБУЗС «Городской центр медицинской профилактики»"
    [event] = [e for e in shown["events"] if e["action"] == "organisation"]
    assert (event["actor"], event["from"], event["to"]) == (
        "ivanova", "ГБУЗС «Центр медицинской профилактики»",
        "ГБУЗС «Городской центр медицинской профилактики»")
    assert cli(world.config, "ticket", "organisation", record["id"], "  ", "--as", "ivanova")[0] == 1
