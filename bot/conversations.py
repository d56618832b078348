"""Dialogues of several steps (`ConversationHandler`), one per staff member and chat.

Completing an appeal asks for the answer text or a copy of the paper answer (APL-5), then calls
the desk, which writes to the department and the applicant. `/phone` registers a caller's request
step by step (MAIL-11). `/cancel` leaves either. A refusal says why and keeps the step open.
"""

from __future__ import annotations

import warnings
from typing import Any

from sqlalchemy.orm import Session
from telegram import ForceReply, Message, Update
from telegram.constants import ParseMode
from telegram.ext import CallbackQueryHandler, CommandHandler, ConversationHandler, MessageHandler, filters
from telegram.warnings import PTBUserWarning

from bot.answers import done_line, incoming_file, say
from bot.buttons import FORGED, STALE, Stale, current, refresh
from bot.cards import esc
from bot.context import DeskContext
from inboxdesk import domain
from inboxdesk.workflow import Refused
from storage.models import Ticket

ANSWER = 0
PHONE_STEPS = ("caller_name", "caller_phone", "caller_email", "subject", "text")
PHONE_QUESTIONS = {
    "caller_name": "ФИО звонившего?",
    "caller_phone": "Телефон для связи?",
    "caller_email": "Адрес эл. почты для ответа (или «-», если нет)?",
    "subject": "Тема обращения?",
    "text": "Суть обращения (как можно подробнее)?",
}
FILES = filters.Document.ALL | filters.PHOTO
TEXT = filters.TEXT & ~filters.COMMAND


def _key(update: Update, what: str) -> str:
    return f"{what}:{update.effective_chat.id if update.effective_chat else 0}"


def _data(context: DeskContext) -> dict[str, Any]:
    assert context.user_data is not None
    return context.user_data


def _mention(update: Update) -> str:
    user = update.effective_user
    return f'<a href="tg://user?id={user.id}">{esc(user.first_name)}</a>' if user else ""


# -- completing an appeal (APL-5) ------------------------------------------------------------------

async def start_completion(update: Update, context: DeskContext) -> int:
    """The "complete" button: check it, then ask for the answer."""
    query = update.callback_query
    assert query is not None
    services = context.services
    press = services.signer.decode(query.data)
    if press is None or press.action != "done":
        await query.answer(FORGED, show_alert=True)
        return ConversationHandler.END

    def check(s: Session) -> str:
        ticket = current(s, press)
        if ticket.kind != domain.APPEAL or domain.APPEAL_DONE not in services.desk.allowed_statuses(ticket):
            raise Refused(f"{ticket.public_id}: из «{ticket.status}» нельзя в «{domain.APPEAL_DONE}»")
        return ticket.public_id

    try:
        public_id = await services.read(check)
    except Stale:
        await query.answer(STALE, show_alert=True)
        await refresh(query, context, press.ticket_id, force=True)
        return ConversationHandler.END
    await query.answer()
    _data(context)[_key(update, "complete")] = press.ticket_id
    message = query.message
    if isinstance(message, Message):
        await message.chat.send_message(
            f"{_mention(update)}, выполнение <b>{esc(public_id)}</b>: пришлите текст ответа заявителю "
            "или файл с копией бумажного ответа (скан). /cancel — отмена.", parse_mode=ParseMode.HTML,
            reply_markup=ForceReply(selective=True, input_field_placeholder=f"Ответ по {public_id}"))
    return ANSWER


async def complete(update: Update, context: DeskContext) -> int:
    """The answer (text, or a file with an optional caption): the appeal becomes `Выполнено`."""
    message = update.effective_message
    assert message is not None
    services, member = context.services, context.member
    ticket_id = _data(context).get(_key(update, "complete"))
    upload = await incoming_file(message, context)
    text = message.text or message.caption or ""

    def done(s: Session) -> str:
        ticket = s.get(Ticket, ticket_id)
        if ticket is None:
            raise Refused("Обращение не найдено")
        services.desk.complete_appeal(s, ticket, member, text, (upload,) if upload else ())
        return done_line(ticket, "✅ Выполнено") + "\nПисьма департаменту и заявителю поставлены в отправку."

    await say(update, await services.act(done))
    _data(context).pop(_key(update, "complete"), None)
    return ConversationHandler.END


# -- a request taken by phone (MAIL-11) --------------------------------------------------------------

async def start_phone(update: Update, context: DeskContext) -> int:
    """/phone: register a caller's request, one question at a time."""
    boxes = [b.name for b in context.services.settings.mailboxes if b.kind == "tickets"]
    if not boxes:
        raise Refused("Нет почтового ящика заявок, в котором можно зарегистрировать звонок")
    _data(context)[_key(update, "phone")] = {"mailbox": boxes[0]}
    await say(update, f"📞 Новая заявка по телефону. /cancel — отмена.\n{PHONE_QUESTIONS[PHONE_STEPS[0]]}")
    return 1


async def phone_step(update: Update, context: DeskContext) -> int:
    """One answer of the /phone dialogue; after the last one the request is registered."""
    message = update.effective_message
    assert message is not None and message.text is not None
    answers: dict[str, str] = _data(context).setdefault(_key(update, "phone"), {})
    step = next(s for s in PHONE_STEPS if s not in answers)
    value = message.text.strip()
    answers[step] = "" if step == "caller_email" and value in ("-", "—", "нет") else value
    remaining = [s for s in PHONE_STEPS if s not in answers]
    if remaining:
        await say(update, PHONE_QUESTIONS[remaining[0]])
        return 1
    services, member = context.services, context.member

    def register(s: Session) -> str:
        ticket = services.desk.register_phone_request(s, member, **answers)
        return done_line(ticket, "📞 Зарегистрировано")

    try:
        line = await services.act(register)
    except Refused as exc:
        for key in ("caller_email", "subject", "text"):  # ask again for what may have been refused
            answers.pop(key, None)
        await say(update, f"⛔ {esc(str(exc))}\n{PHONE_QUESTIONS['caller_email']}")
        return 1
    _data(context).pop(_key(update, "phone"), None)
    await say(update, line)
    return ConversationHandler.END


async def cancel(update: Update, context: DeskContext) -> int:
    """/cancel: leave the dialogue, nothing is changed."""
    for what in ("complete", "phone"):
        _data(context).pop(_key(update, what), None)
    await say(update, "Отменено.")
    return ConversationHandler.END


def conversation_handlers() -> list[ConversationHandler[Any]]:
    """The dialogues, to be registered before the plain handlers."""
    with warnings.catch_warnings():
        # A button starts the completion and a text message ends it, so the dialogue is tracked
        # per chat and user rather than per message; PTB warns about exactly this combination.
        warnings.filterwarnings("ignore", category=PTBUserWarning, message=".*per_message.*")
        completion = ConversationHandler(
            entry_points=[CallbackQueryHandler(start_completion, pattern=r"^done:")],
            states={ANSWER: [MessageHandler(TEXT | FILES, complete)]},
            fallbacks=[CommandHandler("cancel", cancel)],
            allow_reentry=True, name="complete_appeal")
    phone = ConversationHandler(
        entry_points=[CommandHandler("phone", start_phone)],
        states={1: [MessageHandler(TEXT, phone_step)]},
        fallbacks=[CommandHandler("cancel", cancel)],
        allow_reentry=True, name="phone_request")
    return [completion, phone]
