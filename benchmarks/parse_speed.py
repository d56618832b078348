"""How many messages per second `parse_message` turns into `ParsedMessage` on one core.

Generates a deterministic corpus shaped like the support mailbox (DESIGN 6): Russian requests of
~24 KiB on average, a fifth with attachments, utf-8/windows-1251/KOI8-R bodies in
quoted-printable/base64/8bit, Outlook-style HTML alternatives, replies with quoted history.

    .venv/bin/python benchmarks/parse_speed.py [--count 2000] [--profile]
"""

from __future__ import annotations

import argparse
import base64
import quopri
import random
import sys
import time
from datetime import datetime, timedelta, timezone
from email.header import Header
from email.utils import format_datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from mailflow.parsing import parse_message

_VOCABULARY = (
    "пациент карточка ЕМИАС ошибка запись приём врач талон расписание медицинская организация "
    "поликлиника больница отделение направление рецепт льготный лекарственный препарат выписка "
    "система не открывается сервер доступ пароль логин учётная запись сертификат электронная подпись "
    "при попытке сохранить появляется сообщение прошу помочь срочно исправить проверить настроить "
    "компьютер принтер сканер рабочее место регистратура заведующий главный врач кабинет участок "
    "лаборатория анализы результаты исследования ОМС полис СНИЛС паспорт данные обновление версия "
    "после вчерашнего обновления перестала работать печать не формируется отчёт за месяц "
    "диспансеризация профилактический осмотр вакцинация сертификат больничный лист ЭЛН ФСС"
)
_WORDS = _VOCABULARY.split()
_NAMES = ("Иванов Иван Иванович", "Петрова Мария Сергеевна", "Сидоренко Олег Петрович",
          "Кузнецова Анна Викторовна", "Смирнов Дмитрий Алексеевич", "Фёдорова Елена Юрьевна")
_SUBJECTS = ("Не открывается карточка пациента", "Ошибка при записи на приём",
             "Не работает печать рецептов", "Сбой электронной подписи", "Нет доступа к ЕМИАС",
             "Просьба сбросить пароль", "Не формируется отчёт по диспансеризации")
_CHARSETS = ("utf-8", "utf-8", "windows-1251", "windows-1251", "koi8-r")
_CTES = ("quoted-printable", "base64", "8bit")


def _sentence(rng: random.Random) -> str:
    words = rng.choices(_WORDS, k=rng.randint(6, 16))
    return words[0].capitalize() + " " + " ".join(words[1:]) + rng.choice((".", ".", "!", "?"))


def _paragraphs(rng: random.Random, size: int) -> str:
    out: list[str] = []
    length = 0
    while length < size:
        para = " ".join(_sentence(rng) for _ in range(rng.randint(2, 6)))
        out.append(para)
        length += len(para.encode("utf-8"))
    return "\n\n".join(out)


def _encode_body(text: str, charset: str, cte: str) -> bytes:
    data = text.encode(charset, "replace")
    if cte == "base64":  # canonical CRLF text inside, CRLF lines outside
        return base64.encodebytes(data.replace(b"\n", b"\r\n")).replace(b"\n", b"\r\n")
    if cte == "quoted-printable":
        return quopri.encodestring(data).replace(b"\n", b"\r\n")
    return data.replace(b"\n", b"\r\n")


def _part(ctype: str, charset: str, cte: str, text: str) -> bytes:
    head = f"Content-Type: {ctype}; charset={charset}\r\nContent-Transfer-Encoding: {cte}\r\n\r\n"
    return head.encode("ascii") + _encode_body(text, charset, cte)


def _attachment(rng: random.Random, index: int) -> bytes:
    name = rng.choice(("Скриншот ошибки", "Протокол", "Выгрузка журнала", "scan"))
    ext, ctype = rng.choice(((".png", "image/png"), (".pdf", "application/pdf"), (".docx",
                             "application/vnd.openxmlformats-officedocument.wordprocessingml.document")))
    filename = f"{name} {index}{ext}"
    payload = base64.encodebytes(rng.randbytes(rng.randint(15_000, 45_000))).replace(b"\n", b"\r\n")
    if rng.random() < 0.5:  # Thunderbird / RFC 2231
        from urllib.parse import quote

        disp = f"attachment; filename*=utf-8''{quote(filename)}"
        head = f'Content-Type: {ctype}; name="{Header(filename, "utf-8").encode()}"\r\n'
    else:  # Outlook / RFC 2047 in quotes
        encoded = Header(filename, "utf-8").encode()
        disp = f'attachment; filename="{encoded}"'
        head = f'Content-Type: {ctype}; name="{encoded}"\r\n'
    head += f"Content-Transfer-Encoding: base64\r\nContent-Disposition: {disp}\r\n\r\n"
    return head.encode("ascii") + payload


def generate_message(rng: random.Random, number: int) -> bytes:
    """One realistic support email as raw bytes (CRLF line ends, as IMAP delivers them)."""
    charset, cte = rng.choice(_CHARSETS), rng.choice(_CTES)
    name = rng.choice(_NAMES)
    sender = f"user{number % 97}@sev.gov.ru"
    subject = rng.choice(_SUBJECTS)
    reply = rng.random() < 0.4
    if reply:
        subject = "RE: " + subject
    when = datetime(2026, 11, 2, 9, tzinfo=timezone(timedelta(hours=3))) + timedelta(minutes=number)
    body = _paragraphs(rng, rng.randint(1_500, 7_000))
    body += f"\n\nС уважением,\n{name}\nтел. +7 (8692) 55-{number % 90 + 10}-00"
    if reply:
        body += (f"\n\nОт: Служба поддержки <help@sev.gov.ru>\nОтправлено: {format_datetime(when)}\n"
                 f"Кому: {sender}\nТема: {subject[4:]}\n\n" + _paragraphs(rng, rng.randint(500, 3_000)))
    headers = [
        f"Received: from mx{number % 7}.sev.gov.ru (mx.sev.gov.ru [10.0.0.{number % 250}]) by "
        f"mail.sev.gov.ru with ESMTPS id {number:08x}; {format_datetime(when)}",
        "Received: from [192.168.1.10] by relay.sev.gov.ru with ESMTP; " + format_datetime(when),
        "Authentication-Results: mail.sev.gov.ru; dkim=pass header.d=sev.gov.ru; spf=pass",
        "DKIM-Signature: v=1; a=rsa-sha256; d=sev.gov.ru; s=mail; h=from:to:subject:date;\r\n"
        "\tbh=" + base64.b64encode(rng.randbytes(32)).decode() + ";\r\n\tb=" +
        base64.b64encode(rng.randbytes(128)).decode(),
        f"From: {Header(name, charset).encode()} <{sender}>",
        "To: help@sev.gov.ru",
        f"Subject: {Header(subject, rng.choice(('utf-8', charset))).encode()}",
        f"Date: {format_datetime(when)}",
        f"Message-ID: <{number}.{rng.getrandbits(40):x}@sev.gov.ru>",
        "MIME-Version: 1.0",
        "X-Mailer: Microsoft Outlook 16.0",
    ]
    if reply:
        headers += [f"In-Reply-To: <hd-{number}@help.sev.gov.ru>",
                    f"References: <root-{number}@sev.gov.ru> <hd-{number}@help.sev.gov.ru>"]
    parts = [_part("text/plain", charset, cte, body)]
    if rng.random() < 0.6:  # Outlook sends an HTML alternative
        html = "<html><head><style>p{margin:0}</style></head><body>" + "".join(
            f"<p>{p}</p>" for p in body.split("\n\n")) + "</body></html>"
        alt = b"--alt\r\n" + parts[0] + b"\r\n--alt\r\n" + _part("text/html", charset, cte, html)
        parts = [b"Content-Type: multipart/alternative; boundary=alt\r\n\r\n" + alt + b"\r\n--alt--"]
    elif rng.random() < 0.15:  # some clients send HTML only
        html = "<html><body>" + "".join(f"<p>{p}</p>" for p in body.split("\n\n")) + "</body></html>"
        parts = [_part("text/html", charset, cte, html)]
    if number % 5 == 0:
        parts += [_attachment(rng, i) for i in range(rng.randint(1, 2))]
    if len(parts) == 1:
        head, _, rest = parts[0].partition(b"\r\n\r\n")
        return "\r\n".join(headers).encode("ascii") + b"\r\n" + head + b"\r\n\r\n" + rest
    mixed = b"".join(b"--mix\r\n" + p + b"\r\n" for p in parts) + b"--mix--\r\n"
    headers.append('Content-Type: multipart/mixed; boundary="mix"')
    return "\r\n".join(headers).encode("ascii") + b"\r\n\r\n" + mixed


def generate_corpus(count: int = 2000, seed: int = 20261122) -> list[bytes]:
    """`count` messages, the same for the same seed."""
    rng = random.Random(seed)
    return [generate_message(rng, n) for n in range(count)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--profile", action="store_true")
    args = parser.parse_args()
    corpus = generate_corpus(args.count)
    size = sum(map(len, corpus))
    print(f"{len(corpus)} messages, {size / len(corpus) / 1024:.1f} KiB average, "
          f"{sum(b'Content-Disposition: attachment' in m for m in corpus)} with attachments")
    parse_message(corpus[0])  # imports and lazy set-up outside the timing
    if args.profile:
        import cProfile
        import pstats

        profiler = cProfile.Profile()
        profiler.enable()
        for raw in corpus:
            parse_message(raw)
        profiler.disable()
        pstats.Stats(profiler).sort_stats("tottime").print_stats(30)
        return
    best = 0.0
    for _ in range(args.rounds):
        started = time.perf_counter()
        for raw in corpus:
            parse_message(raw)
        best = max(best, len(corpus) / (time.perf_counter() - started))
    print(f"parse_message: {best:.0f} msg/s (best of {args.rounds} rounds, one core)")


if __name__ == "__main__":
    main()
