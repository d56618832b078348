"""Stories of the support mailbox (issue 2, points 1-3 and 5): emails in an IMAP mailbox, the
daemon runs once, then tickets, inbound records and letters at the SMTP server.

Every story runs on SQLite and on PostgreSQL.
"""

from __future__ import annotations

import email
import email.policy
import hashlib
import re

import pytest

from tests.story import HELP, cli, cli_json, imap_box, letter, message_id_of, smtp_out, write_settings

ENV = "INBOXDESK_TEST_IMAP_PASSWORD"


@pytest.fixture
def desk(tmp_path, db_url, dovecot, imap_account, smtp_server, monkeypatch):
    """A support mailbox on Dovecot, letters to aiosmtpd, and the database under test."""
    monkeypatch.setenv(ENV, imap_account.password)
    config = write_settings(tmp_path, db_url, [imap_box(dovecot, imap_account, ENV)], smtp_out(smtp_server))

    class Desk:
        def send(self, raw: bytes) -> None:
            dovecot.append(imap_account.address, raw)

        def run_once(self) -> None:
            status, output = cli(config, "run", "--once")
            assert status == 0, output

        def tickets(self) -> list[dict]:
            return cli_json(config, "tickets", "list")

        def ticket(self, public_id: str) -> dict:
            return cli_json(config, "tickets", "show", public_id)

        def inbound(self) -> list[dict]:
            return cli_json(config, "inbound", "list")

        def outbox(self) -> list[dict]:
            return cli_json(config, "outbox", "list")

        def mailbox(self) -> list:
            return dovecot.folder_messages(imap_account.address)

    return Desk()


def test_request_from_allowed_domain_becomes_one_ticket_and_one_acknowledgement(desk, smtp_server):
    """MAIL-1, MAIL-3, OUT-1, OUT-2: a request from @sev.gov.ru is ticket `Новая` with an ID; the
    sender gets exactly one acknowledgement, tagged and threaded to the request."""
    request = letter(subject="Не открывается расписание врача")
    desk.send(request)

    desk.run_once()

    [ticket] = desk.tickets()
    assert ticket["status"] == "Новая"
    assert re.fullmatch(r"HD-\d{4}-\d{6}", ticket["id"])
    assert ticket["requester_email"] == "i.petrova@sev.gov.ru"
    assert ticket["requester_name"] == "Петрова Ирина Сергеевна"
    assert ticket["subject"] == "Не открывается расписание врача"

    [ack] = smtp_server.messages
    assert ack.rcpt_tos == ["i.petrova@sev.gov.ru"]
    assert ack.mail_from == HELP
    assert ack.message["Subject"].startswith(f"[{ticket['id']}] ")
    assert ack.message["In-Reply-To"] == message_id_of(request)
    assert message_id_of(request) in ack.message["References"]
    assert ack.message["Auto-Submitted"] == "auto-replied"
    assert ack.message["Message-ID"].endswith("@miac.test>")
    assert ticket["id"] in ack.message.get_content()

    [row] = desk.inbound()
    assert row["disposition"] == "ticket" and row["ticket_id"] == ticket["id"]
    [letter_row] = desk.outbox()
    assert letter_row["status"] == "sent" and letter_row["attempts"] == 1
    # The mailbox is touched only after the commit: the request is now \Seen, and still there.
    [(_, flags, _)] = desk.mailbox()
    assert b"\\Seen" in flags


def test_replies_by_tag_and_by_in_reply_to_land_in_the_same_ticket(desk, smtp_server):
    """MAIL-4: a reply tagged in the subject, and one that only carries In-Reply-To, both join the
    ticket; no new ticket and no new acknowledgement."""
    desk.send(letter(subject="Ошибка печати направления"))
    desk.run_once()
    [ticket] = desk.tickets()
    [ack] = smtp_server.messages

    desk.send(letter(subject=f"Re: [{ticket['id']}] Ошибка печати направления",
                     body="Дополняю: ошибка появляется только в Chrome.\n"))
    desk.send(letter(subject="ещё скриншот", body="Прилагаю ещё один скриншот.\n",
                     in_reply_to=ack.message["Message-ID"],
                     files=[("screen.png", "image/png", b"\x89PNG fake but exact bytes")]))
    desk.run_once()

    assert len(desk.tickets()) == 1
    shown = desk.ticket(ticket["id"])
    incoming = [m for m in shown["messages"] if m["direction"] == "in"]
    assert [m["body"].strip() for m in incoming[1:]] == [
        "Дополняю: ошибка появляется только в Chrome.", "Прилагаю ещё один скриншот."]
    screenshot = hashlib.sha256(b"\x89PNG fake but exact bytes").hexdigest()
    assert incoming[2]["attachments"][0]["sha256"] == screenshot
    assert [r["disposition"] for r in desk.inbound()] == ["ticket", "followup", "followup"]
    assert len(smtp_server.messages) == 1  # follow-ups are not acknowledged again


def test_tag_from_a_stranger_opens_a_new_linked_ticket(desk, smtp_server):
    """MAIL-4: a tag alone from an address that is not part of the ticket must not append to it."""
    desk.send(letter(subject="Не работает ЭЦП"))
    desk.run_once()
    [first] = desk.tickets()

    desk.send(letter(sender="other.person@sev.gov.ru", name="Другой Человек",
                     subject=f"[{first['id']}] чужой ответ"))
    desk.run_once()

    tickets = desk.tickets()
    assert len(tickets) == 2
    assert desk.ticket(tickets[1]["id"])["linked_to"] == first["id"]
    assert len(desk.ticket(first["id"])["messages"]) == 2  # request + acknowledgement, nothing added


DSN = b"""From: MAILER-DAEMON@mx.sev.gov.ru (Mail Delivery System)
To: help@miac.test
Subject: Undelivered Mail Returned to Sender
Message-ID: <dsn-1@mx.sev.gov.ru>
Auto-Submitted: auto-replied
MIME-Version: 1.0
Content-Type: multipart/report; report-type=delivery-status; boundary="B"

--B
Content-Type: text/plain

I'm sorry to have to inform you that your message could not be delivered.

--B
Content-Type: message/delivery-status

Reporting-MTA: dns; mx.sev.gov.ru

Final-Recipient: rfc822; nobody@sev.gov.ru
Action: failed
Status: 5.1.1

--B
Content-Type: text/rfc822-headers

From: help@miac.test
To: nobody@sev.gov.ru
Subject: [HD-2026-000001] something
Message-ID: <not-ours@miac.test>

--B--
"""


def test_filtered_mail_makes_no_ticket_and_no_letter_but_is_kept_with_its_reason(desk, smtp_server):
    """MAIL-1, LOOP-1: a sender outside the allowed domains, an out-of-office reply, a DSN bounce
    and a mailing-list message: no ticket, no email; each listed with disposition and reason."""
    desk.send(letter(sender="vasya@gmail.com", name="Вася", subject="Помогите"))
    desk.send(letter(subject="Автоматический ответ: Не открывается расписание",
                     headers={"Auto-Submitted": "auto-replied"},
                     body="Я в отпуске до 30 ноября.\n"))
    desk.send(DSN)
    desk.send(letter(subject="Новости МИАЦ", headers={"List-Id": "<news.sev.gov.ru>",
                                                       "List-Unsubscribe": "<mailto:leave@sev.gov.ru>",
                                                       "Precedence": "bulk"}))
    desk.run_once()

    assert desk.tickets() == []
    assert smtp_server.messages == []
    assert desk.outbox() == []
    rows = desk.inbound()
    assert [r["disposition"] for r in rows] == ["filtered", "autoreply", "bounce", "filtered"]
    assert all(r["reasons"] and r["ticket_id"] is None for r in rows)
    assert "gmail.com" in " ".join(rows[0]["reasons"])
    assert "list" in " ".join(rows[3]["reasons"]).lower()
    # Filtered mail is still flagged as processed in the mailbox, never deleted.
    assert all(b"\\Seen" in flags for _, flags, _ in desk.mailbox())


def test_bounce_of_our_acknowledgement_is_linked_to_its_letter(desk, smtp_server):
    """LOOP-1: a DSN for one of our letters marks that letter bounced and shows on its ticket."""
    desk.send(letter(sender="nobody@sev.gov.ru", subject="Заявка"))
    desk.run_once()
    [ticket] = desk.tickets()
    [ack] = smtp_server.messages

    desk.send(DSN.replace(b"<not-ours@miac.test>", ack.message["Message-ID"].encode()))
    desk.run_once()

    [letter_row] = desk.outbox()
    assert letter_row["status"] == "bounced"
    assert desk.inbound()[-1]["disposition"] == "bounce"
    assert desk.inbound()[-1]["ticket_id"] == ticket["id"]
    assert any(e["action"] == "bounce" for e in desk.ticket(ticket["id"])["events"])
    assert len(smtp_server.messages) == 1  # a bounce is never answered


def test_attachments_over_10_mb_are_not_stored_and_the_sender_is_told(desk, smtp_server):
    """MAIL-9: the message is recorded and becomes a ticket; files past the 10 MB total are not
    stored; the acknowledgement names them."""
    small = b"S" * (2 * 1024 * 1024)
    big = bytes(range(256)) * (40 * 1024)  # 10 MB on its own: over the limit with `small`
    desk.send(letter(subject="Большие вложения", files=[("журнал.txt", "text/plain", small),
                                                        ("видео ошибки.mp4", "video/mp4", big)]))
    desk.run_once()

    [ticket] = desk.tickets()
    [request] = [m for m in desk.ticket(ticket["id"])["messages"] if m["direction"] == "in"]
    stored = {a["filename"]: a["stored"] for a in request["attachments"]}
    assert stored == {"журнал.txt": True, "видео ошибки.mp4": False}
    [ack] = smtp_server.messages
    text = ack.message.get_content()
    assert "видео ошибки.mp4" in text and "10 МБ" in text
    assert any("видео ошибки.mp4" in r for r in desk.inbound()[0]["reasons"])


def test_windows_1251_request_with_cyrillic_file_name_reads_correctly(desk, smtp_server):
    """Issue 2 point 4 (end to end): an 8-bit windows-1251 letter with an RFC 2231 file name."""
    content = b"%PDF-1.4 exact bytes \xff\x00"
    raw = letter(subject="Ошибка в отчёте", body="Отчёт формы 30 не формируется.\n", charset="windows-1251",
                 files=[("отчёт форма 30.pdf", "application/pdf", content)])
    desk.send(raw)
    desk.run_once()

    [ticket] = desk.tickets()
    shown = desk.ticket(ticket["id"])
    request = shown["messages"][0]
    assert "Отчёт формы 30 не формируется." in request["body"]
    [att] = request["attachments"]
    assert att["filename"] == "отчёт форма 30.pdf"
    assert att["sha256"] == hashlib.sha256(content).hexdigest()
    parsed = email.message_from_bytes(smtp_server.messages[0].raw, policy=email.policy.default)
    assert "Ошибка в отчёте" in parsed["Subject"]
