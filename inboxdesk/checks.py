"""`check-config`: try every part the settings name and say plainly what is wrong."""

from __future__ import annotations

import asyncio
import os

from sqlalchemy import text

from inboxdesk.app import App
from inboxdesk.failures import failure_text
from inboxdesk.settings import TelegramSettings
from inboxdesk.templating import missing_templates
from mailflow.delivery import DeliveryError, SmtpTransport
from mailflow.sources import SourceError


def check_everything(app: App) -> list[str]:
    """One line per problem; an empty list means everything answered."""
    settings = app.settings
    problems: list[str] = missing_templates()
    if (settings.department.notify and not settings.institution.id
            and any(b.kind == "appeals" for b in settings.mailboxes)):
        problems.append("institution.id: empty, but the department's letter on a completed appeal must "
                        "carry the institution's identifier (APL-5)")
    try:
        with app.db.engine.connect() as conn:
            conn.execute(text("SELECT 1"))
    except Exception as exc:  # any driver error is a problem to report, not a crash
        problems.append(failure_text(exc))
    for i, box in enumerate(settings.mailboxes):
        if box.password_env and box.password_env not in os.environ:
            problems.append(f"mailbox[{i}].password_env: environment variable {box.password_env} is not set")
        source = app.source(box)
        try:
            source.open()
        except SourceError as exc:
            problems.append(f"mailbox {box.name}: {exc}")
        finally:
            source.close()
    out = settings.outbound
    if out.password_env and out.password_env not in os.environ:
        problems.append(f"outbound.password_env: environment variable {out.password_env} is not set")
    if out.transport == "smtp":
        problems += asyncio.run(_check_smtp(app))
    else:
        path = settings.resolve(out.path)
        try:
            path.mkdir(parents=True, exist_ok=True)
            probe = path / ".inboxdesk-write-test"
            probe.write_bytes(b"")
            probe.unlink()
        except OSError as exc:
            problems.append(f"outbound.path: cannot write to {path}: {exc.strerror}")
    if settings.telegram.token:
        try:
            problems += asyncio.run(_check_telegram(settings.telegram))
        except Exception as exc:  # an answer the client cannot read is a problem to report, not a crash
            problems.append(f"telegram: {failure_text(exc)}")
    return problems


async def _check_smtp(app: App) -> list[str]:
    try:
        async with SmtpTransport(app.settings.outbound):
            return []
    except DeliveryError as exc:
        return [f"outbound: {exc}"]


async def _check_telegram(tg: TelegramSettings) -> list[str]:
    """The token works (getMe), the staff chat exists for the bot and the bot is in it."""
    from telegram import Bot
    from telegram.error import InvalidToken, TelegramError
    from telegram.request import HTTPXRequest

    timeout = tg.request_timeout_seconds
    bot = Bot(tg.token, base_url=tg.base_url, base_file_url=tg.base_file_url,
              request=HTTPXRequest(connect_timeout=timeout, read_timeout=timeout))
    try:
        await bot.initialize()  # getMe
    except InvalidToken:
        return [f"telegram.token_env: Telegram does not accept the token in ${tg.token_env}"]
    except TelegramError as exc:
        return [f"telegram: {tg.base_url} does not answer: {exc}"]
    try:
        if not tg.staff_chat_id:
            return ["telegram.staff_chat_id: not set, so cards and alerts are only kept, never posted "
                    "(the bot's /chatid tells a chat's ID)"]
        try:
            await bot.get_chat(tg.staff_chat_id)
            member = await bot.get_chat_member(tg.staff_chat_id, bot.id)
        except TelegramError as exc:
            return [f"telegram.staff_chat_id: chat {tg.staff_chat_id} cannot be used by "
                    f"@{bot.username}: {exc}"]
        if member.status in ("left", "kicked"):
            return [f"telegram.staff_chat_id: @{bot.username} is not a member of chat {tg.staff_chat_id}; "
                    "add the bot to the staff group"]
        return []
    finally:
        await bot.shutdown()
