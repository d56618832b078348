"""Small pieces every handler uses: finding the ticket named in a command, answering in the chat,
posting a live card, and fetching a file a staff member sent."""

from __future__ import annotations

import re
from collections.abc import Sequence

from sqlalchemy import select
from sqlalchemy.orm import Session
from telegram import InlineKeyboardMarkup, Message, ReplyParameters, Update
from telegram.constants import ParseMode
from telegram.ext import ContextTypes

from bot.cards import Rendered, card, esc
from bot.context import BotServices, DeskContext
from bot.notifications import NO_PREVIEW, latest_message, remember_card
from inboxdesk.letters import OutgoingFile
from inboxdesk.workflow import Refused
from storage.models import ChatCard, Ticket, TicketMessage

DOWNLOAD_LIMIT = 20 * 1024 * 1024  # the Bot API does not hand bots bigger files
_ID = re.compile(r"\[?([A-Za-z][A-Za-z0-9_]{0,19}-\d{4}-\d{1,12})\]?")


def ticket_named(services: BotServices, session: Session, text: str) -> Ticket:
    """The record whose public ID is `text` (brackets and case forgiven), or Refused."""
    match = _ID.fullmatch(text.strip())
    if match is None:
        raise Refused(f"«{text.strip()[:40]}» — не номер заявки; пример: HD-2026-000123")
    ticket = services.desk.ticket_by_public_id(session, match.group(1).upper())
    if ticket is None:
        raise Refused(f"{match.group(1).upper()} не найдена")
    return ticket


def command_args(update: Update, count: int) -> list[str]:
    """Up to `count` words after the command; the last one keeps the rest of the text, newlines too."""
    text = (update.effective_message.text or "") if update.effective_message else ""
    parts = text.split(None, count)
    return [p.strip() for p in parts[1:]]


async def say(update: Update, texts: str | Sequence[str], keyboard: InlineKeyboardMarkup | None = None,
              ) -> Message | None:
    """Send HTML `texts` to the update's chat (a reply to the staff member's message in a group);
    the keyboard goes under the last one."""
    chat = update.effective_chat
    if chat is None:
        return None
    texts = [texts] if isinstance(texts, str) else list(texts)
    msg = update.effective_message
    in_group = chat.type != "private" and update.callback_query is None
    quote = msg.message_id if msg is not None and in_group else None
    sent = None
    for index, text in enumerate(texts):
        sent = await chat.send_message(
            text, parse_mode=ParseMode.HTML, link_preview_options=NO_PREVIEW,
            reply_markup=keyboard if index == len(texts) - 1 else None,
            reply_parameters=ReplyParameters(quote, allow_sending_without_reply=True)
            if quote and index == 0 else None)
    return sent


async def post_card(update: Update, context: DeskContext, ticket_id: int,
                    keyboard: InlineKeyboardMarkup | None = None) -> Message | None:
    """Send a ticket's card to this chat and keep it live (edited on changes; a reply answers)."""
    services = context.services

    def render(s: Session) -> tuple[Rendered, int | None]:
        ticket = s.get(Ticket, ticket_id)
        if ticket is None:
            raise Refused("Запись не найдена")
        shown = latest_message(s, ticket)
        return card(ticket, shown, services.signer, services.zone), shown.id if shown else None

    rendered, shown_id = await services.read(render)
    sent = await say(update, rendered.text, keyboard or rendered.keyboard)
    if sent is not None:
        await services.act(lambda s: remember_card(s, ticket_id, sent.chat_id, sent.message_id, shown_id))
    return sent


def card_for_message(session: Session, chat_id: int, message_id: int) -> ChatCard | None:
    return session.scalar(select(ChatCard).where(ChatCard.chat_id == chat_id,
                                                 ChatCard.message_id == message_id))


def shown_message(session: Session, ticket: Ticket, chat_id: int, message_id: int) -> TicketMessage | None:
    """The message a card in the chat quotes, or the latest one for a message that is not a card."""
    found = card_for_message(session, chat_id, message_id)
    if found is not None and found.ticket_message_id:
        return session.get(TicketMessage, found.ticket_message_id)
    return latest_message(session, ticket)


async def incoming_file(message: Message, context: ContextTypes.DEFAULT_TYPE) -> OutgoingFile | None:
    """The document or photo of `message`, downloaded through getFile, or None."""
    if message.document is not None:
        doc = message.document
        name, ctype, size, file_id = (doc.file_name or "file", doc.mime_type or "application/octet-stream",
                                      doc.file_size, doc.file_id)
    elif message.photo:
        photo = message.photo[-1]  # the largest size
        name, ctype, size, file_id = (f"photo-{photo.file_unique_id}.jpg", "image/jpeg", photo.file_size,
                                      photo.file_id)
    else:
        return None
    if size and size > DOWNLOAD_LIMIT:
        raise Refused(f"Файл «{name}» больше 20 МБ: Telegram не отдаёт боту такие файлы")
    tg_file = await context.bot.get_file(file_id)
    content = bytes(await tg_file.download_as_bytearray())
    return OutgoingFile(filename=name, content_type=ctype, content=content)


def done_line(ticket: Ticket, what: str) -> str:
    return f"{what}: <b>{esc(ticket.public_id)}</b> · {esc(ticket.status)}" + (
        f" · {esc(ticket.assignee)}" if ticket.assignee else "")
