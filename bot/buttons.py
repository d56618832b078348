"""Inline buttons under cards. A press is checked before anything happens: a forged one (bad
signature) is refused, a stale one (the ticket changed since the card was drawn) only refreshes
the card. Menus (status, priority, impact) replace the card's buttons in place.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

from sqlalchemy.orm import Session
from telegram import CallbackQuery, ForceReply, InlineKeyboardMarkup, Message, ReplyParameters, Update
from telegram.constants import ParseMode
from telegram.error import BadRequest

from bot.answers import card_for_message, shown_message
from bot.callbacks import Press, state_version
from bot.cards import card, esc, impact_menu, keyboard, priority_menu, status_menu, stored_files
from bot.context import DeskContext
from bot.filtered import accept_mail, show_mail
from bot.notifications import NO_PREVIEW
from inboxdesk import domain
from inboxdesk.workflow import PRIORITIES, Refused
from storage.models import ChatCard, Ticket

log = logging.getLogger(__name__)

FORGED = "Кнопка недействительна: действие не выполнено."
STALE = "Карточка устарела — показываю текущее состояние. Нажмите ещё раз, если нужно."


class Stale(Exception):
    """The ticket changed after the button was drawn."""


def current(session: Session, press: Press) -> Ticket:
    """The pressed ticket, if it is still in the state its button was drawn for."""
    ticket = session.get(Ticket, press.ticket_id)
    if ticket is None:
        raise Refused("Запись не найдена")
    if state_version(ticket) != press.version:
        raise Stale
    return ticket


async def on_press(update: Update, context: DeskContext) -> None:
    """Every card button: check it, then do what it says."""
    query = update.callback_query
    assert query is not None
    press = context.services.signer.decode(query.data)
    if press is None or press.action not in ACTIONS:
        log.warning("telegram: forged or unknown button from user %s: %r", query.from_user.id, query.data)
        await query.answer(FORGED, show_alert=True)
        return
    try:
        await ACTIONS[press.action](query, context, press)
    except Stale:
        await query.answer(STALE, show_alert=True)
        await refresh(query, context, press.ticket_id, force=True)


async def take(query: CallbackQuery, context: DeskContext, press: Press) -> None:
    services, member = context.services, context.member
    await services.act(lambda s: services.desk.take(s, current(s, press), member))
    await query.answer("Взято в работу")
    await refresh(query, context, press.ticket_id)


async def escalate(query: CallbackQuery, context: DeskContext, press: Press) -> None:
    services, member = context.services, context.member
    await services.act(lambda s: services.desk.escalate(s, current(s, press), member))
    await query.answer("Передано на вторую линию")
    await refresh(query, context, press.ticket_id)


async def deescalate(query: CallbackQuery, context: DeskContext, press: Press) -> None:
    services, member = context.services, context.member
    await services.act(lambda s: services.desk.deescalate(s, current(s, press), member))
    await query.answer("Возвращено на первую линию")
    await refresh(query, context, press.ticket_id)


async def set_status(query: CallbackQuery, context: DeskContext, press: Press) -> None:
    services, member = context.services, context.member

    def change(s: Session) -> str:
        ticket = current(s, press)
        known = domain.TICKET_STATUSES if ticket.kind == domain.TICKET else domain.APPEAL_STATUSES
        status = known[int(press.arg)] if press.arg.isdigit() and int(press.arg) < len(known) else ""
        services.desk.change_status(s, ticket, member, status)
        return status

    status = await services.act(change)
    await query.answer(f"Статус: {status}")
    await refresh(query, context, press.ticket_id)


async def set_impact(query: CallbackQuery, context: DeskContext, press: Press) -> None:
    services, member = context.services, context.member
    priority_text, _, index_text = press.arg.partition(".")

    def change(s: Session) -> str:
        ticket = current(s, press)
        priority = int(priority_text) if priority_text.isdigit() else 0
        impacts = services.desk.allowed_impacts(priority)
        if not index_text.isdigit() or int(index_text) >= len(impacts):
            raise Refused("Такого влияния для этого приоритета нет")
        impact = impacts[int(index_text)]
        services.desk.set_priority(s, ticket, member, priority, impact)
        return f"{priority} {PRIORITIES[priority]} / {impact}"

    chosen = await services.act(change)
    await query.answer(f"Приоритет: {chosen}")
    await refresh(query, context, press.ticket_id)


async def retry_letter(query: CallbackQuery, context: DeskContext, press: Press) -> None:
    """An admin sends a failed letter of the pressed record again (issue 9; audited). No state
    check: the letter's own status decides, and a second press is refused by the desk."""
    services, member = context.services, context.member
    letter_id = int(press.arg) if press.arg.isdigit() else 0
    await services.act(lambda s: services.desk.retry_letters(s, member, [letter_id]))
    await query.answer(f"Письмо #{letter_id} снова в очереди на отправку")


async def show_menu(query: CallbackQuery, context: DeskContext, press: Press) -> None:
    """Status menu, priority menu, the impacts of a chosen priority, or back to the card's buttons."""
    services = context.services

    def build(s: Session) -> InlineKeyboardMarkup:
        ticket = current(s, press)
        if press.action == "stm":
            allowed = services.desk.allowed_statuses(ticket)
            if not allowed:
                raise Refused(f"Статус «{ticket.status}» окончательный")
            return status_menu(ticket, allowed, services.signer)
        if press.action == "prm":
            return priority_menu(ticket, services.signer)
        if press.action == "pr":
            priority = int(press.arg) if press.arg.isdigit() else 0
            impacts = services.desk.allowed_impacts(priority)
            if not impacts:
                raise Refused("Такого приоритета нет")
            return impact_menu(ticket, priority, impacts, services.signer)
        return keyboard(ticket, services.signer)

    markup = await services.read(build)
    await query.answer()
    if isinstance(query.message, Message):
        await _edit_markup(query.message, markup)


async def reply_prompt(query: CallbackQuery, context: DeskContext, press: Press) -> None:
    """Ask for the answer as a Telegram reply to a prompt; the prompt answers the same ticket."""
    services, user = context.services, query.from_user
    public_id = await services.read(lambda s: current(s, press).public_id)
    await query.answer()
    message = query.message
    if not isinstance(message, Message):
        return
    mention = f'<a href="tg://user?id={user.id}">{esc(user.first_name)}</a>'
    prompt = await message.chat.send_message(
        f"{mention}, ответьте на это сообщение текстом ответа по <b>{esc(public_id)}</b> — он уйдёт "
        "заявителю письмом. Можно приложить файл или фото.", parse_mode=ParseMode.HTML,
        reply_markup=ForceReply(selective=True, input_field_placeholder=f"Ответ по {public_id}"),
        reply_parameters=ReplyParameters(message.message_id, allow_sending_without_reply=True))
    await services.act(lambda s: _remember_prompt(s, press.ticket_id, prompt))


def _remember_prompt(session: Session, ticket_id: int, prompt: Message) -> None:
    # A prompt is a card that is never edited: a reply to it answers the ticket.
    session.add(ChatCard(ticket_id=ticket_id, chat_id=prompt.chat_id, message_id=prompt.message_id,
                         live=False))


async def send_files(query: CallbackQuery, context: DeskContext, press: Press) -> None:
    """Send the ticket's stored attachments to the chat, as documents."""
    services = context.services

    def load(s: Session) -> list[tuple[str, bytes]]:
        return [(a.filename, a.content or b"") for a in stored_files(current(s, press))]

    files = await services.read(load)
    await query.answer(f"Отправляю файлов: {len(files)}" if files else "Файлов нет")
    message = query.message
    if not isinstance(message, Message):
        return
    for filename, content in files:
        await message.chat.send_document(content, filename=filename, reply_parameters=ReplyParameters(
            message.message_id, allow_sending_without_reply=True))


async def refresh(query: CallbackQuery, context: DeskContext, ticket_id: int, force: bool = False) -> None:
    """Redraw the pressed message as the ticket's current card, unless the outbox edits it anyway
    (it is the ticket's live card in this chat)."""
    message = query.message
    if not isinstance(message, Message):
        return
    services = context.services

    def render(s: Session) -> tuple[str, InlineKeyboardMarkup | None] | None:
        ticket = s.get(Ticket, ticket_id)
        row = card_for_message(s, message.chat_id, message.message_id)
        if ticket is None or (row is not None and row.live and not force):
            return None
        rendered = card(ticket, shown_message(s, ticket, message.chat_id, message.message_id),
                        services.signer, services.zone)
        return rendered.text, rendered.keyboard

    result = await services.read(render)
    if result is None:
        return
    try:
        await message.edit_text(result[0], parse_mode=ParseMode.HTML, reply_markup=result[1],
                                link_preview_options=NO_PREVIEW)
    except BadRequest as exc:
        if "not modified" not in str(exc).lower():
            raise


async def _edit_markup(message: Message, markup: InlineKeyboardMarkup) -> None:
    try:
        await message.edit_reply_markup(reply_markup=markup)
    except BadRequest as exc:
        if "not modified" not in str(exc).lower():
            raise


Action = Callable[[CallbackQuery, DeskContext, Press], Awaitable[None]]
ACTIONS: dict[str, Action] = {
    "take": take, "esc": escalate, "dsc": deescalate, "st": set_status, "im": set_impact, "stm": show_menu,
    "prm": show_menu, "pr": show_menu, "back": show_menu, "rep": reply_prompt, "files": send_files,
    "rty": retry_letter, "mail": show_mail, "acc": accept_mail,
}
