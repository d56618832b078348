"""The staff bot inside the daemon's event loop: one place that builds the PTB application, wires
every handler and the one error handler, and starts and stops polling (never `run_polling()`).
"""

from __future__ import annotations

import asyncio
import html
import logging
import threading
from collections.abc import Callable

from telegram import Update
from telegram.constants import ParseMode
from telegram.error import BadRequest, InvalidToken, NetworkError, TelegramError
from telegram.ext import (
    Application,
    CallbackQueryHandler,
    CommandHandler,
    ContextTypes,
    MessageHandler,
    TypeHandler,
    filters,
)

from bot import commands
from bot.access import gate
from bot.buttons import on_press
from bot.callbacks import CallbackSigner
from bot.context import BotServices, DeskContext
from bot.conversations import conversation_handlers
from bot.filtered import cmd_filtered
from bot.notifications import TelegramDelivery
from bot.replies import on_reply
from inboxdesk.desk import Desk
from inboxdesk.settings import Settings
from inboxdesk.workflow import Refused
from storage.db import Database

log = logging.getLogger(__name__)

START_RETRY_MAX_SECONDS = 60.0


def build_application(services: BotServices) -> Application:
    """A PTB application talking to `[telegram] base_url`, with every handler registered."""
    cfg = services.settings.telegram
    timeout = cfg.request_timeout_seconds
    app = (Application.builder().token(cfg.token).base_url(cfg.base_url).base_file_url(cfg.base_file_url)
           .context_types(ContextTypes(context=DeskContext))
           .connect_timeout(timeout).read_timeout(timeout).write_timeout(timeout).pool_timeout(timeout)
           .get_updates_connect_timeout(timeout).get_updates_read_timeout(timeout)
           .job_queue(None).build())
    app.bot_data["services"] = services
    register_handlers(app)
    return app


def register_handlers(app: Application) -> None:
    """Every handler in one place: the access gate first, then dialogues, commands, buttons, replies."""
    app.add_handler(TypeHandler(Update, gate), group=-1)
    for conversation in conversation_handlers():
        app.add_handler(conversation)
    table = {"start": commands.cmd_help, "help": commands.cmd_help, "new": commands.cmd_new,
             "mine": commands.cmd_mine, "overdue": commands.cmd_overdue, "list": commands.cmd_list,
             "show": commands.cmd_show, "reply": commands.cmd_reply, "note": commands.cmd_note,
             "status": commands.cmd_status, "take": commands.cmd_take, "assign": commands.cmd_assign,
             "priority": commands.cmd_priority, "find": commands.cmd_find, "staff": commands.cmd_staff,
             "failed": commands.cmd_failed, "escalate": commands.cmd_escalate, "back": commands.cmd_back,
             "extend": commands.cmd_extend, "org": commands.cmd_org, "filtered": cmd_filtered}
    for name, callback in table.items():
        app.add_handler(CommandHandler(name, callback))
    app.add_handler(CallbackQueryHandler(on_press))
    app.add_handler(MessageHandler(
        filters.REPLY & (filters.TEXT | filters.Document.ALL | filters.PHOTO) & ~filters.COMMAND, on_reply))
    app.add_error_handler(on_error)


async def on_error(update: object, context: DeskContext) -> None:
    """The one error handler: a refusal is told in one line; anything else is logged and the chat
    is told briefly that it did not work."""
    error = context.error
    refused = isinstance(error, Refused)
    if not refused:
        log.error("telegram: handling an update failed: %s", error, exc_info=error)
    if not isinstance(update, Update):
        return
    text = f"⛔ {error}" if refused else "⚠️ Не получилось: внутренняя ошибка, подробности в журнале службы."
    try:
        if update.callback_query is not None:
            try:
                await update.callback_query.answer(text[:200], show_alert=True)
                return
            except BadRequest:
                pass  # already answered: say it in the chat instead
        if update.effective_chat is not None:
            await update.effective_chat.send_message(html.escape(text, quote=False),
                                                     parse_mode=ParseMode.HTML)
    except TelegramError as exc:
        log.warning("telegram: could not report an error to the chat: %s", exc)


class StaffBot:
    """The bot and its outbox delivery; `run()` lives as long as the daemon."""

    def __init__(self, settings: Settings, db: Database, desk: Desk) -> None:
        signer = CallbackSigner(settings.telegram.token)
        self.services = BotServices(settings, db, desk, signer)
        self.app = build_application(self.services)
        self.delivery = TelegramDelivery(db, settings, self.app.bot, signer)
        self.ready = False

    async def run(self, stopping: threading.Event, wake: Callable[[], None]) -> None:
        """Start (retrying while the Bot API cannot be reached), poll until `stopping`, stop."""
        self.services.wake = self.delivery.wake = wake
        delay = 1.0
        while not stopping.is_set():
            try:
                await self._start()
                wake()  # cards queued while the bot was starting go out now
                break
            except InvalidToken as exc:
                log.error("telegram: the token in $%s is not accepted (%s); bot off",
                          self.services.settings.telegram.token_env, exc)
                return
            except (NetworkError, OSError) as exc:
                log.error("telegram: cannot start the bot: %s; next try in %.0f s", exc, delay)
                await _sleep_unless(stopping, delay)
                delay = min(delay * 2, START_RETRY_MAX_SECONDS)
        while not stopping.is_set():
            await asyncio.sleep(0.2)
        await self._stop()

    async def _start(self) -> None:
        cfg = self.services.settings.telegram
        await self.app.initialize()
        await self.app.bot.set_my_commands(commands.BOT_COMMANDS)
        await self.app.start()
        assert self.app.updater is not None
        await self.app.updater.start_polling(
            timeout=int(cfg.poll_timeout_seconds), allowed_updates=["message", "callback_query"],
            error_callback=lambda exc: log.warning("telegram: polling: %s", exc))
        self.ready = True
        log.info("telegram bot @%s started (staff chat %s)", self.app.bot.username, cfg.staff_chat_id)

    async def _stop(self) -> None:
        self.ready = False
        try:
            if self.app.updater is not None and self.app.updater.running:
                await self.app.updater.stop()
            if self.app.running:
                await self.app.stop()
            await self.app.shutdown()
        except TelegramError as exc:
            log.warning("telegram: stopping: %s", exc)

    async def deliver_once(self) -> int:
        """Send due cards without polling (`run --once`)."""
        try:
            async with self.app.bot:
                return await self.delivery.deliver_due()
        except (NetworkError, InvalidToken) as exc:
            log.error("telegram: %s; cards wait in the outbox", exc)
            return 0


async def _sleep_unless(stopping: threading.Event, seconds: float) -> None:
    deadline = asyncio.get_running_loop().time() + seconds
    while not stopping.is_set() and asyncio.get_running_loop().time() < deadline:
        await asyncio.sleep(0.2)
