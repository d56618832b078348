"""Bounce detection on hand-written reports: what failed, for whom, and which letter of ours it was.

LOOP-1: a bounce never opens a ticket, and a bounce of one of our letters is linked to its record
through the Message-ID of the returned letter.
"""

from __future__ import annotations

import email
from email.message import Message

import pytest

import mailflow.bounces as bounces
from mailflow.bounces import detect_bounce

OUR_ID = "<177000000.4242.99.inboxdesk@miac.sev.gov.ru>"


def parse(text: str) -> Message:
    return email.message_from_bytes(text.encode("utf-8"))


RFC3464_DSN = f"""\
Return-Path: <>
From: MAILER-DAEMON@mx.gb1.sev.gov.ru (Mail Delivery System)
To: help@miac.sev.gov.ru
Subject: Undelivered Mail Returned to Sender
Auto-Submitted: auto-replied
Message-Id: <20260112.AB12@mx.gb1.sev.gov.ru>
MIME-Version: 1.0
Content-Type: multipart/report; report-type=delivery-status; boundary="B1"

--B1
Content-Type: text/plain; charset=us-ascii

This is the mail system at host mx.gb1.sev.gov.ru.
I'm sorry to have to inform you that your message could not be delivered.

<sidorov@gb1.sev.gov.ru>: host said: 550 5.1.1 User unknown

--B1
Content-Type: message/delivery-status

Reporting-MTA: dns; mx.gb1.sev.gov.ru
Arrival-Date: Mon, 12 Jan 2026 10:00:00 +0300

Final-Recipient: rfc822; Sidorov@gb1.sev.gov.ru
Original-Recipient: rfc822;sidorov@gb1.sev.gov.ru
Action: failed
Status: 5.1.1
Diagnostic-Code: smtp; 550 5.1.1 User unknown

--B1
Content-Type: message/rfc822

Message-ID: {OUR_ID}
From: =?utf-8?b?0KLQtdGF0L/QvtC00LTQtdGA0LbQutCw?= <help@miac.sev.gov.ru>
To: sidorov@gb1.sev.gov.ru
Subject: [HD-2026-000123] =?utf-8?b?0JfQsNGP0LLQutCwINC/0YDQuNC90Y/RgtCw?=
X-Inboxdesk-Loop: help@miac.sev.gov.ru
Auto-Submitted: auto-replied

Ваша заявка зарегистрирована.

--B1--
"""


def test_rfc3464_dsn_names_recipient_and_our_letter() -> None:
    """Our acknowledgement to sidorov@ bounced: the DSN says who, and the returned letter says which."""
    info = detect_bounce(parse(RFC3464_DSN))
    assert info is not None
    assert info.recipients == ("sidorov@gb1.sev.gov.ru",)
    assert info.temporary is False
    assert info.original_message_ids == (OUR_ID,)


def test_dsn_delay_warning_is_temporary() -> None:
    """`Action: delayed` / `Status: 4.x.x` is a warning: the letter may still arrive (LOOP-1)."""
    delayed = RFC3464_DSN.replace("Action: failed", "Action: delayed").replace("5.1.1", "4.4.7")
    info = detect_bounce(parse(delayed.replace("Undelivered Mail Returned to Sender",
                                               "Delayed Mail (still being retried)")))
    assert info is not None and info.temporary is True
    assert info.recipients == ("sidorov@gb1.sev.gov.ru",)


def test_dsn_without_action_uses_the_status_class() -> None:
    no_action = RFC3464_DSN.replace("Action: failed\n", "")
    info = detect_bounce(parse(no_action))
    assert info is not None and info.temporary is False and info.recipients


def test_successful_delivery_receipt_is_not_a_bounce() -> None:
    """Exchange answers a delivery-receipt request with a DSN whose action is `delivered`."""
    receipt = RFC3464_DSN.replace("Action: failed", "Action: delivered").replace("5.1.1", "2.0.0")
    receipt = receipt.replace("Undelivered Mail Returned to Sender", "Доставлено: заявка")
    assert detect_bounce(parse(receipt)) is None


def test_read_receipt_is_not_a_bounce() -> None:
    mdn = """\
From: Petrov <petrov@sev.gov.ru>
To: help@miac.sev.gov.ru
Subject: =?utf-8?b?0J/RgNC+0YfQuNGC0LDQvdC+OiDQl9Cw0Y/QstC60LA=?=
MIME-Version: 1.0
Content-Type: multipart/report; report-type=disposition-notification; boundary="M"

--M
Content-Type: text/plain; charset=utf-8

Ваше сообщение прочитано.

--M
Content-Type: message/disposition-notification

Final-Recipient: rfc822; petrov@sev.gov.ru
Disposition: manual-action/MDN-sent-manually; displayed

--M--
"""
    assert detect_bounce(parse(mdn)) is None


QMAIL_BOUNCE = f"""\
Return-Path: <>
From: MAILER-DAEMON@mx1.clinic-example.ru
To: help@miac.sev.gov.ru
Subject: failure notice
Date: Mon, 12 Jan 2026 10:00:00 +0300
Message-Id: <20260112070000.1234.qmail@mx1.clinic-example.ru>

Hi. This is the qmail-send program at mx1.clinic-example.ru.
I'm afraid I wasn't able to deliver your message to the following addresses.
This is a permanent error; I've given up. Sorry it didn't work out.

<glavvrach@clinic-example.ru>:
Sorry, no mailbox here by that name. (#5.1.1)

--- Below this line is a copy of the message.

Return-Path: <help@miac.sev.gov.ru>
Received: (qmail 1234 invoked from network); 12 Jan 2026 07:00:00 -0000
Message-ID: {OUR_ID}
From: help@miac.sev.gov.ru
To: glavvrach@clinic-example.ru
Subject: [HD-2026-000123] Re: Printer

Answer from the helpdesk.
"""


def test_qmail_bounce_quotes_our_headers_in_the_body() -> None:
    """qmail sends no DSN: flufl.bounce finds the address, the quoted headers give our Message-ID."""
    info = detect_bounce(parse(QMAIL_BOUNCE))
    assert info is not None
    assert info.recipients == ("glavvrach@clinic-example.ru",)
    assert info.temporary is False
    assert info.original_message_ids == (OUR_ID,)


RUSSIAN_EXCHANGE_NDR = f"""\
From: Microsoft Outlook <MicrosoftExchange329e71ec88ae4615bbc36ab6ce41109e@gb3.sev.gov.ru>
To: help@miac.sev.gov.ru
Subject: =?utf-8?b?0J3QtSDRg9C00LDQtdGC0YHRjyDQtNC+0YHRgtCw0LLQuNGC0Yw6IFtIRC0yMDI2LTAwMDEy?=
 =?utf-8?b?M10g0J/RgNC40L3RgtC10YA=?=
Date: Mon, 12 Jan 2026 10:00:00 +0300
Message-ID: <ndr-1@gb3.sev.gov.ru>
X-MS-Exchange-Message-Is-Ndr:
Content-Language: ru-RU
MIME-Version: 1.0
Content-Type: multipart/report; report-type=delivery-status; boundary="NDR"

--NDR
Content-Type: text/plain; charset="utf-8"
Content-Transfer-Encoding: 8bit

Не удалось доставить сообщение следующим получателям или группам:

kozlova@gb3.sev.gov.ru
Указанный адрес электронной почты не найден.

--NDR
Content-Type: message/delivery-status

Reporting-MTA: dns;mail.gb3.sev.gov.ru

Final-Recipient: rfc822;kozlova@gb3.sev.gov.ru
Action: failed
Status: 5.1.10
Diagnostic-Code: smtp;550 5.1.10 RESOLVER.ADR.RecipientNotFound; Recipient not found

--NDR
Content-Type: text/rfc822-headers

Message-ID:
 {OUR_ID}
From: help@miac.sev.gov.ru
To: kozlova@gb3.sev.gov.ru
Subject: [HD-2026-000123] Printer

--NDR--
"""


def test_russian_exchange_ndr_with_headers_only() -> None:
    """Exchange in Russian: «Не удается доставить: …», a DSN part and the original headers only."""
    info = detect_bounce(parse(RUSSIAN_EXCHANGE_NDR))
    assert info is not None
    assert info.recipients == ("kozlova@gb3.sev.gov.ru",)
    assert info.original_message_ids == (OUR_ID,)


def test_russian_plain_text_bounce_without_dsn() -> None:
    """An old Russian-language server with no DSN part: the address list is read from the text."""
    text = f"""\
From: "Почтовая служба" <postmaster@hospital-example.ru>
To: help@miac.sev.gov.ru
Subject: =?utf-8?b?0J3QtdC00L7RgdGC0LDQstC70LXQvdC90L7QtSDRgdC+0L7QsdGJ0LXQvdC40LU=?=
Content-Type: text/plain; charset=utf-8
Content-Transfer-Encoding: 8bit

Сообщение не удалось доставить следующим получателям:

  registratura@hospital-example.ru

--- Заголовки исходного сообщения ---
Message-ID: {OUR_ID}
Subject: [HD-2026-000123]
"""
    info = detect_bounce(parse(text))
    assert info is not None
    assert info.recipients == ("registratura@hospital-example.ru",)
    assert info.original_message_ids == (OUR_ID,)


def test_exim_failed_recipients_header() -> None:
    text = """\
From: Mail Delivery System <Mailer-Daemon@mx.example.ru>
To: help@miac.sev.gov.ru
Subject: Mail delivery failed: returning message to sender
X-Failed-Recipients: nobody@example.ru

This message was created automatically by mail delivery software.
"""
    info = detect_bounce(parse(text))
    assert info is not None and info.recipients == ("nobody@example.ru",)


def test_delay_subject_marks_a_warning_when_nothing_else_says() -> None:
    text = """\
From: MAILER-DAEMON@mx.example.ru
To: help@miac.sev.gov.ru
Subject: Warning: could not send message for past 4 hours

    **********************************************
    **      THIS IS A WARNING MESSAGE ONLY      **
    **  YOU DO NOT NEED TO RESEND YOUR MESSAGE  **
    **********************************************
"""
    info = detect_bounce(parse(text))
    assert info is not None and info.temporary is True


# -- ordinary mail that must reach the desk ------------------------------------------------------


ORDINARY = """\
Return-Path: <ivanova@gb1.sev.gov.ru>
From: =?utf-8?b?0JjQstCw0L3QvtCy0LAg0JzQsNGA0LjRjw==?= <ivanova@gb1.sev.gov.ru>
To: help@miac.sev.gov.ru
Subject: {subject}
Message-ID: <abc@gb1.sev.gov.ru>
User-Agent: Thunderbird
Content-Type: text/plain; charset=utf-8
Content-Transfer-Encoding: 8bit

{body}
"""


@pytest.mark.parametrize(("subject", "body"), [
    ("Не открывается ЕМИАС", "Добрый день! Не открывается расписание."),
    # A person writing about undelivered mail is asking for help, not bouncing.
    ("Undelivered письма в Минздрав", "Письма в Минздрав не доходят уже второй день."),
    ("Mail delivery failed", "Коллеги, при отправке пишет Mail delivery failed, что делать?"),
    # A forwarded bounce, quoted inline: the very text flufl.bounce would recognise.
    ("Fwd: Undelivered Mail Returned to Sender",
     "Помогите, письмо не ушло:\n\n-------- Пересылаемое сообщение --------\n"
     "This is the mail system at host mx.gb1.sev.gov.ru.\n\n"
     "<minzdrav@example.ru>: host mx.example.ru said: 550 5.1.1 User unknown\n"),
    ("Пересл.: Недоставленное сообщение",
     "Hi. This is the qmail-send program at mx1.\n"
     "I'm afraid I wasn't able to deliver your message to the following addresses.\n\n"
     "<a@example.ru>:\nSorry, no mailbox here by that name.\n"),
])
def test_people_writing_about_bounces_are_not_bounces(subject: str, body: str) -> None:
    """MAIL-1/LOOP-1: staff who ask why their mail does not arrive must get a ticket."""
    assert detect_bounce(parse(ORDINARY.format(subject=subject, body=body))) is None


def test_person_attaching_the_bounce_they_got_is_not_a_bounce() -> None:
    """The attached .eml is a daemon's report; the letter around it is a person's request."""
    text = f"""\
From: Ivanova <ivanova@gb1.sev.gov.ru>
To: help@miac.sev.gov.ru
Subject: Mail could not be delivered
MIME-Version: 1.0
Content-Type: multipart/mixed; boundary="X"

--X
Content-Type: text/plain; charset=utf-8

Письмо вернулось, смотрите вложение.

--X
Content-Type: message/rfc822

{QMAIL_BOUNCE}
--X--
"""
    assert detect_bounce(parse(text)) is None


def test_postmaster_is_a_person_too() -> None:
    """The domain's postmaster may write to the helpdesk; without a bounce's marks it is a letter."""
    text = ORDINARY.format(subject="Смена MX-записей", body="Завтра меняем MX.").replace(
        "ivanova@gb1.sev.gov.ru", "postmaster@gb1.sev.gov.ru")
    assert detect_bounce(parse(text)) is None


def test_ordinary_mail_never_reaches_flufl(monkeypatch: pytest.MonkeyPatch) -> None:
    """The slow detectors run only for messages that look like bounces (intake budget, DESIGN §6)."""
    def fail(_msg: Message) -> None:
        raise AssertionError("flufl.bounce called for ordinary mail")

    monkeypatch.setattr(bounces, "all_failures", fail)
    body = "Добрый день!"
    assert detect_bounce(parse(ORDINARY.format(subject="Заявка", body=body))) is None
    raw = ORDINARY.format(subject="Заявка", body=body).encode("utf-8").replace(
        b"Subject: ", "Subject: Привет ".encode())  # raw 8-bit header, as Outlook sometimes sends
    assert detect_bounce(email.message_from_bytes(raw)) is None


# -- never raises ----------------------------------------------------------------------------------


@pytest.mark.parametrize("raw", [
    b"",
    b"\x00\xff\xfe garbage",
    b"From: <>\nSubject: failure notice\nContent-Type: multipart/report; boundary=\n\n--\n",
    b"From: MAILER-DAEMON@x\nContent-Type: multipart/report; report-type=delivery-status; boundary=Q\n\n"
    b"--Q\nContent-Type: message/delivery-status\nContent-Transfer-Encoding: base64\n\n!!!notbase64\n--Q--\n",
    b"From: MAILER-DAEMON@x\nSubject: =?bogus-charset?q?=FF?=\n"
    b"Content-Type: text/plain; charset=x-nope\n\n\xff",
])
def test_detect_bounce_never_raises(raw: bytes) -> None:
    detect_bounce(email.message_from_bytes(raw))


def test_a_failing_detector_does_not_stop_intake(monkeypatch: pytest.MonkeyPatch) -> None:
    """flufl.bounce re-raises its detectors' errors; the DSN and the headers still decide."""
    def boom(_msg: Message) -> None:
        raise ValueError("detector crashed")

    monkeypatch.setattr(bounces, "all_failures", boom)
    info = detect_bounce(parse(QMAIL_BOUNCE))
    assert info is not None and info.original_message_ids == (OUR_ID,)
    assert detect_bounce(parse(RFC3464_DSN)) is not None


def test_broken_encoded_subject_does_not_hide_a_bounce() -> None:
    text = (b"From: MAILER-DAEMON@mx.example.ru\n"
            b"Subject: =?utf-8?b?!!!?= Undelivered Mail Returned to Sender\n"
            b"\nThe following addresses failed:\n\n  nobody@example.ru\n")
    info = detect_bounce(email.message_from_bytes(text))
    assert info is not None and info.recipients == ("nobody@example.ru",)
