"""Filtered mail as the staff chat shows it (issue 17): one letter's entry with its buttons,
and the daily digest (inboxdesk.digest queues it; the delivery renders it when it sends it).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import select
from sqlalchemy.orm import Session
from telegram import InlineKeyboardButton, InlineKeyboardMarkup

from bot.callbacks import CallbackSigner
from bot.cards import Rendered, esc, trim, when
from storage.models import InboundMessage


def entry(row: InboundMessage, zone: ZoneInfo) -> str:
    """One letter in a list: when, from whom, about what, and why it was filtered."""
    why = "; ".join(row.reasons or ()) or row.disposition or ""
    sender = esc(trim(row.from_addr, 120) or "(без адреса)")
    return (f"🚫 <b>#{row.id}</b> {when(row.received_at, zone)} · {sender}"
            f"\n{esc(trim(row.subject, 200) or '(без темы)')}\n<i>{esc(trim(why, 300))}</i>")


def buttons(rows: Sequence[InlineKeyboardButton]) -> InlineKeyboardMarkup | None:
    return InlineKeyboardMarkup([list(rows[i:i + 2]) for i in range(0, len(rows), 2)]) if rows else None


def mail_buttons(row: InboundMessage, signer: CallbackSigner) -> list[InlineKeyboardButton]:
    return [InlineKeyboardButton(f"👁 #{row.id}", callback_data=signer.encode_mail("mail", row.id)),
            InlineKeyboardButton(f"✅ #{row.id} в заявку", callback_data=signer.encode_mail("acc", row.id))]


def digest(session: Session, payload: dict[str, Any], signer: CallbackSigner, zone: ZoneInfo) -> Rendered:
    """The digest message as it is sent: the letters still filtered, each with its buttons."""
    ids = [int(i) for i in payload.get("inbound_ids", [])]
    rows = list(session.scalars(select(InboundMessage).where(InboundMessage.id.in_(ids)).order_by(
        InboundMessage.id))) if ids else []
    since = when(datetime.fromisoformat(str(payload["since"])), zone)
    count = int(payload.get("count", len(rows)))
    head = (f"📥 <b>Отфильтрованная почта</b> с {since}: {count}. Если среди писем есть заявка, "
            "примите её кнопкой «в заявку»; остальное — в <code>inboxdesk inbound list</code>.")
    more = [f"… и ещё {count - len(rows)}: /filtered"] if count > len(rows) else []
    text = "\n\n".join([head, *(entry(r, zone) for r in rows), *more])
    return Rendered(text, buttons([b for r in rows if r.ticket_id is None for b in mail_buttons(r, signer)]))
