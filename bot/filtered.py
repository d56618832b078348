"""Filtered mail in the staff chat (issue 17: nothing hidden from staff): `/filtered` for the last
day, and the buttons under each letter (here and in the daily digest): read it, or take it in as a
request (first line; audited).
"""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session
from telegram import CallbackQuery, InlineKeyboardMarkup, Message, Update
from telegram.constants import ParseMode

from bot.answers import say
from bot.callbacks import Press
from bot.cards import chunked, esc, trim
from bot.context import DeskContext
from bot.mail_cards import buttons, entry, mail_buttons
from inboxdesk.digest import filtered_since
from mailflow.intake import accept_filtered
from mailflow.parsing import parse_message
from storage.models import InboundMessage, utcnow

LISTED = 20  # /filtered lists at most this many, newest last


async def cmd_filtered(update: Update, context: DeskContext) -> None:
    """/filtered: what the rules filtered in the last day, each with its buttons."""
    services = context.services

    def load(s: Session) -> list[tuple[str, InlineKeyboardMarkup | None]]:
        ids = list(s.scalars(filtered_since(utcnow() - timedelta(days=1))))[-LISTED:]
        rows = s.scalars(select(InboundMessage).where(InboundMessage.id.in_(ids)).order_by(InboundMessage.id))
        return [(entry(r, services.zone), buttons(mail_buttons(r, services.signer))) for r in rows]

    shown = await services.read(load)
    if not shown:
        await say(update, "За сутки ничего не отфильтровано")
    for text, keyboard in shown:
        await say(update, text, keyboard)


async def show_mail(query: CallbackQuery, context: DeskContext, press: Press) -> None:
    """👁: the filtered letter itself, as its sender wrote it (text only; files stay on the server)."""
    services = context.services

    def load(s: Session) -> list[str]:
        row = s.get(InboundMessage, int(press.arg))
        if row is None:
            return ["Письмо не найдено"]
        if row.raw_deleted_at is not None:
            return [entry(row, services.zone) + "\n\nИсходное письмо удалено по сроку хранения."]
        msg = parse_message(row.raw)
        files = ", ".join(a.filename or "без имени" for a in msg.attachments)
        body = [f"<blockquote>{esc(part)}</blockquote>" for part in chunked(trim(msg.text, 9000), 3000)]
        return [entry(row, services.zone) + (f"\n📎 {esc(trim(files, 300))}" if files else ""), *body]

    texts = await services.read(load)
    await query.answer()
    message = query.message
    if isinstance(message, Message):
        for text in texts:
            await message.chat.send_message(text, parse_mode=ParseMode.HTML)


async def accept_mail(query: CallbackQuery, context: DeskContext, press: Press) -> None:
    """✅: take the letter in as a request; its card follows in the chat like any new one."""
    services, member = context.services, context.member
    public_id = await services.act(
        lambda s: accept_filtered(s, services.desk, int(press.arg), member).public_id)
    await query.answer(f"Принято: {public_id}")
