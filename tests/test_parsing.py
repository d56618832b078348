"""Parsing raw mail into ParsedMessage: Russian charsets, headers, bodies, attachments, quotes.

Stories use the support mailbox's real senders: Outlook-ru in windows-1251, The Bat! with raw
8-bit headers, Thunderbird in KOI8-R, lab gateways in cp866, Yandex/Mail.ru/Gmail web mail.
Requirement IDs point into ../shared/DESIGN.md.
"""

from __future__ import annotations

import email
import hashlib
import random
from datetime import UTC, datetime, timedelta, timezone
from email.header import Header
from email.message import EmailMessage, Message
from email.mime.application import MIMEApplication
from email.mime.image import MIMEImage
from email.mime.multipart import MIMEMultipart
from email.mime.text import MIMEText
from email.policy import SMTP
from pathlib import Path

import pytest

from mailflow import mime, parsing
from mailflow.message import BounceInfo, ParsedMessage
from mailflow.parsing import clean_subject, parse_message

FIXTURES = Path(__file__).parent / "fixtures" / "mail"


def fixture(name: str) -> ParsedMessage:
    return parse_message((FIXTURES / name).read_bytes())


def raw_mail(headers: str, body: bytes, charset: str = "ascii") -> bytes:
    """A message from header lines and body bytes, with CRLF line ends as IMAP serves them."""
    head = headers.strip("\n").replace("\n", "\r\n").encode(charset)
    return head + b"\r\n\r\n" + body.replace(b"\n", b"\r\n")


PLAIN_UTF8 = "From: a@sev.gov.ru\nContent-Type: text/plain; charset=utf-8"


# -- charsets (DESIGN 4 step 3: "declared, then detected (KOI8-R, windows-1251, ...)") ----------


def test_outlook_ru_reply_in_windows_1251_is_read_threaded_and_trimmed() -> None:
    """MAIL-8, MAIL-4, MAIL-1: an Outlook-ru follow-up in windows-1251 quoted-printable.

    Subject (RFC 2047 B) and sender name (RFC 2047 Q) decode; the address is lower-cased for the
    allowed-domain rule; threading ids keep their <id@host> form; the Outlook-ru header block
    ("От: / Отправлено: / Кому: / Тема:") and the quote under it are not part of the new text.
    """
    msg = fixture("outlook_ru_cp1251_reply.eml")
    assert msg.subject == "RE: [HD-2026-000123] Не открывается карточка пациента"
    assert clean_subject(msg.subject) == "[HD-2026-000123] Не открывается карточка пациента"
    assert (msg.from_name, msg.from_addr, msg.from_domain) == (
        "Петрова Мария Сергеевна", "petrova@gp3.sev.gov.ru", "gp3.sev.gov.ru")
    assert msg.to == ("help@sev.gov.ru",) and msg.cc == ("zav@gp3.sev.gov.ru",)
    assert msg.message_id == "<000a01d9b2f1$5c3e2a40$14ba7ec0$@gp3.sev.gov.ru>"
    assert msg.in_reply_to == "<hd-2026-000123.1.reply@help.sev.gov.ru>"
    assert msg.references == ("<CAB1x=kq9w@gp3.sev.gov.ru>", "<hd-2026-000123.1.reply@help.sev.gov.ru>")
    assert msg.thread_ids[0] == "<hd-2026-000123.1.reply@help.sev.gov.ru>"
    assert msg.date == datetime(2026, 11, 23, 9, 14, 58, tzinfo=timezone(timedelta(hours=3)))
    assert msg.content_type == "multipart/alternative"
    assert "Пациент: Смирнов А.В., карта № 123456" in msg.text
    assert "«Нет доступа к разделу»" in msg.text
    assert msg.html is not None and "MsoNormal" in msg.html
    assert msg.new_text.endswith("С уважением,\nПетрова Мария Сергеевна")
    assert "Уточните, пожалуйста" in msg.text and "Уточните" not in msg.new_text
    assert msg.defects == ()


def test_the_bat_raw_windows_1251_headers_and_body_without_any_charset_are_detected() -> None:
    """DESIGN 4 step 3: The Bat! sends raw 8-bit windows-1251 headers and an undeclared body.

    Both are read as Russian, and the guess is recorded so staff can see why ("charset-detected").
    """
    msg = fixture("thebat_cp1251_undeclared.eml")
    assert msg.subject == "Не печатаются льготные рецепты"
    assert msg.from_name == "Сидоренко Олег Петрович"
    assert "принтер пишет «Ошибка\nформирования документа»" in msg.text
    assert "charset-detected:cp1251" in msg.defects
    assert "header-charset-detected:cp1251" in msg.defects


def test_thunderbird_reply_in_declared_koi8_r_loses_its_quote_but_keeps_the_signature() -> None:
    """MAIL-4, BOT-2: a KOI8-R Thunderbird-ru reply; "<date>, <name> пишет:" and "> " lines go."""
    msg = fixture("thunderbird_ru_koi8r_reply.eml")
    assert msg.subject == "Re: [HD-2026-000130] Ошибка при записи на приём"
    assert msg.from_name == "Кузнецова Анна Викторовна"
    assert msg.new_text == (
        "Добрый день.\n\nПроверила ещё раз - ошибка сохраняется. Скриншот пришлю отдельно.\n\n"
        "Кузнецова А.В."
    )
    assert "> Попробуйте очистить кэш браузера" in msg.text


def test_koi8_r_mail_without_any_mime_headers_is_detected() -> None:
    """DESIGN 4 step 3: an old Unix mailer sends raw KOI8-R subject and body and no MIME at all."""
    msg = fixture("unix_koi8r_no_mime.eml")
    assert msg.subject == "Сброс пароля ОМС"
    assert msg.text.startswith("Не работает вход в систему ОМС, пишет неверный пароль.")
    assert "charset-detected:koi8-r" in msg.defects


def test_an_undeclared_koi8_r_subject_reads_test_test_like_in_rt() -> None:
    """DESIGN 4 step 3 (RT's corpus): raw KOI8-R "тест тест" with an all-capital "ТЕСТ" body.

    "ТЕСТ" alone reads as Russian in windows-1251 too; the subject settles it for the whole message.
    """
    raw = raw_mail("From: mitya@example.com\nSubject: тест тест", "ТЕСТ\n".encode("koi8-r"), "koi8-r")
    msg = parse_message(raw)
    assert msg.subject == "тест тест"
    assert msg.text.strip() == "ТЕСТ"


@pytest.mark.parametrize("name", ["lab_cp866_declared.eml", "lab_cp866_undeclared.eml"])
def test_cp866_from_a_dos_era_lab_gateway_is_read(name: str) -> None:
    """DESIGN 4 step 3: a laboratory analyser gateway writes cp866, declared ("ibm866") or not."""
    msg = fixture(name)
    assert msg.text.startswith("ОТЧЁТ ЛАБОРАТОРИИ: не выгружаются результаты анализов в МИС")
    assert "Анализатор №2, отделение КДЛ." in msg.text


def test_a_latin_1_label_on_windows_1251_bytes_is_corrected() -> None:
    """APL-1: an old web form stamps iso-8859-1 on windows-1251 text; the appeal fields still read."""
    msg = fixture("webform_latin1_mislabelled_cp1251.eml")
    assert msg.subject == "Новое обращение с сайта"
    assert "Фамилия: Кузьмина\nИмя: Ольга\nОтчество: Павловна" in msg.text
    assert "charset-mislabelled:iso8859-1->cp1251" in msg.defects


def test_a_windows_1251_label_on_koi8_r_bytes_is_corrected() -> None:
    """DESIGN 4 step 3: the classic KOI8-R/windows-1251 confusion, read the right way round."""
    msg = fixture("declared_cp1251_actually_koi8r.eml")
    assert msg.text.startswith("Добрый день! Просим подключить новое рабочее место в регистратуре")
    assert "charset-mislabelled:cp1251->koi8-r" in msg.defects


def test_a_utf_8_label_on_windows_1251_bytes_falls_back_to_detection() -> None:
    """DESIGN 4 step 3: bytes that are not utf-8 at all are detected instead of turning into �."""
    body = "Не открывается журнал вызовов врача на дом.".encode("cp1251")
    msg = parse_message(raw_mail(
        "From: a@sev.gov.ru\nSubject: x\nContent-Type: text/plain; charset=utf-8", body))
    assert msg.text.strip() == "Не открывается журнал вызовов врача на дом."
    assert "charset-invalid:utf-8->detected:cp1251" in msg.defects


def test_utf_8_labelled_as_latin_1_is_read_as_utf_8() -> None:
    """DESIGN 4 step 3: valid multi-byte utf-8 under a single-byte label is utf-8."""
    body = "Прошу восстановить доступ к ЕГИСЗ.".encode()
    msg = parse_message(raw_mail(
        "From: a@sev.gov.ru\nSubject: x\nContent-Type: text/plain; charset=iso-8859-1", body))
    assert msg.text.strip() == "Прошу восстановить доступ к ЕГИСЗ."


def test_western_european_mail_is_not_mistaken_for_russian() -> None:
    """DESIGN 4 step 3: accented Latin ("Håvard", "Grüße") keeps its declared or body charset."""
    raw = raw_mail(
        "From: Wilhelmsen Håvard <hw@nordkapp.net>\nSubject: Grüße aus München\n"
        "Content-Type: text/plain; charset=iso-8859-1\nContent-Transfer-Encoding: 8bit",
        "Håvard schreibt: schöne Grüße.\n".encode("latin-1"), "latin-1")
    msg = parse_message(raw)
    assert msg.from_name == "Wilhelmsen Håvard"
    assert msg.subject == "Grüße aus München"
    assert msg.text.strip() == "Håvard schreibt: schöne Grüße."


# -- headers ----------------------------------------------------------------------------------


@pytest.mark.parametrize(("raw_subject", "expected"), [
    ("=?utf-8?B?0J3QtSDRgNCw0LHQvtGC0LDQtdGCINCV0JzQmNCQ0KE=?=", "Не работает ЕМИАС"),
    ("=?windows-1251?Q?=CD=E5_=F0=E0=E1=EE=F2=E0=E5=F2_=C5=CC=C8=C0=D1?=", "Не работает ЕМИАС"),
    ("=?KOI8-R?b?7sUg0sHCz9TBxdQg5e3p4fM=?=", "Не работает ЕМИАС"),
    # Outlook splits one utf-8 character between two adjacent words; the space between them is folding.
    ("=?utf-8?B?0J3QtSDR?=\r\n =?utf-8?B?gNCw0LHQvtGC0LDQtdGCINCV0JzQmNCQ0KE=?=", "Не работает ЕМИАС"),
    ("Re: =?utf-8?Q?=D0=95=D0=9C=D0=98=D0=90=D0=A1?= [HD-2026-000001]", "Re: ЕМИАС [HD-2026-000001]"),
    ("=?utf-8?B?0J3QtSDRgNCw0LHQvtGC0LDQtdGC?=", "Не работает"),  # padding lost by a gateway
    ("=?utf-8?B?0J3QtSDRgNCw0LHQvtGC0LDQtdGCI?=", "Не работает"),  # a dangling sextet
    ("=?utf-8*ru?Q?=D0=A2=D0=B5=D1=81=D1=82?=", "Тест"),  # RFC 2231 language suffix
    ("=?x-unknown?Q?=D4=C5=D3=D4?=", "тест"),  # unknown label: detected (KOI8-R)
    ("=?utf-8?Q?no end", "=?utf-8?Q?no end"),  # not an encoded word: kept as written
    ("=?utf-8?B?0J/Q?=", "П\ufffd"),  # a character cut off at the end
])
def test_rfc_2047_subjects_decode_even_when_broken(raw_subject: str, expected: str) -> None:
    """MAIL-8: the subject is the ticket title; every mailer's encoded-word style must read."""
    msg = parse_message(f"From: a@sev.gov.ru\r\nSubject: {raw_subject}\r\n\r\nbody\r\n".encode())
    assert msg.subject == expected


def test_addresses_are_decoded_split_and_lower_cased() -> None:
    """MAIL-1, APL-1: display names give the applicant's ФИО; addresses compare case-insensitively."""
    raw = raw_mail(
        'From: "=?utf-8?B?0JjQstCw0L3QvtCyLCDQmNCy0LDQvQ==?=" <Ivanov@SEV.gov.ru>\n'
        "To: help@sev.gov.ru, =?koi8-r?B?8MXU0s/XwQ==?= <Petrova@Sev.Gov.Ru>\n"
        "Cc: undisclosed-recipients:;\nReply-To: <Reply@Sev.Gov.Ru>\nSubject: x", b"x\n")
    msg = parse_message(raw)
    assert (msg.from_name, msg.from_addr) == ("Иванов, Иван", "ivanov@sev.gov.ru")
    assert msg.to == ("help@sev.gov.ru", "petrova@sev.gov.ru")
    assert msg.cc == ()
    assert msg.reply_to == ("reply@sev.gov.ru",)
    assert msg.headers["to"] == ["help@sev.gov.ru, Петрова <Petrova@Sev.Gov.Ru>"]


def test_message_ids_keep_one_canonical_form() -> None:
    """MAIL-4, OUT-1: ids match what we stored when sending: <id@host>, folding whitespace removed."""
    raw = raw_mail(
        "From: a@sev.gov.ru\nMessage-ID:\n <abc.123@\n sev.gov.ru>\n"
        "In-Reply-To: <hd-1@help.sev.gov.ru> (Служба's message of 1 Dec)\n"
        "References: <root@sev.gov.ru>\n\t<hd-1@help.sev.gov.ru> <root@sev.gov.ru>", b"x\n", "utf-8")
    msg = parse_message(raw)
    assert msg.message_id == "<abc.123@sev.gov.ru>"
    assert msg.in_reply_to == "<hd-1@help.sev.gov.ru>"
    assert msg.references == ("<root@sev.gov.ru>", "<hd-1@help.sev.gov.ru>")
    bare = parse_message(b"From: a@b\r\nMessage-ID: abc@host\r\n\r\n")
    assert bare.message_id == "<abc@host>"


@pytest.mark.parametrize(("value", "expected"), [
    ("Mon, 23 Nov 2026 09:14:58 +0300", datetime(2026, 11, 23, 6, 14, 58, tzinfo=UTC)),
    ("23 Nov 2026 09:14:58 -0000", datetime(2026, 11, 23, 9, 14, 58, tzinfo=UTC)),
    ("вчера вечером", None),
])
def test_dates_are_time_zone_aware_or_absent(value: str, expected: datetime | None) -> None:
    """MAIL-7: deadlines are computed from aware datetimes; an unreadable Date is a defect, not a crash."""
    msg = parse_message(f"From: a@b\r\nDate: {value}\r\n\r\n".encode())
    assert msg.date == expected
    assert ("bad-date" in msg.defects) == (expected is None)


def test_every_header_is_kept_decoded_in_order() -> None:
    """LOOP-1, MAIL-2: rules read Auto-Submitted, Authentication-Results, Received... from `headers`."""
    msg = fixture("outlook_ru_cp1251_reply.eml")
    assert msg.header("X-MAILER") == "Microsoft Outlook 16.0"
    received = msg.headers["received"][0]
    assert received.startswith("from mail.gp3.sev.gov.ru (mail.gp3.sev.gov.ru [10.12.0.5]) ")
    assert "\n" not in received
    assert msg.headers["subject"] == ["RE: [HD-2026-000123] Не открывается карточка пациента"]
    assert msg.header("auto-submitted") is None


@pytest.mark.parametrize(("subject", "expected"), [
    ("Re: Ошибка", "Ошибка"),
    ("RE: Fwd: FW: Ошибка", "Ошибка"),
    ("AW: WG: Fehler", "Fehler"),
    ("Ответ: Отв: Пересл: Ошибка", "Ошибка"),
    ("RE[2]: Re(3): [HD-2026-000123] Ошибка", "[HD-2026-000123] Ошибка"),
    ("  re :Ошибка ", "Ошибка"),
    ("Реестр: выгрузка", "Реестр: выгрузка"),
    ("Report: error", "Report: error"),
])
def test_clean_subject_strips_reply_and_forward_prefixes(subject: str, expected: str) -> None:
    """MAIL-3, BOT-2: titles and routing use the subject without reply/forward prefixes."""
    assert clean_subject(subject) == expected


# -- bodies -----------------------------------------------------------------------------------


def test_html_only_yandex_mail_becomes_readable_text() -> None:
    """MAIL-8, BOT-2: HTML-only mail is shown as text (tables stay legible); the HTML is kept."""
    msg = fixture("yandex_html_only.eml")
    assert msg.content_type == "text/html"
    assert msg.html is not None and "<table" in msg.html
    assert "Добрый день!" in msg.text
    assert "Терапия №1  Таймаут сервера" in msg.text
    assert "<div>" not in msg.text
    assert "Смирнов Дмитрий Алексеевич" in msg.new_text
    assert "Пришлите, пожалуйста" in msg.text and "Пришлите" not in msg.new_text


def test_empty_plain_alternative_falls_back_to_the_html() -> None:
    """MAIL-8: some web clients send an empty text/plain next to the real HTML body."""
    outer = MIMEMultipart("alternative")
    outer["From"], outer["Subject"] = "a@sev.gov.ru", "x"
    outer.attach(MIMEText("", "plain", "utf-8"))
    outer.attach(MIMEText("<p>Не работает <b>печать</b></p>", "html", "utf-8"))
    msg = parse_message(outer.as_bytes())
    assert msg.text == "Не работает печать"


def test_text_has_unix_line_ends_and_no_nul_characters() -> None:
    """BOT-4, storage: NUL breaks PostgreSQL text columns; CRLF doubles lines in Telegram."""
    msg = parse_message(b"From: a@b\r\nSubject: a\x00b\r\n\r\nline one\x00\r\nline two\r\n")
    assert msg.subject == "ab"
    assert msg.text == "line one\nline two\n"


# -- attachments (MAIL-9) ---------------------------------------------------------------------


def test_attachment_bytes_are_exactly_what_was_sent() -> None:
    """MAIL-9: stored files are the sender's bytes (sha256 equal), whatever the transfer encoding."""
    rng = random.Random(9)
    screenshot, archive = rng.randbytes(50_000), rng.randbytes(7_777)
    # Quoted-printable carries text: its line breaks are CRLF, every other byte value is allowed.
    log_text = "Журнал ошибок\r\nстрока 2\r\n\tстрока 3 ".encode("cp1251") + bytes(range(256)).replace(
        b"\r", b"").replace(b"\n", b"")
    outer = MIMEMultipart()
    outer["From"], outer["To"] = "petrova@gp3.sev.gov.ru", "help@sev.gov.ru"
    outer["Subject"] = Header("Файлы", "utf-8").encode()
    outer.attach(MIMEText("Во вложении скриншот, архив и журнал.", "plain", "utf-8"))
    image = MIMEImage(screenshot, "png")
    image.add_header("Content-Disposition", "attachment", filename=("utf-8", "", "Скриншот 1.png"))
    outer.attach(image)
    zipped = MIMEApplication(archive, "zip")
    zipped.add_header("Content-Disposition", "attachment", filename=("utf-8", "", "Архив логов.zip"))
    outer.attach(zipped)
    qp_part = MIMEApplication(log_text, "octet-stream", _encoder=email.encoders.encode_quopri)
    qp_part.add_header("Content-Disposition", "attachment", filename="journal.log")
    outer.attach(qp_part)
    msg = parse_message(outer.as_bytes(policy=SMTP))  # CRLF, as IMAP delivers it
    by_name = {a.filename: a for a in msg.attachments}
    assert set(by_name) == {"Скриншот 1.png", "Архив логов.zip", "journal.log"}
    sent_files = {"Скриншот 1.png": screenshot, "Архив логов.zip": archive, "journal.log": log_text}
    for name, sent in sent_files.items():
        assert by_name[name].sha256 == hashlib.sha256(sent).hexdigest()
        assert by_name[name].size == len(sent)
    assert by_name["Скриншот 1.png"].content_type == "image/png"
    assert msg.text == "Во вложении скриншот, архив и журнал."


def test_thunderbird_and_outlook_attachment_names_in_cyrillic() -> None:
    """MAIL-9: RFC 2231 continuations (split mid-character), RFC 2047 in quotes, name= only,
    inline images, nameless files and attached letters all get the right names."""
    msg = fixture("thunderbird_attachments.eml")
    names = [(a.filename, a.content_type, a.inline) for a in msg.attachments]
    assert names == [
        ("attachment-1.png", "image/png", True),
        ("Протокол ошибки регистратуры поликлиники №3 от 23.11.2026.pdf", "application/pdf", False),
        ("Заявка на подключение.docx",
         "application/vnd.openxmlformats-officedocument.wordprocessingml.document", False),
        ("снимок экрана.jpg", "image/jpeg", False),
        ("attachment-5.zip", "application/zip", False),
        ("Ответ по заявке HD-2026-000123.eml", "message/rfc822", False),
    ]
    assert msg.attachments[1].content.startswith(b"%PDF-1.4")
    letter = parse_message(msg.attachments[-1].content)
    assert letter.subject == "Ответ по заявке HD-2026-000123"
    assert letter.text == "Проверьте доступ.\n"
    assert msg.text == "Скриншот ошибки:"


def test_an_attached_letter_is_stored_byte_for_byte() -> None:
    """MAIL-9: a letter forwarded as an attachment keeps its exact bytes (odd spacing included)."""
    letter = (b"Received: from x by y;  Mon, 30 Nov 2026 10:00:00 +0300 \r\nMessage-ID:  <odd@sev.gov.ru>\r\n"
              b"In-Reply-To:\r\nSubject: =?utf-8?B?0J7RiNC40LHQutCw?=\r\n\r\n\xd2\xe5\xea\xf1\xf2\r\n\r\n")
    raw = (b"From: a@sev.gov.ru\r\nSubject: Fw\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n"
           b"--b\r\nContent-Type: text/plain\r\n\r\nsee below\r\n"
           b"--b\r\nContent-Type: message/rfc822\r\n\r\n" + letter + b"\r\n--b--\r\n")
    msg = parse_message(raw)
    assert [(a.filename, a.content) for a in msg.attachments] == [("Ошибка.eml", letter)]


def test_file_names_lose_windows_paths_and_text_files_are_not_the_body() -> None:
    """MAIL-9: Outlook sends "C:\\Users\\...\\file"; a named text/plain part is a file, not the body."""
    outer = MIMEMultipart()
    outer["From"], outer["Subject"] = "a@sev.gov.ru", "x"
    outer.attach(MIMEText("Текст заявки", "plain", "utf-8"))
    log = MIMEText("ERROR 500", "plain", "utf-8")
    log.add_header("Content-Disposition", "inline", filename="C:\\Users\\reg\\Desktop\\ошибка.txt")
    outer.attach(log)
    msg = parse_message(outer.as_bytes())
    assert msg.text == "Текст заявки"
    files = [(a.filename, a.inline, a.content) for a in msg.attachments]
    assert files == [("ошибка.txt", True, b"ERROR 500")]


# -- quoted history (BOT-2: the card shows what the sender wrote now) ---------------------------


@pytest.mark.parametrize(("name", "new_text"), [
    ("yandex_reply.eml", "Спасибо, всё заработало!\n\n-- \nФёдорова Елена Юрьевна"),
    ("gmail_ru_reply.eml",
     "Пароль сбросили, но при входе теперь просит сертификат электронной подписи.\nЧто нужно сделать?"),
    ("mailru_reply.eml", "Добрый день, ошибка повторилась сегодня в 9:40, номер талона 0012-554."),
])
def test_web_mail_quotes_are_separated(name: str, new_text: str) -> None:
    """MAIL-4, BOT-2: Yandex ("date, "name" <addr>:"), Gmail-ru (wrapped "пн, ... <\\naddr>:"),
    Mail.ru ("Понедельник, ... от Name <addr>:") attributions start the quoted history."""
    assert fixture(name).new_text == new_text


@pytest.mark.parametrize(("body", "new_text"), [
    ("Проверьте ещё раз.\n\n-----Исходное сообщение-----\nОт: help@sev.gov.ru\nТема: Re\n\nСтарый текст\n",
     "Проверьте ещё раз."),
    ("Hello\n\n-----Original Message-----\nFrom: a@b\nSent: Monday\nTo: c@d\n\nOld\n", "Hello"),
    ("Ок.\n\n________________________________\nОт: Иванов И.И.\nОтправлено: 1 декабря 2026 г. 10:00\n"
     "Кому: help@sev.gov.ru\nТема: ошибка\n\nстарое\n", "Ок."),
    ("Готово\n\n22 нояб. 2026 г., в 10:15, Иван <ivanov@sev.gov.ru> написал(а):\n\n> старое\n", "Готово"),
    # Thunderbird bottom-posting: the quote comes first and the answer under it.
    ("22.11.2026 10:15, Иванов пишет:\n> Работает?\n\nДа, работает.\n", "Да, работает."),
])
def test_russian_quote_headers_are_separated(body: str, new_text: str) -> None:
    """MAIL-4, BOT-2: Outlook-ru, Thunderbird-ru and Apple Mail-ru headers, "Исходное сообщение"."""
    msg = parse_message(raw_mail(f"{PLAIN_UTF8}\nSubject: Re: x", body.encode()))
    assert msg.new_text == new_text


@pytest.mark.parametrize("body", [
    # Interleaved answers need their questions.
    "> Какой номер карты?\n123456\n> Какой логин?\nivanov_ii\n",
    # A colon at the end of the user's own line is not an attribution.
    "Прошу сделать следующее:\n1. сбросить пароль\n2. выдать права\n",
    # A single "От:" line in the user's text is not an Outlook header block.
    "От: регистратуры поликлиники №3\nПрошу подключить принтер.\n",
    # A quote header with nothing written above it: keep everything.
    "-----Исходное сообщение-----\nОт: a@b\nОтправлено: вчера\nКому: c@d\n\nтекст\n",
])
def test_when_unsure_the_whole_text_is_kept(body: str) -> None:
    """BOT-2: losing what the sender wrote is worse than showing a quote."""
    msg = parse_message(raw_mail(f"{PLAIN_UTF8}\nSubject: x", body.encode()))
    assert msg.new_text == msg.text == body


def test_a_forward_is_kept_whole() -> None:
    """MAIL-8: in a forward (Fwd:/Fw:/Пересл:) the forwarded letter is the content."""
    msg = fixture("forward_ru.eml")
    assert msg.new_text == msg.text
    assert "Просим обновить справочник в МИС." in msg.new_text


# -- bounces (LOOP-1) -------------------------------------------------------------------------


def test_the_bounce_detector_sees_the_parsed_message(monkeypatch: pytest.MonkeyPatch) -> None:
    """LOOP-1: parsing hands the email.message.Message to mailflow.bounces.detect_bounce."""
    seen: list[Message] = []

    def detect(msg: Message) -> BounceInfo | None:
        seen.append(msg)
        return BounceInfo(recipients=("gone@sev.gov.ru",), original_message_ids=("<hd-1@help>",))

    monkeypatch.setattr(parsing, "_detect_bounce", detect)
    msg = parse_message(b"From: MAILER-DAEMON@mx.sev.gov.ru\r\nSubject: Undelivered\r\n\r\nx\r\n")
    assert msg.bounce == BounceInfo(recipients=("gone@sev.gov.ru",), original_message_ids=("<hd-1@help>",))
    assert seen[0]["Subject"] == "Undelivered"


def test_a_failing_bounce_detector_is_recorded_not_raised(monkeypatch: pytest.MonkeyPatch) -> None:
    """DESIGN 6 reliability: a detector bug costs the bounce verdict, never the message."""

    def broken(msg: Message) -> BounceInfo | None:
        raise KeyError("boom")

    monkeypatch.setattr(parsing, "_detect_bounce", broken)
    msg = parse_message(b"From: a@b\r\nSubject: s\r\n\r\nx\r\n")
    assert msg.bounce is None and "bounce-detection-failed:KeyError" in msg.defects


def test_without_the_bounce_module_parsing_still_works(monkeypatch: pytest.MonkeyPatch) -> None:
    """LOOP-1: parsing does not depend on mailflow.bounces being importable."""
    monkeypatch.setattr(parsing, "_detect_bounce", None)
    monkeypatch.setitem(__import__("sys").modules, "mailflow.bounces", None)
    assert parse_message(b"From: a@b\r\n\r\nx\r\n").bounce is None


# -- garbage never raises (DESIGN 6: "no input crashes the pipeline") --------------------------


def _nested(depth: int) -> bytes:
    head = b"From: a@b\r\nContent-Type: multipart/mixed; boundary=b0\r\n\r\n"
    body = b"".join(b"--b%d\r\nContent-Type: multipart/mixed; boundary=b%d\r\n\r\n" % (i, i + 1)
                    for i in range(depth))
    return head + body + b"--b%d\r\n\r\ntext\r\n" % depth


GARBAGE = {
    "empty": b"",
    "binary junk": random.Random(1).randbytes(20_000),
    "only headers": b"From: a@sev.gov.ru\r\nSubject: no body",
    "no headers": b"\r\n\r\njust text",
    "broken boundary": b"From: a@b\r\nContent-Type: multipart/mixed; boundary=\"abc\"\r\n\r\n"
                       b"--abd\r\n\r\nhi\r\n",
    "missing close boundary": b"From: a@b\r\nContent-Type: multipart/mixed; boundary=abc\r\n\r\n--abc\r\n"
                              b"Content-Type: text/plain\r\n\r\nhello\r\n--abc\r\nContent-Type: ima",
    "multipart without boundary": b"From: a@b\r\nContent-Type: multipart/mixed\r\n\r\nhello\r\n",
    "deep nesting": _nested(200),
    "bad base64": b"From: a@b\r\nContent-Type: image/png; name=x.png\r\nContent-Transfer-Encoding: base64\r\n"
                  b"\r\n!!!not base64===\r\n",
    "unknown charset": b"From: a@b\r\nContent-Type: text/plain; charset=x-klingon\r\n\r\n"
                       b"\xd4\xc5\xd3\xd4\r\n",
    "codec that is not a charset": b"From: a@b\r\nContent-Type: text/plain; charset=base64\r\n\r\nabc\r\n",
    "content type without slash": b"From: a@b\r\nContent-Type: text\r\n\r\nhello\r\n",
    "bare CR line ends": b"From: a@b\rSubject: x\r\rbody\r",
    "huge header": b"Subject: " + b"=?utf-8?B?0J/Q?= " * 20_000 + b"\r\n\r\nx",
    "bad rfc2231": b"From: a@b\r\nContent-Type: multipart/mixed; boundary=q\r\n\r\n--q\r\n"
                   b"Content-Disposition: attachment; filename*0*=x-bogus'ru'%FF%FE; filename*1=\"\r\n"
                   b"\r\ndata\r\n--q--\r\n",
    "unix from line": b"From someone@example.com Mon Nov 30 10:00:00 2026\r\nFrom: a@b\r\n\r\nbody\r\n",
    "8-bit garbage in every header": b"From: \xff\xfe <\xff@\xfe>\r\nTo: \x80\r\nDate: \xff\r\n"
                                     b"Message-ID: <\xff>\r\nContent-Type: \xff/\xfe\r\n\r\n\xff\r\n",
}


@pytest.mark.parametrize("raw", GARBAGE.values(), ids=GARBAGE.keys())
def test_garbage_never_raises(raw: bytes) -> None:
    """DESIGN 6: malformed input gives a best-effort ParsedMessage; nothing raises."""
    msg = parse_message(raw)
    assert isinstance(msg, ParsedMessage)
    assert isinstance(msg.text, str) and "\x00" not in msg.text


def test_broken_boundaries_keep_the_text_and_say_why() -> None:
    """DESIGN 6: a body with a wrong boundary is still readable, and the defect is recorded."""
    msg = parse_message(GARBAGE["broken boundary"])
    assert "hi" in msg.text
    assert "StartBoundaryNotFoundDefect" in msg.defects


def test_a_header_only_message_has_its_headers() -> None:
    """DESIGN 6: a message cut off after its headers still has its sender and subject."""
    msg = parse_message(GARBAGE["only headers"])
    assert (msg.from_addr, msg.subject, msg.text) == ("a@sev.gov.ru", "no body", "")


def test_empty_input_is_an_empty_message() -> None:
    """DESIGN 6: nothing in, an empty record out, with the reason."""
    msg = parse_message(b"")
    assert (msg.subject, msg.from_addr, msg.text, msg.attachments) == ("", "", "", ())
    assert "no-from-address" in msg.defects


# -- the fast MIME path builds exactly the email package's tree --------------------------------


def message_shape(msg: Message) -> list[object]:
    """Everything the email package records about a parsed message, for comparison."""
    payload = msg._payload  # the raw payload: get_payload() would decode 8-bit text
    return [
        msg.get_unixfrom(), list(msg.raw_items()), msg.preamble, msg.epilogue,
        [type(d).__name__ for d in msg.defects], msg.get_default_type(),
        [message_shape(part) for part in payload] if isinstance(payload, list) else payload,
    ]


@pytest.mark.parametrize("raw", [
    *(path.read_bytes() for path in sorted(FIXTURES.glob("*.eml"))),
    *GARBAGE.values(),
    _nested(5),
    b"From: a@b\nContent-Type: multipart/mixed; boundary=x\n\npre\n--x\n\nA\n--x\n\nB\n\n--x--\nepi\n",
    b"From: a@b\r\nContent-Type: multipart/mixed; boundary=x\r\n\r\n--x\r\nContent-Type: multipart/"
    b"alternative; boundary=y\r\n\r\n--y\r\n\r\nA\r\n--y--\r\n\r\n--x--",
])
def test_the_fast_mime_path_matches_the_email_package(raw: bytes) -> None:
    """DESIGN 6 speed, without a different result: mime.message_from_bytes == email's parser."""
    assert message_shape(mime.message_from_bytes(raw)) == message_shape(email.message_from_bytes(raw))


def test_the_fast_path_is_taken_for_ordinary_mail() -> None:
    """DESIGN 6: well-formed mail must not silently fall back to the slow parser."""
    for path in FIXTURES.glob("*.eml"):
        raw = path.read_bytes()
        assert isinstance(mime._build(raw, (), 0), Message), path.name


def test_a_built_message_round_trips_through_the_email_package() -> None:
    """MAIL-9: an EmailMessage built by our own outgoing code parses back to the same content."""
    out = EmailMessage()
    out["From"] = "Служба поддержки <help@sev.gov.ru>"
    out["To"] = "petrova@gp3.sev.gov.ru"
    out["Subject"] = "[HD-2026-000123] Заявка зарегистрирована"
    out.set_content("Ваша заявка зарегистрирована.\nНомер: HD-2026-000123\n")
    out.add_attachment("Протокол".encode() * 100, maintype="application", subtype="pdf",
                       filename="Протокол № 5.pdf")
    msg = parse_message(out.as_bytes(policy=SMTP))
    assert (msg.from_name, msg.subject) == ("Служба поддержки", "[HD-2026-000123] Заявка зарегистрирована")
    assert msg.text == "Ваша заявка зарегистрирована.\nНомер: HD-2026-000123\n"
    assert [a.filename for a in msg.attachments] == ["Протокол № 5.pdf"]
    assert msg.attachments[0].content == "Протокол".encode() * 100
