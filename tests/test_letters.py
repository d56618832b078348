"""Composed letters: the direct writer of plain letters says what the email package would say."""

from __future__ import annotations

import email
from email import policy

import pytest

from inboxdesk.letters import AUTO_REPLIED, OutgoingEmail, OutgoingFile, _compose_mime, _compose_text, compose

BODY = ("Здравствуйте, Петрова Ирина Сергеевна!\n\nВаше обращение зарегистрировано.\n"
        "Номер заявки: HD-2026-000123\nСтрока с пробелом в конце \nТабуляция\tи знак = равенства\n"
        ".точка в начале строки\nFrom the start of a line\n" + "Очень длинная строка " * 20 + "\r\nCRLF\rCR")
CASES = [
    OutgoingEmail(from_addr="help@miac.test", from_name="ГБУЗС «МИАЦ»", to=("i.petrova@sev.gov.ru",),
                  subject="[HD-2026-000123] Заявка зарегистрирована: Не открывается расписание врача "
                          "и ещё очень длинная тема письма, принята в работу",
                  body=BODY, in_reply_to="<abc@sev.gov.ru>",
                  references=("<root@sev.gov.ru>", "<abc@sev.gov.ru>"), auto=AUTO_REPLIED),
    OutgoingEmail(from_addr="help@miac.test", from_name='Support "Desk", Inc.', to=("a@x.test", "b@y.test"),
                  subject="Plain ASCII subject " * 8, body="",
                  references=tuple(f"<r{i}@x.test>" for i in range(30))),
    OutgoingEmail(from_addr="help@miac.test", from_name="", to=("a@x.test",), subject="", body="x"),
    OutgoingEmail(from_addr="help@miac.test", from_name="Служба\r\nBcc: evil@x.test", to=("a@x.test",),
                  subject="Тема\r\nBcc: evil@x.test", body="тело", in_reply_to="<a\r\nb@x>"),
    OutgoingEmail(from_addr="help@miac.test", from_name="ACME, Inc. <x@y> Служба", to=("a@x.test",),
                  subject="Re: Fwd: a long plain ASCII prefix that goes on and on and on [HD-2026-000001] "
                          "Переполнение😀буфера" + "ЖЖЖЖЖЖЖЖЖЖЖЖЖЖЖЖЖЖЖЖЖЖЖЖЖЖЖЖЖЖЖЖЖЖ😀" * 4 + " конец  ",
                  body="😀\n"),
]


def _parsed(raw: bytes) -> email.message.EmailMessage:
    assert b"\r\n" in raw and b"\n" not in raw.replace(b"\r\n", b"")  # CRLF only
    assert all(len(line) <= 998 for line in raw.split(b"\r\n"))
    return email.message_from_bytes(raw, policy=policy.default)


@pytest.mark.parametrize("mail", CASES)
def test_plain_letters_read_like_the_email_packages(mail):
    fast, slow = _parsed(_compose_text(mail, "<1.inboxdesk@miac.test>")), _parsed(
        _compose_mime(mail, "<1.inboxdesk@miac.test>"))
    assert fast.keys() == slow.keys()
    for name in fast:
        if name != "Date":
            assert str(fast[name]) == str(slow[name]), name
    assert abs((fast["Date"].datetime - slow["Date"].datetime).total_seconds()) < 5
    assert fast["Date"].datetime.utcoffset().total_seconds() == 0
    assert fast.get_content() == slow.get_content()
    assert "Bcc" not in fast and len(fast.get_all("To")) == 1


def test_compose_picks_the_email_package_for_files_and_non_ascii_addresses():
    files = OutgoingEmail(from_addr="help@miac.test", from_name="МИАЦ", to=("a@x.test",), subject="Файл",
                          body="см. вложение", files=(OutgoingFile("акт.pdf", "application/pdf", b"%PDF"),))
    _, raw = compose(files)
    assert _parsed(raw).get_content_type() == "multipart/mixed"
    idn = OutgoingEmail(from_addr="help@miac.test", from_name="МИАЦ", to=("почта@пример.рф",), subject="Тема",
                        body="текст")
    assert _compose_text(idn, "<1@x>") is None
    message_id, raw = compose(idn)
    assert _parsed(raw)["Message-ID"] == message_id


def test_the_ack_subject_keeps_every_space():
    mail = CASES[0]
    subject = str(_parsed(compose(mail)[1])["Subject"])
    assert subject == " ".join(mail.subject.split())
