"""BOT-1: only staff listed with a Telegram user ID may use the bot; roles decide the rest.

The gate runs before every other handler. A stranger gets one short refusal and no data, the
attempt is logged and audited, and the update goes no further.
"""

from __future__ import annotations

import logging

from telegram import Update
from telegram.ext import ApplicationHandlerStop

from bot.context import DeskContext
from inboxdesk.staff import StaffMember
from inboxdesk.workflow import check_may

log = logging.getLogger(__name__)

REFUSAL = "Бот только для сотрудников службы поддержки. Обратитесь к администратору."
FOREIGN_CHAT = ("В этом чате бот не работает: данные заявок показываются только в чате поддержки "
                "и в личных сообщениях сотрудникам.")


# Answered for anyone, staff or not, with the IDs only: how an administrator learns the staff
# chat's ID and a new colleague's user ID for `[telegram] staff_chat_id` and `[[staff]]`.
ID_COMMANDS = frozenset({"whoami", "chatid"})


async def gate(update: Update, context: DeskContext) -> None:
    """Let staff through with `context.member` set; stop and refuse everyone else."""
    user = update.effective_user
    if user is None or user.is_bot:
        raise ApplicationHandlerStop
    if _command(update) in ID_COMMANDS:
        await _tell_ids(update)
        raise ApplicationHandlerStop
    services = context.services
    member = await services.read(lambda s: services.desk.staff(s).by_telegram(user.id))
    chat = update.effective_chat
    if member is not None and chat is not None and not services.settings.telegram.allows_chat(
            chat.id, chat.type == "private"):
        # Staff too: a record's data must not be posted into a chat with outsiders (issue 10).
        if _addressed_to_bot(update):
            await _refuse(update, context, FOREIGN_CHAT)
        raise ApplicationHandlerStop
    if member is not None:
        context.member = member
        return
    if _addressed_to_bot(update):
        await _refuse(update, context)
    raise ApplicationHandlerStop


def _command(update: Update) -> str:
    """`whoami` for "/whoami" or "/whoami@inboxdesk_bot ..."; "" for anything else."""
    msg = update.effective_message
    text = (msg.text or "") if msg is not None else ""
    if not text.startswith("/") or len(text) < 2:
        return ""
    return text[1:].split(maxsplit=1)[0].split("@", 1)[0].lower()


async def _tell_ids(update: Update) -> None:
    user, chat, msg = update.effective_user, update.effective_chat, update.effective_message
    assert user is not None and chat is not None and msg is not None
    log.info("telegram: told user %s the IDs in chat %s", user.id, chat.id)
    await msg.reply_text(f"Ваш Telegram ID: {user.id}\nID этого чата: {chat.id}")


def _addressed_to_bot(update: Update) -> bool:
    """Worth an answer and an audit entry: a button, a private message, a command, a reply to us."""
    if update.callback_query is not None:
        return True
    msg = update.effective_message
    if msg is None or update.effective_chat is None:
        return False
    if update.effective_chat.type == "private" or (msg.text or "").startswith("/"):
        return True
    replied = msg.reply_to_message
    return replied is not None and replied.from_user is not None and replied.from_user.is_bot


async def _refuse(update: Update, context: DeskContext, refusal: str = REFUSAL) -> None:
    user = update.effective_user
    assert user is not None
    chat_id = update.effective_chat.id if update.effective_chat else None
    query = update.callback_query
    what = "button" if query else ((update.effective_message.text or "")[:100] if update.effective_message
                                   else "update")
    log.warning("telegram: refused user %s (@%s) in chat %s: %r", user.id, user.username or "-", chat_id,
                what)
    services = context.services
    await services.act(lambda s: services.desk.audit(
        s, None, f"telegram:{user.id}", "bot_refused", None, None, chat_id=chat_id,
        username=user.username, attempted=what))
    if query is not None:
        await query.answer(refusal, show_alert=True)
    elif update.effective_message is not None:
        await update.effective_message.reply_text(refusal)


def require(member: StaffMember, action: str) -> None:
    """Refuse unless `member` may do `action` (workflow.MAY, the one table of who may do what)."""
    check_may(action, member.role)
