"""Issue 9, letters that failed: a relay that answered 5xx for a while left acknowledgements
`failed` for good. An admin sends them again (`outbox retry`), each retry audited; others may not."""

from __future__ import annotations

import pytest

from tests.desk_world import World
from tests.story import letter

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
        "Отправить письмо повторно может только администратор")
    assert world.refused("outbox", "retry", "3", "--as", "sidorova").startswith(
        "Повторить можно только неотправленные письма; не такие: #3 (sent)")
    status, out, _ = world.run("outbox", "retry", "--failed", "--as", "sidorova")
    assert (status, out) == (0, "2 letter(s) due again: #1, #2\n")

    world.run_once()
    assert [o["status"] for o in world.ok("outbox", "list")] == ["sent", "sent", "sent"]
    assert sorted(m.rcpt_tos[0] for m in smtp_server.messages) == [f"user{n}@sev.gov.ru" for n in range(3)]
    ticket = world.tickets()[0]["id"]
    [retry] = [e for e in world.ticket(ticket)["events"] if e["action"] == "letter_retry"]
    assert (retry["actor"], retry["from"], retry["to"]) == ("sidorova", "failed", "pending")
    assert "550" in retry["detail"]["last_error"]
