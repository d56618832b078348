"""Replying in Telegram to a card answers that ticket: the text (or the caption) leaves as an
email threaded to the ticket, with the document or photo attached (BOT-3)."""

from __future__ import annotations

from sqlalchemy.orm import Session
from telegram import Update

from bot.answers import card_for_message, done_line, incoming_file, say
from bot.cards import esc
from bot.context import DeskContext
from inboxdesk.workflow import Refused
from storage.models import Ticket


async def on_reply(update: Update, context: DeskContext) -> None:
    """A reply to a card or to a reply prompt: email it to the requester."""
    message = update.effective_message
    if message is None or message.reply_to_message is None:
        return
    services, member = context.services, context.member
    replied = message.reply_to_message
    ticket_id = await services.read(lambda s: getattr(
        card_for_message(s, message.chat_id, replied.message_id), "ticket_id", None))
    if ticket_id is None:
        if message.chat.type == "private":
            await say(update, "Чтобы ответить заявителю, ответьте (reply) на карточку заявки.")
        return
    upload = await incoming_file(message, context)
    text = message.text or message.caption or ""

    def send(s: Session) -> str:
        ticket = s.get(Ticket, ticket_id)
        if ticket is None:
            raise Refused("Запись не найдена")
        services.desk.reply(s, ticket, member, text, (upload,) if upload else ())
        attached = f" с файлом «{esc(upload.filename)}»" if upload else ""
        return done_line(ticket, f"✉️ Ответ отправлен заявителю{attached}")

    await say(update, await services.act(send))
