"""The staff bot's world for story tests (issue 4): the real daemon with its bot polling the Bot API
server of `tests/botapi.py`, a support and an appeals mailbox on Dovecot, letters to aiosmtpd.

Staff: ivanov (operator), petrova (admin), sidorov (engineer); a stranger has no entry.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest

from inboxdesk.app import App
from inboxdesk.daemon import Daemon
from inboxdesk.settings import load_settings
from tests.botapi import BotApiServer, ChatMessage
from tests.servers.dovecot import DovecotServer, ImapAccount
from tests.servers.smtp import SmtpServer
from tests.story import imap_box, smtp_out, write_settings

IMAP_ENV, TOKEN_ENV = "INBOXDESK_TEST_IMAP_PASSWORD", "INBOXDESK_TEST_BOT_TOKEN"
APPEALS_ENV = "INBOXDESK_TEST_APPEALS_PASSWORD"
STAFF_CHAT = -1001500
DEPARTMENT = "org-appeal@mos.ru"
IVANOV = {"id": 1001, "is_bot": False, "first_name": "Иван", "username": "ivanov"}
PETROVA = {"id": 1002, "is_bot": False, "first_name": "Анна", "username": "petrova"}
SIDOROV = {"id": 1003, "is_bot": False, "first_name": "Пётр", "username": "sidorov"}
STRANGER = {"id": 6660, "is_bot": False, "first_name": "Мэллори", "username": "mallory"}
# The request-form check (MAIL-8, its own stories) is off: these stories are about the chat.
SETTINGS_TAIL = """
[desk]
form_check = false

[[staff]]
name = "ivanov"
role = "operator"
telegram_id = 1001
full_name = "Иванов Иван"

[[staff]]
name = "petrova"
role = "admin"
telegram_id = 1002

[[staff]]
name = "sidorov"
role = "engineer"
telegram_id = 1003
"""


def bot_settings(tmp_path: Path, dovecot: DovecotServer, imap_account: ImapAccount, smtp_server: SmtpServer,
                 api: BotApiServer, monkeypatch: pytest.MonkeyPatch) -> Callable[..., Path]:
    """Settings for a support mailbox, an appeals mailbox, SMTP out and the bot; returns a factory
    so a story can add `[telegram]` keys (`.help` and `.appeals` are the IMAP accounts)."""
    appeals = dovecot.new_user("appeals")
    monkeypatch.setenv(IMAP_ENV, imap_account.password)
    monkeypatch.setenv(APPEALS_ENV, appeals.password)
    monkeypatch.setenv(TOKEN_ENV, api.token)

    def make(database_url: str | None = None, **telegram: Any) -> Path:
        boxes = [imap_box(dovecot, imap_account, IMAP_ENV),
                 imap_box(dovecot, appeals, APPEALS_ENV, name="appeals", kind="appeals",
                          address="appeals@miac.test", allowed_domains=[])]
        url = database_url or f"sqlite:///{tmp_path / 'db.sqlite3'}"
        path = write_settings(tmp_path, url, boxes, smtp_out(smtp_server))
        tg = {"token_env": TOKEN_ENV, "base_url": api.base_url, "base_file_url": api.base_file_url,
              "staff_chat_id": STAFF_CHAT, "request_timeout_seconds": 2, "poll_timeout_seconds": 2,
              "retry_base_seconds": 0.2, **telegram}
        lines = ["", "[telegram]"] + [f"{k} = {_toml(v)}" for k, v in tg.items()]
        text = path.read_text(encoding="utf-8") + "\n".join(lines) + "\n" + SETTINGS_TAIL
        path.write_text(text, encoding="utf-8")
        return path

    make.help = imap_account  # type: ignore[attr-defined]
    make.appeals = appeals  # type: ignore[attr-defined]
    return make


def _toml(value: Any) -> str:
    return str(value) if isinstance(value, int | float) else f'"{value}"'


async def until(condition: Callable[[], Any], timeout: float = 20.0, step: float = 0.05) -> Any:
    """Wait for `condition()` to be truthy (run in a thread: it may touch the database)."""
    deadline = time.monotonic() + timeout
    while True:
        result = await asyncio.to_thread(condition)
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached in time")
        await asyncio.sleep(step)


@contextlib.asynccontextmanager
async def daemon_running(config: Path) -> AsyncIterator[Daemon]:
    daemon = Daemon(App(load_settings(config)))
    task = asyncio.ensure_future(daemon.run_forever())
    try:
        yield daemon
    finally:
        daemon.stop()
        await asyncio.wait_for(task, 30)
        daemon.app.close()


DIGEST_HEAD = "📥"  # the daily digest of filtered mail has buttons too, but is no card


def cards(api: BotApiServer, public_id: str | None = None) -> list[ChatMessage]:
    """The bot's cards in the staff chat (for one record)."""
    return [m for m in api.messages(STAFF_CHAT) if m.buttons and not m.text.startswith(DIGEST_HEAD)
            and (public_id is None or public_id in m.text)]


def one_card(api: BotApiServer) -> ChatMessage | None:
    found = cards(api)
    return found[0] if len(found) == 1 else None


def public_id_of(card: ChatMessage) -> str:
    return re.search(r"(?:HD|OBR)-\d{4}-\d{6}", card.visible).group(0)  # type: ignore[union-attr]


def bot_said(api: BotApiServer, chat_id: int, after: int = 0) -> list[str]:
    return [m.visible for m in api.messages(chat_id) if m.message_id > after]
