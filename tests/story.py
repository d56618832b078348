"""Building blocks for story tests: letters as senders write them, settings files, the CLI."""

from __future__ import annotations

import contextlib
import io
import json
from email.header import Header
from email.message import EmailMessage
from email.utils import formataddr, make_msgid
from pathlib import Path
from typing import Any

from inboxdesk.cli import main
from tests.servers.dovecot import DovecotServer, ImapAccount
from tests.servers.smtp import SmtpServer

HELP = "help@miac.test"
# A request written as the regulation asks (MAIL-8, Appendix 1): who and where, a phone, the login,
# the steps and the error text. Stories about something else send this, so the form check lets
# them through; stories about the form write their own.
REQUEST_BODY = ("Добрый день! В МИС не открывается расписание врача-терапевта.\n"
                "Действия: Регистратура → Расписание стандартное → выбрать врача-терапевта Сидорова, "
                "выходит ошибка «Не удалось загрузить шаблон расписания».\n"
                "Логин: petrova_is\n\n"
                "Петрова Ирина Сергеевна, медицинский регистратор\n"
                "ГБУЗС «Городская больница №1», тел. +7 (8692) 55-12-34\n")


def letter(*, sender: str = "i.petrova@sev.gov.ru", name: str = "Петрова Ирина Сергеевна",
           to: str = HELP, subject: str = "Не открывается расписание врача",
           body: str = REQUEST_BODY,
           message_id: str | None = None, in_reply_to: str | None = None,
           references: str | None = None, headers: dict[str, str] | None = None,
           files: list[tuple[str, str, bytes]] = (), charset: str = "utf-8") -> bytes:
    """A raw email as a mail client would send it."""
    msg = EmailMessage()
    msg["From"] = formataddr((str(Header(name, charset)), sender)) if name else sender
    msg["To"] = to
    msg["Subject"] = subject
    msg["Message-ID"] = message_id or make_msgid(domain=sender.rpartition("@")[2])
    msg["Date"] = "Mon, 16 Nov 2026 09:12:00 +0300"
    if in_reply_to:
        msg["In-Reply-To"] = in_reply_to
    if references:
        msg["References"] = references
    for key, value in (headers or {}).items():
        msg[key] = value
    msg.set_content(body, charset=charset)
    for filename, ctype, content in files:
        maintype, _, subtype = ctype.partition("/")
        msg.add_attachment(content, maintype=maintype, subtype=subtype, filename=filename)
    return msg.as_bytes()


def message_id_of(raw: bytes) -> str:
    for line in raw.split(b"\n"):
        if line.lower().startswith(b"message-id:"):
            return line.split(b":", 1)[1].strip().decode()
    raise AssertionError("no Message-ID")


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, list | tuple):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    return json.dumps(str(value), ensure_ascii=False)


def write_settings(folder: Path, db_url: str, mailboxes: list[dict[str, Any]],
                   outbound: dict[str, Any], institution: dict[str, Any] | None = None) -> Path:
    """A settings.toml as an administrator would write it; returns its path."""
    lines = ["[database]", f"url = {_toml_value(db_url)}", "", "[institution]"]
    for key, value in (institution or {"name": "ГБУЗС «МИАЦ»", "id": "MIAC-92"}).items():
        lines.append(f"{key} = {_toml_value(value)}")
    lines += ["", "[outbound]"] + [f"{k} = {_toml_value(v)}" for k, v in outbound.items()]
    for box in mailboxes:
        lines += ["", "[[mailbox]]"] + [f"{k} = {_toml_value(v)}" for k, v in box.items()]
    path = folder / "settings.toml"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def maildir_settings(folder: Path, db_url: str, **box: Any) -> Path:
    """Settings for a support mailbox read from the Maildir `folder/mail` (allowed domain
    sev.gov.ru), letters written to the Maildir `folder/out`; `box` adds or overrides keys."""
    mailbox = {"name": "help", "kind": "tickets", "address": HELP, "source": "maildir",
               "path": str(folder / "mail"), "allowed_domains": ["sev.gov.ru"], **box}
    return write_settings(folder, db_url, [mailbox], {"transport": "maildir", "path": str(folder / "out")})


def imap_box(dovecot: DovecotServer, account: ImapAccount, env: str, **extra: Any) -> dict[str, Any]:
    """A support mailbox read over IMAP (plain), password from environment variable `env`."""
    box = {"name": "help", "kind": "tickets", "address": HELP, "source": "imap",
           "host": dovecot.host, "port": dovecot.port, "security": "none",
           "username": account.address, "password_env": env, "allowed_domains": ["sev.gov.ru"],
           "poll_seconds": 0.5}
    box.update(extra)
    return box


def smtp_out(smtp: SmtpServer, **extra: Any) -> dict[str, Any]:
    out = {"transport": "smtp", "host": smtp.host, "port": smtp.port, "security": "none",
           "retry_base_seconds": 0.2, "timeout_seconds": 5}
    out.update(extra)
    return out


def cli(config: Path, *args: str) -> tuple[int, str]:
    """Run the `inboxdesk` command in-process; (exit status, standard output)."""
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        status = main(["--config", str(config), *args])
    return status, out.getvalue()


def cli_json(config: Path, *args: str) -> Any:
    status, out = cli(config, *args, "--json")
    assert status == 0, out
    return json.loads(out)
