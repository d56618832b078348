"""Slash commands: the same operations as the CLI, each one call of the desk service (BOT-3)."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session
from telegram import BotCommand, InlineKeyboardButton, InlineKeyboardMarkup, Update

from bot.access import require
from bot.answers import command_args, done_line, post_card, say, ticket_named
from bot.cards import esc, history, priority_menu, status_menu, ticket_list, trim
from bot.context import BotServices, DeskContext
from inboxdesk import domain, workflow
from inboxdesk.timers import overdue_records
from inboxdesk.workflow import ROLE_NAMES, Refused
from storage import outbox
from storage.models import OutboxItem, Ticket

COMMANDS = (
    ("start", "Начало работы"),
    ("help", "Что умеет бот"),
    ("new", "Новые заявки и обращения"),
    ("mine", "Мои записи в работе"),
    ("overdue", "Просроченные"),
    ("list", "Список по статусу: /list [статус]"),
    ("show", "Карточка и история: /show ID"),
    ("reply", "Ответ заявителю: /reply ID текст"),
    ("note", "Внутренняя заметка: /note ID текст"),
    ("status", "Сменить статус: /status ID"),
    ("take", "Взять в работу: /take ID"),
    ("assign", "Назначить: /assign ID имя"),
    ("priority", "Приоритет и влияние: /priority ID"),
    ("escalate", "На вторую линию: /escalate ID [комментарий]"),
    ("back", "Вернуть на первую линию: /back ID [комментарий]"),
    ("extend", "Продлить срок обращения: /extend ID дней причина"),
    ("org", "Исправить организацию: /org ID название"),
    ("filtered", "Отфильтрованная почта за сутки"),
    ("find", "Поиск: /find текст"),
    ("phone", "Записать обращение по телефону"),
    ("staff", "Сотрудники (администратор)"),
    ("failed", "Неотправленные письма (администратор)"),
    ("cancel", "Прервать текущий диалог"),
    ("whoami", "Мой Telegram ID и ID этого чата"),
)
BOT_COMMANDS = [BotCommand(name, description) for name, description in COMMANDS]


def _need(args: list[str], count: int, usage: str) -> list[str]:
    if len(args) < count or not all(args[:count]):
        raise Refused(f"Формат: {usage}")
    return args


async def cmd_help(update: Update, context: DeskContext) -> None:
    """/start, /help: who you are to the desk and what the bot does."""
    member = context.member
    lines = [f"Здравствуйте, {esc(member.display)} ({esc(ROLE_NAMES.get(member.role, member.role))}).",
             "Карточки новых заявок и писем приходят в чат поддержки; кнопки под карточкой — действия.",
             "Ответ (reply) на карточку уходит заявителю письмом; приложенный файл или фото — вложением.", ""]
    lines += [f"/{name} — {esc(description)}" for name, description in COMMANDS if name != "start"]
    await say(update, "\n".join(lines))


async def cmd_new(update: Update, context: DeskContext) -> None:
    """/new: records nobody has taken yet."""
    services = context.services
    tickets = await services.read(lambda s: services.desk.list_tickets(s, status=domain.TICKET_NEW)
                                  + services.desk.list_tickets(s, status=domain.APPEAL_NEW))
    await say(update, ticket_list("Новые", tickets))


async def cmd_mine(update: Update, context: DeskContext) -> None:
    """/mine: what is assigned to me and not finished."""
    services, member = context.services, context.member
    tickets = await services.read(lambda s: [t for t in services.desk.list_tickets(s, assignee=member.name)
                                             if t.status not in workflow.DONE])
    await say(update, ticket_list("Мои в работе", tickets))


def overdue_tickets(services: BotServices, session: Session) -> list[Ticket]:
    """Tickets not taken into work within the acceptance time (MAIL-7; the clock paused while
    waiting for the sender) and appeals past their 59-FZ terms: the same list as
    `inboxdesk tickets list --overdue`."""
    return overdue_records(session, services.desk.clock())


async def cmd_overdue(update: Update, context: DeskContext) -> None:
    """/overdue: records past their deadline."""
    services = context.services
    tickets = await services.read(lambda s: overdue_tickets(services, s))
    await say(update, ticket_list("Просроченные", tickets))


async def cmd_list(update: Update, context: DeskContext) -> None:
    """/list [статус]: records in a status, or how many there are in each."""
    services = context.services
    [wanted] = command_args(update, 1) or [""]
    known = [*domain.TICKET_STATUSES, *domain.APPEAL_STATUSES]
    if not wanted:
        tickets = await services.read(lambda s: services.desk.list_tickets(s))
        counts = {st: sum(1 for t in tickets if t.status == st) for st in known}
        lines = [f"{esc(st)}: {n}" for st, n in counts.items() if n] or ["Записей нет."]
        await say(update, "\n".join(["<b>По статусам</b>", *lines, "", "Список: /list статус"]))
        return
    status = next((st for st in known if st.lower() == wanted.lower()), None)
    if status is None:
        raise Refused(f"Статуса «{wanted[:40]}» нет; статусы: {', '.join(known)}")
    tickets = await services.read(lambda s: services.desk.list_tickets(s, status=status))
    await say(update, ticket_list(status, tickets))


async def cmd_find(update: Update, context: DeskContext) -> None:
    """/find текст: search IDs, subjects, senders and letters."""
    services = context.services
    [text] = _need(command_args(update, 1), 1, "/find текст")
    tickets = await services.read(lambda s: services.desk.find(s, text))
    await say(update, ticket_list(f"Найдено по «{text[:60]}»", tickets))


async def cmd_show(update: Update, context: DeskContext) -> None:
    """/show ID: the history, then the live card with its buttons."""
    services = context.services
    [public_id] = _need(command_args(update, 1), 1, "/show ID")[:1]

    def load(s: Session) -> tuple[int, list[str]]:
        ticket = ticket_named(services, s, public_id.split()[0])
        return ticket.id, history(ticket, services.zone)

    ticket_id, texts = await services.read(load)
    await say(update, texts)
    await post_card(update, context, ticket_id)


async def cmd_take(update: Update, context: DeskContext) -> None:
    """/take ID: assign to me and start work."""
    services, member = context.services, context.member
    [public_id] = _need(command_args(update, 1), 1, "/take ID")[:1]
    line = await services.act(lambda s: done_line(
        services.desk.take(s, ticket_named(services, s, public_id), member), "✋ Взято"))
    await say(update, line)


async def cmd_assign(update: Update, context: DeskContext) -> None:
    """/assign ID имя: hand a record to a colleague."""
    services, member = context.services, context.member
    public_id, name = _need(command_args(update, 2), 2, "/assign ID имя")
    line = await services.act(lambda s: done_line(
        services.desk.assign(s, ticket_named(services, s, public_id), member, name.strip()), "👤 Назначено"))
    await say(update, line)


async def cmd_reply(update: Update, context: DeskContext) -> None:
    """/reply ID текст: email the requester (files: answer the card with a document instead)."""
    services, member = context.services, context.member
    public_id, text = _need(command_args(update, 2), 2, "/reply ID текст")
    line = await services.act(lambda s: done_line(
        services.desk.reply(s, ticket_named(services, s, public_id), member, text, ()),
        "✉️ Ответ отправлен заявителю"))
    await say(update, line)


async def cmd_note(update: Update, context: DeskContext) -> None:
    """/note ID текст: an internal note, never emailed."""
    services, member = context.services, context.member
    public_id, text = _need(command_args(update, 2), 2, "/note ID текст")
    line = await services.act(lambda s: done_line(
        services.desk.note(s, ticket_named(services, s, public_id), member, text), "📝 Заметка добавлена"))
    await say(update, line)


async def cmd_escalate(update: Update, context: DeskContext) -> None:
    """/escalate ID [комментарий]: hand to the second line (MAIL-10)."""
    await _line_move(update, context, "/escalate ID [комментарий]", "escalate", "⬆️ На второй линии")


async def cmd_back(update: Update, context: DeskContext) -> None:
    """/back ID [комментарий]: hand an escalated ticket back to the first line."""
    await _line_move(update, context, "/back ID [комментарий]", "deescalate", "⬇️ На первой линии")


async def _line_move(update: Update, context: DeskContext, usage: str, op: str, said: str) -> None:
    services, member = context.services, context.member
    public_id, *comment = _need(command_args(update, 2), 1, usage)
    line = await services.act(lambda s: done_line(getattr(services.desk, op)(
        s, ticket_named(services, s, public_id), member, comment[0] if comment else None), said))
    await say(update, line)


async def cmd_extend(update: Update, context: DeskContext) -> None:
    """/extend ID дней причина: the appeal's one extension of its answer term (APL-6)."""
    services, member = context.services, context.member
    public_id, days, reason = _need(command_args(update, 3), 3, "/extend ID дней причина")
    if not days.isdigit():
        raise Refused("Формат: /extend ID дней причина (дней — число)")
    line = await services.act(lambda s: done_line(services.desk.extend_deadline(
        s, ticket_named(services, s, public_id), member, int(days), reason), "📅 Срок продлён"))
    await say(update, line)


async def cmd_org(update: Update, context: DeskContext) -> None:
    """/org ID название: correct the organisation a request came from."""
    services, member = context.services, context.member
    public_id, name = _need(command_args(update, 2), 2, "/org ID название")
    line = await services.act(lambda s: done_line(services.desk.set_organisation(
        s, ticket_named(services, s, public_id), member, name), "🏥 Организация исправлена"))
    await say(update, line)


async def cmd_status(update: Update, context: DeskContext) -> None:
    """/status ID: the card with the statuses it may move to."""
    await _card_with_menu(update, context, "/status ID", "status")


async def cmd_priority(update: Update, context: DeskContext) -> None:
    """/priority ID: the card with priorities; impacts that fit follow (MAIL-6)."""
    await _card_with_menu(update, context, "/priority ID", "priority")


async def _card_with_menu(update: Update, context: DeskContext, usage: str, menu: str) -> None:
    services = context.services
    [public_id] = _need(command_args(update, 1), 1, usage)[:1]

    def load(s: Session) -> tuple[int, InlineKeyboardMarkup]:
        ticket = ticket_named(services, s, public_id.split()[0])
        if menu == "priority":
            if ticket.kind != domain.TICKET:
                raise Refused("Приоритет и влияние есть только у заявок техподдержки")
            return ticket.id, priority_menu(ticket, services.signer)
        allowed = services.desk.allowed_statuses(ticket)
        if not allowed:
            raise Refused(f"Статус «{ticket.status}» окончательный")
        return ticket.id, status_menu(ticket, allowed, services.signer)

    ticket_id, keyboard = await services.read(load)
    await post_card(update, context, ticket_id, keyboard)


FAILED_SHOWN = 20


async def cmd_failed(update: Update, context: DeskContext) -> None:
    """/failed: letters that could not be sent, each with a button to send it again (admins)."""
    services = context.services
    require(context.member, "retry")

    def load(s: Session) -> list[tuple[str, InlineKeyboardMarkup | None]]:
        shown = []
        for item in s.scalars(select(OutboxItem).where(OutboxItem.channel == "email",
                                                       OutboxItem.status.in_(outbox.RETRYABLE))
                              .order_by(OutboxItem.id).limit(FAILED_SHOWN)):
            ticket = s.get(Ticket, item.ticket_id) if item.ticket_id else None
            text = (f"✉️ <b>#{item.id}</b> {esc(item.purpose)} → {esc(', '.join(item.recipients))}"
                    f"{' · ' + esc(ticket.public_id) if ticket else ''}\n{esc(trim(item.subject, 200))}\n"
                    f"<i>{esc(item.status)}: {esc(trim(item.last_error or '—', 300))}</i>")
            button = (InlineKeyboardMarkup([[InlineKeyboardButton(
                "🔁 Отправить снова", callback_data=services.signer.encode("rty", ticket, str(item.id)))]])
                if ticket else None)  # a letter of no record: `inboxdesk outbox retry` on the server
            shown.append((text, button))
        return shown

    letters = await services.read(load)
    if not letters:
        await say(update, "Неотправленных писем нет")
    for text, button in letters:
        await say(update, text, button)


async def cmd_staff(update: Update, context: DeskContext) -> None:
    """/staff: the staff directory (admins only: it shows Telegram IDs)."""
    services = context.services
    require(context.member, "staff")
    members = await services.read(lambda s: services.desk.staff(s).all())
    lines = [f"{esc(m.name)} · {esc(ROLE_NAMES.get(m.role, m.role))} · {esc(m.full_name or '—')} · "
             f"tg {m.telegram_id or '—'}" for m in members]
    await say(update, "\n".join(["<b>Сотрудники</b>", *lines]))
