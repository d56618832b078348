"""A desk for story tests of issue 3: the support and appeals mailboxes on Dovecot, letters to
aiosmtpd, staff in settings.toml, and the CLI driven in-process (stdout and stderr captured)."""

from __future__ import annotations

import contextlib
import email.policy
import io
import json
import time
from email import message_from_bytes
from email.message import EmailMessage
from pathlib import Path
from typing import Any

from inboxdesk.cli import main
from tests.servers.smtp import CapturedMessage
from tests.story import imap_box, smtp_out, write_settings

APPEALS = "appeals@miac.test"
DEPARTMENT = "org-appeal@mos.ru"
HELP_ENV, APPEALS_ENV = "INBOXDESK_TEST_HELP_PASSWORD", "INBOXDESK_TEST_APPEALS_PASSWORD"

STAFF = """
[[staff]]
name = "ivanova"
role = "operator"
telegram_id = 1001
email = "m.ivanova@miac.test"
full_name = "Иванова Мария Петровна"

[[staff]]
name = "petrov"
role = "engineer"
telegram_id = 1002
full_name = "Петров Олег Игоревич"
"""


class World:
    """The desk under test and the servers around it."""

    def __init__(self, tmp_path: Path, db_url: str, dovecot: Any, smtp: Any, monkeypatch: Any) -> None:
        self.tmp, self.db_url, self.dovecot, self.smtp = tmp_path, db_url, dovecot, smtp
        self.help_account = dovecot.new_user("help")
        self.appeals_account = dovecot.new_user("appeals")
        monkeypatch.setenv(HELP_ENV, self.help_account.password)
        monkeypatch.setenv(APPEALS_ENV, self.appeals_account.password)
        self.configure()

    def configure(self, extra: str = "") -> None:
        """(Re)write settings.toml: both mailboxes, SMTP, two staff members, plus `extra` TOML."""
        boxes = [imap_box(self.dovecot, self.help_account, HELP_ENV),
                 imap_box(self.dovecot, self.appeals_account, APPEALS_ENV, name="appeals", kind="appeals",
                          address=APPEALS, allowed_domains=[], id_prefix="OBR")]
        self.config = write_settings(self.tmp, self.db_url, boxes, smtp_out(self.smtp))
        self.config.write_text(self.config.read_text(encoding="utf-8") + STAFF + extra, encoding="utf-8")

    # -- mail ------------------------------------------------------------------------------------

    def send_help(self, raw: bytes) -> None:
        self.dovecot.append(self.help_account.address, raw)

    def send_appeal(self, raw: bytes) -> None:
        self.dovecot.append(self.appeals_account.address, raw)

    def run_once(self) -> None:
        status, out, err = self.run("run", "--once")
        assert status == 0, out + err

    def letters_to(self, address: str) -> list[CapturedMessage]:
        return [m for m in self.smtp.messages if address in m.rcpt_tos]

    def new_letters(self, before: int) -> list[CapturedMessage]:
        return self.smtp.messages[before:]

    # -- the command line ------------------------------------------------------------------------

    def run(self, *args: str) -> tuple[int, str, str]:
        """`inboxdesk --config … ARGS`: (exit status, stdout, stderr)."""
        out, err = io.StringIO(), io.StringIO()
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            status = main(["--config", str(self.config), *args])
        return status, out.getvalue(), err.getvalue()

    def ok(self, *args: str) -> Any:
        """Run a command that must succeed, with --json; its parsed output."""
        status, out, err = self.run(*args, "--json")
        assert status == 0, f"{args}: {err or out}"
        return json.loads(out)

    def refused(self, *args: str) -> str:
        """Run a command that must be refused: exit 1 and one line on stderr, which is returned."""
        status, out, err = self.run(*args)
        assert status == 1, f"{args} was not refused: {out}"
        lines = err.strip().splitlines()
        assert len(lines) == 1, err
        return lines[0].removeprefix("inboxdesk: ")

    def tickets(self, *filters: str) -> list[dict]:
        return self.ok("tickets", "list", *filters)

    def ticket(self, public_id: str) -> dict:
        return self.ok("tickets", "show", public_id)


def body_lines(message: EmailMessage) -> list[str]:
    """The text part of a received letter, line by line."""
    return message.get_body(preferencelist=("plain",)).get_content().splitlines()


def attachments(message: EmailMessage) -> list[tuple[str, bytes]]:
    """(file name, exact bytes) of every attachment of a received letter."""
    return [(part.get_filename(), part.get_payload(decode=True)) for part in message.iter_attachments()]


def parsed(raw: bytes) -> EmailMessage:
    return message_from_bytes(raw, policy=email.policy.default)  # type: ignore[return-value]


def wait_due(seconds: float = 0.6) -> None:
    """Let a back-off delay of the outbox run out (settings use retry_base_seconds = 0.2)."""
    time.sleep(seconds)
