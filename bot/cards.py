"""What staff see in Telegram: ticket cards, lists and histories in HTML parse mode, with buttons.

Every string that came from a sender or a staff member goes through `esc`; texts are trimmed so a
message stays inside Telegram's 4096 characters (counted as the reader sees them, in UTF-16).
"""

from __future__ import annotations

import html
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from zoneinfo import ZoneInfo

from telegram import InlineKeyboardButton, InlineKeyboardMarkup

from bot.callbacks import CallbackSigner
from inboxdesk import domain, localtime
from inboxdesk.desk import size_text
from inboxdesk.settings import Settings
from inboxdesk.workflow import PRIORITIES, priority_label
from storage import outbox
from storage.models import Attachment, OutboxItem, Ticket, TicketMessage

TEXT_LIMIT = 4096
CAPTION_LIMIT = 1024
BODY_LIMIT = 3000  # characters of the quoted mail on a card, before fitting the whole card
FINISHED = frozenset({domain.TICKET_CLOSED, domain.APPEAL_DONE})
KIND_NAMES = {domain.TICKET: "заявка", domain.APPEAL: "обращение"}
_TAG = re.compile(r"<[^>]+>")


@dataclass(frozen=True)
class Rendered:
    text: str
    keyboard: InlineKeyboardMarkup | None = None


def esc(value: object) -> str:
    """User text made safe for HTML parse mode."""
    return html.escape(str(value if value is not None else ""), quote=False)


def visible_len(text: str) -> int:
    """Length of an HTML-mode text as Telegram counts it (UTF-16 units, tags removed)."""
    return len(html.unescape(_TAG.sub("", text)).encode("utf-16-le")) // 2


def trim(text: str, limit: int) -> str:
    """`text` without runs of blank lines, cut to `limit` characters with an ellipsis."""
    text = re.sub(r"\n{3,}", "\n\n", (text or "").replace("\r", "")).strip()
    return text if len(text) <= limit else text[: max(0, limit - 1)].rstrip() + "…"


def fit(make: Callable[[int], str], budget: int, limit: int = TEXT_LIMIT) -> str:
    """`make(budget)` with the budget of its longest part shrunk until the result fits `limit`."""
    text = make(budget)
    while visible_len(text) > limit and budget > 0:
        budget = max(0, budget - (visible_len(text) - limit) - 16)
        text = make(budget)
    return text


def display_zone(settings: Settings) -> ZoneInfo:
    """Times are shown in the desk's working time zone."""
    return ZoneInfo(settings.worktime.tz)


def when(at: datetime | None, zone: ZoneInfo) -> str:
    return localtime.minute(at, zone)


def files_line(files: Iterable[Attachment], limit: int = 20) -> str:
    files = list(files)
    parts = [f"{esc(trim(a.filename, 100))} ({size_text(a.size)}"
             f"{'' if a.content is not None else ', не сохранён'})" for a in files[:limit]]
    more = f" и ещё {len(files) - limit}" if len(files) > limit else ""
    return f"📎 {', '.join(parts)}{more}" if parts else ""


def stored_files(ticket: Ticket) -> list[Attachment]:
    return [a for m in ticket.messages for a in m.attachments if a.content is not None]


# -- the card -------------------------------------------------------------------------------------

def card(ticket: Ticket, shown: TicketMessage | None, signer: CallbackSigner, zone: ZoneInfo) -> Rendered:
    """A ticket's card: its state, the mail it announces (new text only) and its buttons."""
    inbound = [m for m in ticket.messages if m.direction == "in"]
    if shown is not None and inbound and shown.id != inbound[0].id:
        headline = "✉️ Письмо заявителя"
    else:
        headline = "🆕 Новая заявка" if ticket.kind == domain.TICKET else "🆕 Новое обращение"
    head = [f"{headline} <b>{esc(ticket.public_id)}</b>", *summary_lines(ticket, zone)]

    def make(budget: int) -> str:
        lines = list(head)
        if shown is not None:
            lines.append(f"\n<b>Письмо от {when(shown.at, zone)}:</b>")
            body = trim(shown.body, budget)
            if body:
                lines.append(f"<blockquote>{esc(body)}</blockquote>")
            lines.append(files_line(shown.attachments))
        return "\n".join(line for line in lines if line)

    return Rendered(fit(make, BODY_LIMIT), keyboard(ticket, signer))


def summary_lines(ticket: Ticket, zone: ZoneInfo) -> list[str]:
    """State lines shared by cards and /show."""
    lines = [f"{KIND_NAMES.get(ticket.kind, esc(ticket.kind)).capitalize()} · <b>{esc(ticket.status)}</b>"
             f" · получено {when(ticket.created_at, zone)}",
             f"<b>Тема:</b> {esc(trim(ticket.subject, 300) or '(без темы)')}",
             f"<b>От:</b> {esc(trim(ticket.requester_name, 200))} {_contact(ticket)}"]
    if ticket.sender_check:
        lines.append(f"⚠️ <b>Отправитель не подтверждён:</b> {esc(trim(ticket.sender_check, 300))}")
    if ticket.organisation:
        lines.append(f"<b>Организация:</b> {esc(trim(ticket.organisation, 200))}")
    if ticket.kind == domain.TICKET:
        prio = priority_label(ticket.priority) or "не задан"
        lines.append(f"<b>Приоритет:</b> {esc(prio)} · <b>Влияние:</b> {esc(ticket.impact or 'не задано')}")
    if ticket.kind == domain.APPEAL and ticket.answer_due_at and ticket.status != domain.APPEAL_DONE:
        lines.append(f"<b>Срок ответа:</b> до {localtime.day(ticket.answer_due_at, zone)}")
    owner = esc(ticket.assignee) if ticket.assignee else "не назначен"
    lines.append(f"<b>Исполнитель:</b> {owner}" + (" · 2-я линия" if ticket.line == 2 else ""))
    lost = undelivered(ticket)
    if lost is not None:  # nothing hidden from staff: the sender did not get our letter
        what = "вернулось" if lost.status == outbox.BOUNCED else "не отправлено"
        lines.append(f"⚠️ <b>Письмо {what}:</b> {esc(lost.purpose)} → {esc(', '.join(lost.recipients))}: "
                     f"{esc(trim(lost.last_error or '—', 200))} (отправить снова: /failed)")
    return lines


def undelivered(ticket: Ticket) -> OutboxItem | None:
    """The record's latest email that failed or came back, unless a later one to the same
    people went out after it."""
    emails = [o for o in ticket.letters if o.channel == "email"]
    for index in range(len(emails) - 1, -1, -1):
        letter = emails[index]
        if letter.status in outbox.RETRYABLE:
            resent = any(o.status == outbox.SENT and o.recipients == letter.recipients
                         for o in emails[index + 1:])
            return None if resent else letter
    return None


def letters_block(ticket: Ticket, zone: ZoneInfo, last: int = 10) -> str | None:
    """/show: the record's emails with their delivery state, newest last."""
    emails = [o for o in ticket.letters if o.channel == "email"][-last:]
    if not emails:
        return None
    marks = {outbox.SENT: "✅", outbox.PENDING: "⏳", outbox.FAILED: "❌", outbox.BOUNCED: "↩️"}
    rows = [f"{marks.get(o.status, '•')} {when(o.sent_at or o.created_at, zone)} {esc(o.purpose)} → "
            f"{esc(trim(', '.join(o.recipients), 120))}"
            + (f": {esc(trim(o.last_error, 150))}" if o.status in outbox.RETRYABLE and o.last_error else "")
            for o in emails]
    return "<b>Письма</b>\n" + "\n".join(rows)


def _contact(ticket: Ticket) -> str:
    """`&lt;address&gt;`, or the phone a caller left, never an empty `<>`."""
    if ticket.requester_email:
        return f"&lt;{esc(ticket.requester_email)}&gt;"
    phone = (ticket.fields or {}).get("Телефон")
    return f"тел. {esc(phone)}" if phone else "(без адреса)"


def keyboard(ticket: Ticket, signer: CallbackSigner) -> InlineKeyboardMarkup:
    """Take, reply, status, priority/complete, escalate, files: what fits the record's kind."""
    def button(label: str, action: str, arg: str = "") -> InlineKeyboardButton:
        return InlineKeyboardButton(label, callback_data=signer.encode(action, ticket, arg))

    rows: list[list[InlineKeyboardButton]] = []
    if ticket.status not in FINISHED:
        rows.append([button("✋ Взять", "take"), button("✉️ Ответить", "rep")])
        second = [button("🔄 Статус", "stm")]
        if ticket.kind == domain.TICKET:
            second.append(button("⚡ Приоритет", "prm"))
        else:
            second.append(button("✅ Выполнить", "done"))
        rows.append(second)
    third = []
    if ticket.kind == domain.TICKET and ticket.status not in FINISHED:
        third.append(button("⬆️ Эскалировать", "esc") if ticket.line == 1
                     else button("⬇️ На 1-ю линию", "dsc"))
    count = len(stored_files(ticket))
    if count:
        third.append(button(f"📎 Файлы ({count})", "files"))
    if third:
        rows.append(third)
    return InlineKeyboardMarkup(rows)


def menu(ticket: Ticket, signer: CallbackSigner, options: Sequence[tuple[str, str, str]]
         ) -> InlineKeyboardMarkup:
    """One button per (label, action, arg), two a row, and a way back to the card's buttons."""
    buttons = [InlineKeyboardButton(label, callback_data=signer.encode(action, ticket, arg))
               for label, action, arg in options]
    rows = [buttons[i:i + 2] for i in range(0, len(buttons), 2)]
    rows.append([InlineKeyboardButton("« Назад", callback_data=signer.encode("back", ticket))])
    return InlineKeyboardMarkup(rows)


def status_menu(ticket: Ticket, allowed: Sequence[str], signer: CallbackSigner) -> InlineKeyboardMarkup:
    """The statuses `ticket` may move to; completing an appeal opens its dialogue (APL-5)."""
    known = domain.TICKET_STATUSES if ticket.kind == domain.TICKET else domain.APPEAL_STATUSES
    completes = ticket.kind == domain.APPEAL
    options = [("✅ Выполнено (ответ)", "done", "") if completes and st == domain.APPEAL_DONE
               else (st, "st", str(known.index(st))) for st in allowed if st in known]
    return menu(ticket, signer, options)


def priority_menu(ticket: Ticket, signer: CallbackSigner) -> InlineKeyboardMarkup:
    return menu(ticket, signer, [(f"{n} {name}", "pr", str(n)) for n, name in PRIORITIES.items()])


def impact_menu(ticket: Ticket, priority: int, impacts: Sequence[str], signer: CallbackSigner
                ) -> InlineKeyboardMarkup:
    """Only the impacts that fit `priority` (MAIL-6)."""
    return menu(ticket, signer, [(impact, "im", f"{priority}.{i}") for i, impact in enumerate(impacts)])


# -- lists and histories ----------------------------------------------------------------------------

def ticket_line(ticket: Ticket) -> str:
    owner = f" · {esc(ticket.assignee)}" if ticket.assignee else ""
    return (f"<code>{esc(ticket.public_id)}</code> · {esc(ticket.status)}{owner} · "
            f"{esc(trim(ticket.subject, 70) or '(без темы)')}")


def ticket_list(title: str, tickets: Sequence[Ticket], limit: int = 50) -> list[str]:
    """A titled list of tickets, split into messages that fit."""
    if not tickets:
        return [f"{title}: нет."]
    lines = [ticket_line(t) for t in tickets[:limit]]
    more = [f"… и ещё {len(tickets) - limit}"] if len(tickets) > limit else []
    return pack([f"<b>{esc(title)}</b> ({len(tickets)}):", *lines, *more])


def history(ticket: Ticket, zone: ZoneInfo, older: int = 800, newest: int = 12000,
            last: int = 15) -> list[str]:
    """/show: the state, then the last messages (newest last; the sender's latest mail nearly
    whole, split over several Telegram messages when long), packed into messages that fit."""
    blocks = [f"<b>{esc(ticket.public_id)}</b>\n" + "\n".join(summary_lines(ticket, zone))]
    messages = list(ticket.messages)
    if len(messages) > last:
        blocks.append(f"… ещё {len(messages) - last} сообщ. раньше")
    marks = {"in": "⬅️ Письмо", "out": "➡️ Ответ", "note": "📝 Заметка"}
    latest_in = next((m for m in reversed(messages) if m.direction == "in"), None)
    for m in messages[-last:]:
        who = esc(m.author or m.from_addr)
        head = f"<b>{marks.get(m.direction, esc(m.direction))}</b> {when(m.at, zone)} · {who}"
        chunks = chunked(trim(m.body, newest if m is latest_in else older), 3000)
        for index, chunk in enumerate(chunks or [""]):
            block = head if index == 0 else f"{head} (продолжение {index + 1}/{len(chunks)})"
            blocks.append(block + (f"\n<blockquote>{esc(chunk)}</blockquote>" if chunk else ""))
        files = files_line(m.attachments)
        if files:
            blocks[-1] += f"\n{files}"
    letters = letters_block(ticket, zone)
    if letters:
        blocks.append(letters)
    return pack(blocks)


def chunked(text: str, size: int) -> list[str]:
    """`text` in pieces of at most `size` characters, cut at line ends where there are any."""
    pieces: list[str] = []
    while len(text) > size:
        cut = text.rfind("\n", 0, size)
        cut = cut if cut > size // 2 else size
        pieces.append(text[:cut].rstrip())
        text = text[cut:].lstrip("\n")
    return [*pieces, text] if text else pieces


def pack(blocks: Sequence[str], limit: int = TEXT_LIMIT) -> list[str]:
    """Join well-formed HTML blocks into as few messages as fit; a block never straddles two."""
    messages: list[str] = []
    current = ""
    for block in blocks:
        candidate = f"{current}\n{block}" if current else block
        if current and visible_len(candidate) > limit:
            messages.append(current)
            candidate = block
        current = candidate
    if current:
        messages.append(current)
    return messages
