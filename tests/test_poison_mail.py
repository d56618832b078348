"""Issue 9, one bad letter never blocks the mailbox: values longer than their columns, a sender
address no one could answer, and a message whose processing fails (retried a bounded number of
times, then left as `error` for `inboxdesk inbound retry`).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from inboxdesk.app import App
from inboxdesk.settings import load_settings
from tests.story import HELP, cli, cli_json, letter, maildir_settings


def _raw(*, message_id: str, from_header: str, subject: str, content_type: str = "") -> bytes:
    """Written by hand: a well-behaved library would refuse to build these headers."""
    lines = [f"From: {from_header}", f"To: {HELP}", f"Subject: {subject}", f"Message-ID: {message_id}",
             "Date: Mon, 16 Nov 2026 09:12:00 +0300", "MIME-Version: 1.0"]
    body = ("Добрый день! В МИС не открывается расписание врача.\nЛогин: petrova_is\n"
            "Петрова Ирина Сергеевна, регистратор, ГБУЗС «Городская больница №1», тел. 55-12-34\n")
    if not content_type:
        lines += ["Content-Type: text/plain; charset=utf-8", "Content-Transfer-Encoding: 8bit", "", body]
    else:
        lines += ['Content-Type: multipart/mixed; boundary="b"', "", "--b",
                  "Content-Type: text/plain; charset=utf-8", "Content-Transfer-Encoding: 8bit", "", body,
                  "--b", f'Content-Type: {content_type}; name="scan.pdf"',
                  'Content-Disposition: attachment; filename="scan.pdf"', "Content-Transfer-Encoding: base64",
                  "", "JVBERi0xLjQK", "--b--", ""]
    return "\r\n".join(lines).encode()


@pytest.fixture
def config(tmp_path, db_url) -> Path:
    return maildir_settings(tmp_path, db_url)


def test_values_longer_than_their_columns_still_make_tickets(tmp_path, config):
    """A 2,000-character Message-ID, a 400-character display name and a 300-character attachment
    type each become a ticket (on PostgreSQL as on SQLite); a 330-character address is filtered
    with its reason; the mailbox goes on with the next letter."""
    letters = [
        _raw(message_id=f"<{'a' * 2000}@sev.gov.ru>", from_header="user1@sev.gov.ru", subject="Длинный ID"),
        _raw(message_id="<n2@sev.gov.ru>", from_header=f"{'Петрова' * 60} <user2@sev.gov.ru>",
             subject="Длинное имя"),
        _raw(message_id="<n3@sev.gov.ru>", from_header="user3@sev.gov.ru", subject="Длинный тип вложения",
             content_type="application/" + "x" * 300),
        _raw(message_id="<n4@sev.gov.ru>", from_header=f"{'u' * 320}@sev.gov.ru", subject="Длинный адрес"),
    ]
    files = []
    for n, raw in enumerate(letters):
        files.append(tmp_path / f"{n}.eml")
        files[-1].write_bytes(raw)

    status, out = cli(config, "ingest", "--mailbox", "help", *map(str, files))
    assert status == 0, out
    inbound = cli_json(config, "inbound", "list")
    assert [r["disposition"] for r in inbound] == ["ticket", "ticket", "ticket", "filtered"]
    assert inbound[3]["reasons"][0] == "адрес отправителя длиннее 254 символов (331)"
    assert len(inbound[0]["message_id"]) == 998
    tickets = cli_json(config, "tickets", "list")
    assert len(tickets[1]["requester_name"]) == 300
    [attachment] = cli_json(config, "tickets", "show", tickets[2]["id"])["messages"][0]["attachments"]
    assert len(attachment["content_type"]) == 200

    # The same long Message-ID again is a duplicate (the key is cut the same way), and the
    # mailbox takes new mail as usual.
    again = tmp_path / "again.eml"
    again.write_bytes(letters[0])
    nxt = tmp_path / "next.eml"
    nxt.write_bytes(letter(subject="Следующая заявка"))
    status, out = cli(config, "ingest", "--mailbox", "help", str(again), str(nxt))
    assert (status, out) == (0, "записано писем: 2 (повтор 1, заявка 1)\n")


def test_a_failing_message_is_retried_then_left_for_inbound_retry(config, monkeypatch):
    """A message whose processing fails is `error` with its reason, the rest of its batch goes on;
    it is tried again in the next passes up to a bound, then waits for `inbound retry`."""
    app = App(load_settings(config))
    box = app.settings.mailbox("help")
    real_open = app.desk.open_from_mail
    failing_subject = "Падает при обработке"

    def open_from_mail(s, box, inbound, msg, *args, **kwargs):
        if msg.subject == failing_subject:
            raise RuntimeError("database went away mid-message")
        return real_open(s, box, inbound, msg, *args, **kwargs)

    monkeypatch.setattr(app.desk, "open_from_mail", open_from_mail)
    try:
        first = app.intake.ingest(box, [letter(subject=failing_subject), letter(subject="Обычная заявка")])
        assert first.dispositions == {"error": 1, "ticket": 1}
        failed = cli_json(config, "inbound", "list")[0]
        assert failed["disposition"] == "error" and failed["state"] == "recorded"
        assert failed["reasons"] == ["RuntimeError: database went away mid-message"]
        for _ in range(3):  # the next passes try it again, twice more, then leave it
            app.intake.ingest(box, [])
        failed = cli_json(config, "inbound", "list")[0]
        assert failed["disposition"] == "error" and failed["state"] == "acked"
    finally:
        monkeypatch.setattr(app.desk, "open_from_mail", real_open)
        app.close()

    status, out = cli(config, "inbound", "retry", "--errors")
    assert (status, out) == (0, "help: обработано снова: 1 (заявка 1)\n")
    assert [r["disposition"] for r in cli_json(config, "inbound", "list")] == ["ticket", "ticket"]
    assert len(cli_json(config, "tickets", "list")) == 2
    assert cli(config, "inbound", "retry", "2")[0] == 1  # only `error` records
