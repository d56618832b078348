"""Intake throughput end to end: a private Dovecot full of Russian support mail → `run --once`.

Generates N realistic support requests (DESIGN §6: ~24.5 KiB on average, a fifth with
attachments, utf-8 / windows-1251 / KOI8-R bodies in base64, quoted-printable or raw 8-bit,
RFC 2047 / RFC 2231 names, Outlook HTML alternatives, replies with quoted history and
In-Reply-To/References, all from @sev.gov.ru), loads them into a private Dovecot with MULTIAPPEND,
writes a settings.toml (IMAP source without TLS, SQLite file or a fresh PostgreSQL database,
Maildir outbound) and measures:

- in process: `Daemon(App(load_settings(path))).poll_mailbox(box)` — connect, fetch, record,
  parse, decide, open tickets, compose and queue acknowledgements, flag the mailbox; then,
  separately, the outbox delivery to the Maildir outbound folder;
- the whole `inboxdesk run --once` process (interpreter start, migrations, intake and delivery)
  on a fresh database against the same mailbox.

After each run it checks the result: N tickets, N inbound rows `ticket`/`acked`, N acknowledgements
queued, every stored body containing its message's own Cyrillic phrase, subjects decoded, and
attachments byte-identical (sha256).

    .venv/bin/python benchmarks/ingest.py [--n 2000] [--db sqlite|postgres] [--workers auto|0|1|2]
                                          [--repeat 1] [--profile FILE] [--no-cli]

Needs root and the Debian package dovecot-imapd (see ../shared/TESTING.md).
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import hashlib
import json
import logging
import os
import quopri
import random
import secrets
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from email.header import Header
from email.utils import format_datetime
from pathlib import Path
from urllib.parse import quote

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

# Imports after the path fix-up above.
from sqlalchemy import func, select  # noqa: E402

from inboxdesk.app import App  # noqa: E402
from inboxdesk.daemon import Daemon  # noqa: E402
from inboxdesk.settings import load_settings  # noqa: E402
from storage.models import Attachment, InboundMessage, OutboxItem, Ticket, TicketMessage  # noqa: E402
from tests.servers.dovecot import DovecotServer  # noqa: E402

MAILBOX = "help@miac.example"
PASSWORD_ENV = "INBOXDESK_BENCH_IMAP_PASSWORD"

# -- the corpus ----------------------------------------------------------------------------------

_VOCABULARY = (
    "пациент карточка ЕМИАС ошибка запись приём врач талон расписание медицинская организация "
    "поликлиника больница отделение направление рецепт льготный лекарственный препарат выписка "
    "система не открывается сервер доступ пароль логин учётная запись сертификат электронная подпись "
    "при попытке сохранить появляется сообщение прошу помочь срочно исправить проверить настроить "
    "компьютер принтер сканер рабочее место регистратура заведующий главный врач кабинет участок "
    "лаборатория анализы результаты исследования ОМС полис СНИЛС паспорт данные обновление версия "
    "после вчерашнего обновления перестала работать печать не формируется отчёт за месяц "
    "диспансеризация профилактический осмотр вакцинация больничный лист ЭЛН ФСС ёлка щука съезд"
)
_WORDS = _VOCABULARY.split()
_MARK_WORDS = ("берёза", "жёлудь", "щавель", "подъезд", "эхолот", "юрта", "чайка", "фазан", "цапля",
               "шмель", "ястреб", "хорёк", "гвоздика", "зяблик", "иволга", "клюква", "ландыш", "мята")
_NAMES = ("Иванов Иван Иванович", "Петрова Мария Сергеевна", "Сидоренко Олег Петрович",
          "Кузнецова Анна Викторовна", "Смирнов Дмитрий Алексеевич", "Фёдорова Елена Юрьевна",
          "Щербакова Юлия Эдуардовна", "Ёлкин Артём Вячеславович")
_SUBJECTS = ("Не открывается карточка пациента", "Ошибка при записи на приём",
             "Не работает печать рецептов", "Сбой электронной подписи", "Нет доступа к ЕМИАС",
             "Просьба сбросить пароль", "Не формируется отчёт по диспансеризации",
             "Ошибка выгрузки ЭЛН в ФСС")
_CHARSETS = ("utf-8", "utf-8", "windows-1251", "windows-1251", "koi8-r")
_CTES = ("quoted-printable", "base64", "8bit")


@dataclass
class Expected:
    """What the stored records of one generated message must show."""

    message_id: str
    subject: str
    phrase: str
    charset: str
    cte: str
    attachments: dict[str, str] = field(default_factory=dict)  # filename -> sha256


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
    data = text.replace("\n", "\r\n").encode(charset)
    if cte == "base64":
        return base64.encodebytes(data).replace(b"\n", b"\r\n")
    if cte == "quoted-printable":
        return quopri.encodestring(data).replace(b"\n", b"\r\n")
    return data


def _part(ctype: str, charset: str, cte: str, text: str) -> bytes:
    head = f"Content-Type: {ctype}; charset={charset}\r\nContent-Transfer-Encoding: {cte}\r\n\r\n"
    return head.encode("ascii") + _encode_body(text, charset, cte)


def _attachment(rng: random.Random, number: int, index: int) -> tuple[str, bytes, bytes]:
    """(file name, content, MIME part)."""
    name = rng.choice(("Скриншот ошибки", "Протокол", "Выгрузка журнала", "scan", "Акт № 5"))
    ext, ctype = rng.choice(((".png", "image/png"), (".pdf", "application/pdf"), (".docx",
                             "application/vnd.openxmlformats-officedocument.wordprocessingml.document")))
    filename = f"{name} {number}-{index}{ext}"
    content = rng.randbytes(rng.randint(12_000, 40_000))
    payload = base64.encodebytes(content).replace(b"\n", b"\r\n")
    if rng.random() < 0.5:  # Thunderbird: RFC 2231
        disp = f"attachment; filename*=utf-8''{quote(filename)}"
        head = f'Content-Type: {ctype}; name="{Header(filename, "utf-8").encode()}"\r\n'
    else:  # Outlook: RFC 2047 words in quotes
        encoded = Header(filename, "utf-8").encode(maxlinelen=10_000)
        disp = f'attachment; filename="{encoded}"'
        head = f'Content-Type: {ctype}; name="{encoded}"\r\n'
    head += f"Content-Transfer-Encoding: base64\r\nContent-Disposition: {disp}\r\n\r\n"
    return filename, content, head.encode("ascii") + payload


FORM_SHARE = 0.7  # requests that follow the form; the others get the desk's "please add" letter
_ORGS = ("ГБУЗС «Городская больница №1 им. Н.И. Пирогова»", "ГБУЗС «Городская больница №5»",
         "ГБУЗС «Севастопольская районная больница»", "ГБУЗС «Центр медицинской реабилитации»")
_POSITIONS = ("медицинский регистратор", "врач-терапевт участковый", "медицинская сестра", "экономист")
_LOGINS = ("ivanova_mp", "petrenko_ov", "sidorenko_op", "kuznetsova_av", "smirnov_da", "fedorova_eyu")
_STEPS = ("Регистратура → Расписание стандартное → при записи пациента к врачу выходит ошибка",
          "ОМС -> Счета -> Формирование реестров -> выбираю период, нажимаю «Сформировать»",
          "Открываю ЭМК пациента, выбираю протокол, нажимаю «Подписать и отправить в РЭМД»")
_ERRORS = ("«Сертификат ключа подписи не найден или недействителен»",
           "«Шаблона посещения для данной услуги не существует»",
           "Не удалось сформировать реестр: ORA-01400: cannot insert NULL")


def _form(rng: random.Random, number: int, name: str) -> str:
    applicant = (f"{name}, {rng.choice(_POSITIONS)}, {rng.choice(_ORGS)}, "
                 f"8 (8692) {number % 90 + 10}-{number % 77 + 10}-{number % 50 + 10}")
    surname, first, middle = name.split()
    login = rng.choice(_LOGINS)
    rows = [("Данные о заявителе", applicant),
            ("ФИО пользователя, логин", f"{surname} {first[0]}.{middle[0]}., {login}"),
            ("Данные пациента", f"Сидоров А.А., № карты {40000 + number}"),
            ("Последовательность выполняемых действий", rng.choice(_STEPS)),
            ("Описание ошибки", rng.choice(_ERRORS)), ("Скриншоты", "во вложении")]
    separator = rng.choice((": ", "\t"))  # typed with colons, or a Word table pasted with tabs
    return "\n".join(f"{label}{separator}{value}" for label, value in rows)


def generate_message(rng: random.Random, number: int, senders: int) -> tuple[bytes, Expected]:
    """One support request as raw bytes (CRLF line ends, as IMAP delivers them)."""
    charset, cte = rng.choice(_CHARSETS), rng.choice(_CTES)
    name = rng.choice(_NAMES)
    sender = f"user{number % senders}@sev.gov.ru"
    subject = f"{rng.choice(_SUBJECTS)} (кабинет {number})"
    reply = rng.random() < 0.4  # answers to mail from elsewhere: routing looks them up, finds nothing
    if reply:
        subject = "RE: " + subject
    when = datetime(2026, 11, 2, 9, tzinfo=timezone(timedelta(hours=3))) + timedelta(minutes=number)
    phrase = f"Контрольная фраза {number}: {' '.join(rng.choices(_MARK_WORDS, k=3))}"
    body = f"Добрый день!\n\n{phrase}.\n\n"
    if rng.random() < FORM_SHARE:  # the Appendix-1 form of the regulation, filled in (MAIL-8)
        form = _form(rng, number, name)
        if charset == "koi8-r":  # KOI8-R has no «» or №: its users type " and N
            form = form.replace("«", '"').replace("»", '"').replace("№", "N")
        body += form + "\n\n"
    body += _paragraphs(rng, rng.randint(1_000, 6_300))
    body += f"\n\nС уважением,\n{name}\nтел. +7 (8692) 55-{number % 90 + 10}-00"
    if reply:
        body += (f"\n\nОт: Служба поддержки <help@sev.gov.ru>\nОтправлено: {format_datetime(when)}\n"
                 f"Кому: {sender}\nТема: {subject[4:]}\n\n" + _paragraphs(rng, rng.randint(500, 3_000)))
    for fitting in (charset, "windows-1251", "utf-8"):  # as a mail client picks one that fits
        try:
            body.encode(fitting)
        except UnicodeEncodeError:
            continue
        charset = fitting
        break
    message_id = f"<{number}.{rng.getrandbits(40):x}@sev.gov.ru>"
    headers = [
        f"Received: from mx{number % 7}.sev.gov.ru (mx.sev.gov.ru [10.0.0.{number % 250}]) by "
        f"mail.sev.gov.ru with ESMTPS id {number:08x}; {format_datetime(when)}",
        "Received: from [192.168.1.10] by relay.sev.gov.ru with ESMTP; " + format_datetime(when),
        "Authentication-Results: mail.sev.gov.ru; dkim=pass header.d=sev.gov.ru; spf=pass",
        "DKIM-Signature: v=1; a=rsa-sha256; d=sev.gov.ru; s=mail; h=from:to:subject:date;\r\n"
        "\tbh=" + base64.b64encode(rng.randbytes(32)).decode() + ";\r\n\tb=" +
        base64.b64encode(rng.randbytes(128)).decode(),
        f"From: {Header(name, charset).encode()} <{sender}>",
        f"To: {MAILBOX}",
        f"Subject: {Header(subject, rng.choice(('utf-8', charset))).encode()}",
        f"Date: {format_datetime(when)}",
        f"Message-ID: {message_id}",
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
    expected = Expected(message_id, subject, phrase, charset, cte)
    if number % 5 == 0:
        for i in range(rng.randint(1, 2)):
            filename, content, part = _attachment(rng, number, i + 1)
            expected.attachments[filename] = hashlib.sha256(content).hexdigest()
            parts.append(part)
    if len(parts) == 1:
        head, _, rest = parts[0].partition(b"\r\n\r\n")
        raw = "\r\n".join(headers).encode("ascii") + b"\r\n" + head + b"\r\n\r\n" + rest
    else:
        mixed = b"".join(b"--mix\r\n" + p + b"\r\n" for p in parts) + b"--mix--\r\n"
        headers.append('Content-Type: multipart/mixed; boundary="mix"')
        raw = "\r\n".join(headers).encode("ascii") + b"\r\n\r\n" + mixed
    return raw, expected


def generate_corpus(n: int, seed: int = 20261122) -> tuple[list[bytes], list[Expected]]:
    """`n` messages, the same for the same seed; at most 10 per sender (under the OUT-1 cap)."""
    rng = random.Random(seed)
    senders = max(100, n // 10)
    pairs = [generate_message(rng, number, senders) for number in range(n)]
    return [raw for raw, _ in pairs], [exp for _, exp in pairs]


# -- databases -----------------------------------------------------------------------------------

class Databases:
    """Fresh empty databases for each run: SQLite files, or PostgreSQL databases dropped at exit."""

    def __init__(self, kind: str, folder: Path, pg: str) -> None:
        self.kind, self.folder, self.pg = kind, folder, pg
        self.created: list[str] = []

    def new(self, label: str) -> str:
        if self.kind == "sqlite":
            return f"sqlite:///{self.folder / (label + '.sqlite3')}"
        import psycopg

        name = f"inboxdesk_bench_{os.getpid()}_{label}_{secrets.token_hex(3)}"
        with psycopg.connect(f"postgresql://{self.pg}/postgres", autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        self.created.append(name)
        return f"postgresql+psycopg://{self.pg}/{name}"

    def drop_all(self) -> None:
        if not self.created:
            return
        import psycopg

        with psycopg.connect(f"postgresql://{self.pg}/postgres", autocommit=True) as conn:
            for name in self.created:
                with contextlib.suppress(psycopg.Error):
                    conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        self.created.clear()


def write_settings(folder: Path, db_url: str, server: DovecotServer, user: str,
                   workers: str | None, batch_size: int | None) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    lines = [
        "[database]", f"url = {json.dumps(db_url)}", "",
        "[institution]", 'name = "ГБУЗС «МИАЦ»"', 'id = "MIAC-92"', "",
        "[outbound]", 'transport = "maildir"', 'path = "outbound"', "",
    ]
    if workers is not None:
        value = json.dumps(workers) if workers == "auto" else workers
        lines += ["[intake]", f"workers = {value}", ""]
    lines += [
        "[[mailbox]]", 'name = "help"', 'kind = "tickets"', f'address = "{MAILBOX}"', 'source = "imap"',
        f'host = "{server.host}"', f"port = {server.port}", 'security = "none"',
        f'username = "{user}"', f'password_env = "{PASSWORD_ENV}"', 'allowed_domains = ["sev.gov.ru"]',
        'id_prefix = "HD"',
    ]
    if batch_size is not None:
        lines.append(f"batch_size = {batch_size}")
    path = folder / "settings.toml"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


# -- checking the result -------------------------------------------------------------------------

def verify(app: App, expected: list[Expected], delivered: bool) -> list[str]:
    """Problems with the records of a finished run (empty: everything is right)."""
    n = len(expected)
    problems: list[str] = []
    by_id = {e.message_id: e for e in expected}
    with app.db.sessions() as s:
        tickets = s.scalar(select(func.count()).select_from(Ticket))
        if tickets != n:
            problems.append(f"{tickets} tickets, expected {n}")
        states = dict(s.execute(select(InboundMessage.disposition + "/" + InboundMessage.state, func.count())
                                .group_by(InboundMessage.disposition, InboundMessage.state)).all())
        if states != {"ticket/acked": n}:
            problems.append(f"inbound dispositions/states {states}, expected {{'ticket/acked': {n}}}")
        acks = dict(s.execute(select(OutboxItem.status, func.count()).where(OutboxItem.purpose == "ack")
                              .group_by(OutboxItem.status)).all())
        if sum(acks.values()) != n or (delivered and acks.get("sent") != n):
            problems.append(f"acknowledgements {acks}, expected {n} {'sent' if delivered else 'queued'}")
        seen = 0
        rows = s.execute(select(TicketMessage.id, TicketMessage.message_id, TicketMessage.body,
                                Ticket.subject).join(Ticket, Ticket.id == TicketMessage.ticket_id)
                         .where(TicketMessage.direction == "in"))
        files: dict[int, Expected] = {}
        for tm_id, message_id, body, subject in rows:
            exp = by_id.get(message_id)
            if exp is None:
                problems.append(f"unexpected stored message {message_id}")
                continue
            seen += 1
            if exp.phrase not in body:
                problems.append(f"{message_id} ({exp.charset}/{exp.cte}): phrase not in the stored body")
            if subject != exp.subject:
                problems.append(f"{message_id}: subject {subject!r}, expected {exp.subject!r}")
            if exp.attachments:
                files[tm_id] = exp
        if seen != n:
            problems.append(f"{seen} inbound ticket messages, expected {n}")
        stored: dict[int, dict[str, str]] = {}
        for tm_id, filename, sha, content in s.execute(select(
                Attachment.ticket_message_id, Attachment.filename, Attachment.sha256, Attachment.content)):
            if content is None or hashlib.sha256(content).hexdigest() != sha:
                problems.append(f"attachment {filename!r}: content missing or not its sha256")
            stored.setdefault(tm_id, {})[filename] = sha
        for tm_id, exp in files.items():
            if stored.get(tm_id) != exp.attachments:
                problems.append(f"{exp.message_id}: attachments {stored.get(tm_id)} != {exp.attachments}")
        if len(stored) != len(files):
            problems.append(f"{len(stored)} messages with attachments stored, expected {len(files)}")
    if len(problems) > 10:
        problems = [*problems[:10], f"… and {len(problems) - 10} more"]
    return problems


# -- runs ----------------------------------------------------------------------------------------

@dataclass
class Run:
    label: str
    seconds: float
    deliver_seconds: float | None = None
    problems: list[str] = field(default_factory=list)
    cpu_seconds: float | None = None  # this process only (parse workers not included)
    load: str = ""  # load averages when the run ended: other work on the machine skews the figure


def run_in_process(config: Path, expected: list[Expected], label: str, profile: str | None) -> Run:
    app = App(load_settings(config))
    try:
        app.db  # noqa: B018 - engine and migrations outside the timing (the daemon does this at start)
        daemon = Daemon(app)
        box = app.settings.mailboxes[0]
        profiler = None
        if profile:
            import cProfile

            profiler = cProfile.Profile()
            profiler.enable()
        cpu = time.process_time()
        started = time.perf_counter()
        stats = daemon.poll_mailbox(box)
        seconds = time.perf_counter() - started
        cpu = time.process_time() - cpu
        load = "/".join(f"{x:.1f}" for x in os.getloadavg())
        if profiler is not None:
            profiler.disable()
            profiler.dump_stats(profile)
        if stats is None:
            return Run(label, seconds, problems=["poll failed: " + "; ".join(daemon.failing.values())])
        started = time.perf_counter()
        import asyncio

        asyncio.run(daemon.deliver())
        deliver_seconds = time.perf_counter() - started
        return Run(label, seconds, deliver_seconds, verify(app, expected, delivered=True), cpu, load)
    finally:
        app.close()


def run_cli(config: Path, expected: list[Expected], label: str) -> Run:
    command = [sys.executable, "-m", "inboxdesk.cli", "--config", str(config), "run", "--once"]
    started = time.perf_counter()
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, check=False)
    seconds = time.perf_counter() - started
    run = Run(label, seconds)
    if done.returncode != 0:
        run.problems.append(f"exit status {done.returncode}: {done.stderr[-2000:]}")
        return run
    app = App(load_settings(config))
    try:
        run.problems = verify(app, expected, delivered=True)
    finally:
        app.close()
    return run


def machine() -> str:
    cpu = "unknown CPU"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    return f"{os.cpu_count()} CPUs ({cpu}), Python {sys.version.split()[0]}"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=2000, help="messages to generate (default 2000)")
    parser.add_argument("--db", choices=("sqlite", "postgres"), default="sqlite")
    parser.add_argument("--pg", default="postgres@127.0.0.1:5432",
                        help="PostgreSQL user@host:port for --db postgres (trust auth)")
    parser.add_argument("--workers", help="[intake] workers to write into settings.toml (auto, 0, 1, 2…); "
                                          "default: leave the setting out")
    parser.add_argument("--batch-size", type=int, help="mailbox batch_size (default: the settings default)")
    parser.add_argument("--repeat", type=int, default=1, help="in-process runs, each on a fresh database")
    parser.add_argument("--no-cli", action="store_true", help="skip the `inboxdesk run --once` process run")
    parser.add_argument("--profile", metavar="FILE", help="cProfile the first in-process intake into FILE")
    parser.add_argument("--keep", action="store_true", help="keep the temporary folder (databases, outbox)")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")

    started = time.perf_counter()
    raws, expected = generate_corpus(args.n)
    size = sum(map(len, raws))
    print(f"corpus: {len(raws)} messages, {size / len(raws) / 1024:.1f} KiB average, "
          f"{sum(bool(e.attachments) for e in expected)} with attachments, {size / 2**20:.1f} MiB "
          f"(generated in {time.perf_counter() - started:.1f} s)")
    print(f"machine: {machine()}; load average {'/'.join(f'{x:.1f}' for x in os.getloadavg())}")

    work = Path(tempfile.mkdtemp(prefix="inboxdesk-bench-", dir="/tmp"))
    dbs = Databases(args.db, work, args.pg)
    runs: list[Run] = []
    try:
        with DovecotServer() as server:
            account = server.new_user("help", "miac.example")
            os.environ[PASSWORD_ENV] = account.password
            started = time.perf_counter()
            uids = server.append_many(account.address, raws)
            assert len(uids) == len(raws), f"{len(uids)} messages appended, expected {len(raws)}"
            print(f"dovecot: {len(uids)} messages appended with MULTIAPPEND in "
                  f"{time.perf_counter() - started:.1f} s")
            # Every run reads the same folder from UID 1 on a fresh database: no processed_folder,
            # so the messages stay (flagged \Seen, which fetching ignores).
            for i in range(args.repeat):
                label = f"inproc{i + 1}"
                config = write_settings(work / label, dbs.new(label), server, account.address,
                                        args.workers, args.batch_size)
                run = run_in_process(config, expected, label, args.profile if i == 0 else None)
                runs.append(run)
                rate = len(raws) / run.seconds
                print(f"in process #{i + 1}: intake {run.seconds:.2f} s = {rate:.0f} msg/s "
                      f"(daemon process CPU {run.cpu_seconds or 0:.1f} s, load {run.load}); "
                      f"outbox delivery (Maildir) {run.deliver_seconds or 0:.2f} s; "
                      f"check: {'OK' if not run.problems else 'FAILED'}")
            if not args.no_cli:
                config = write_settings(work / "cli", dbs.new("cli"), server, account.address,
                                        args.workers, args.batch_size)
                run = run_cli(config, expected, "cli")
                runs.append(run)
                print(f"`inboxdesk run --once` process: {run.seconds:.2f} s wall = "
                      f"{len(raws) / run.seconds:.0f} msg/s (start-up, migrations, intake and delivery); "
                      f"check: {'OK' if not run.problems else 'FAILED'}")
    finally:
        dbs.drop_all()
        if args.keep:
            print(f"kept {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)

    failed = False
    for run in runs:
        for problem in run.problems:
            failed = True
            print(f"  {run.label}: {problem}")
    intake = [len(raws) / r.seconds for r in runs if r.label.startswith("inproc")]
    if intake:
        print(f"RESULT intake ({args.db}, workers={args.workers or 'default'}): "
              f"{statistics.median(intake):.0f} msg/s median of {len(intake)} "
              f"(best {max(intake):.0f}){'  — CHECK FAILED' if failed else ''}")
    if args.profile:
        import pstats

        pstats.Stats(args.profile).sort_stats("cumulative").print_stats(40)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
