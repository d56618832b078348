"""Cards in the staff chat, sent through the outbox so none is lost.

The desk calls `CardQueue` inside the transaction of every change: a new record or a sender's
reply queues a new card (`card_post`), any other change queues an edit (`card_edit`). The card is
rendered when it is sent, from the state committed by then, so a late edit never shows an older
state. `TelegramDelivery` sends the rows; a 429 waits `retry_after`, an unreachable or failing
server (timeouts, 5xx) delays the rows without using up their attempts, and a refusal that will
not change (chat not found, bot blocked) marks the row failed, visible in `outbox list`.
"""

from __future__ import annotations

import asyncio
import json
import logging
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session
from telegram import Bot, LinkPreviewOptions
from telegram.constants import ParseMode
from telegram.error import (
    BadRequest,
    ChatMigrated,
    Forbidden,
    InvalidToken,
    NetworkError,
    RetryAfter,
)
from telegram.warnings import PTBDeprecationWarning

from bot.callbacks import CallbackSigner
from bot.cards import Rendered, card, display_zone
from bot.mail_cards import digest
from inboxdesk.digest import DIGEST
from inboxdesk.settings import Settings
from inboxdesk.timers import ALERT
from storage import outbox
from storage.db import Database
from storage.models import ChatCard, OutboxItem, Ticket, TicketMessage, utcnow

log = logging.getLogger(__name__)

CHANNEL = "telegram"
POST, EDIT = "card_post", "card_edit"
POST_EVENTS = frozenset({"created", "sender_reply"})
QUIET_EVENTS = frozenset({"note", "reply"})  # nothing a card shows changes: no edit (flood limits)
LEASE = timedelta(minutes=2)
NO_PREVIEW = LinkPreviewOptions(is_disabled=True)


def latest_message(session: Session, ticket: Ticket) -> TicketMessage | None:
    """The newest mail from the sender, else the newest message of any kind."""
    for directions in (("in",), ("in", "out", "note")):
        found = session.scalar(select(TicketMessage).where(
            TicketMessage.ticket_id == ticket.id, TicketMessage.direction.in_(directions),
        ).order_by(TicketMessage.id.desc()).limit(1))
        if found is not None:
            return found
    return None


class CardQueue:
    """Desk listener: a change of a ticket becomes a Telegram outbox row in the same transaction."""

    def __init__(self, chat_id: int, clock: Callable[[], datetime] = utcnow) -> None:
        self.chat_id, self.clock = chat_id, clock

    def __call__(self, session: Session, ticket: Ticket, event: str) -> None:
        session.flush()
        if event in POST_EVENTS:
            shown = latest_message(session, ticket)
            self._add(session, ticket, POST, {"ticket_id": ticket.id, "chat_id": self.chat_id,
                                              "ticket_message_id": shown.id if shown else None})
            return
        if event in QUIET_EVENTS:
            return
        waiting = select(OutboxItem.id).where(
            OutboxItem.channel == CHANNEL, OutboxItem.purpose.in_((POST, EDIT)),
            OutboxItem.ticket_id == ticket.id, OutboxItem.status == outbox.PENDING,
            OutboxItem.claimed_by.is_(None)).limit(1)
        if session.get_bind().dialect.name == "postgresql":
            # Keep that row from being claimed (and rendered) before this change commits.
            waiting = waiting.with_for_update(skip_locked=True)
        if session.scalar(waiting) is None:  # a card still waiting will show this change anyway
            self._add(session, ticket, EDIT, {"ticket_id": ticket.id})

    def _add(self, session: Session, ticket: Ticket, purpose: str, payload: dict[str, Any]) -> None:
        now = self.clock()
        session.add(OutboxItem(
            channel=CHANNEL, purpose=purpose, ticket_id=ticket.id, to_addr=str(self.chat_id),
            recipients=[self.chat_id], subject=ticket.public_id,
            payload=json.dumps(payload).encode(), created_at=now, next_attempt_at=now))


@dataclass(frozen=True)
class Row:
    id: int
    purpose: str
    payload: dict[str, Any]


@dataclass(frozen=True)
class Target:
    """One card to send (`card_id` None) or to edit."""

    chat_id: int
    rendered: Rendered
    card_id: int | None = None
    message_id: int | None = None
    ticket_message_id: int | None = None


class Outage(Exception):
    """Telegram as a whole is unreachable or asks us to wait: no row's fault."""

    def __init__(self, message: str, delay: float | None = None) -> None:
        super().__init__(message)
        self.delay = delay


class TelegramDelivery:
    """Sends due Telegram rows of the outbox with the bot's own client."""

    def __init__(self, db: Database, settings: Settings, bot: Bot, signer: CallbackSigner) -> None:
        self.db, self.settings, self.bot, self.signer = db, settings, bot, signer
        self.cfg = settings.telegram
        self.outages = 0
        self.wake: Callable[[], None] | None = None  # called when waiting rows become due again
        self.recovered = False  # the rows of a killed process of this host were freed
        self.watch: outbox.AttemptWatcher = outbox.unwatched

    async def deliver_due(self, limit: int = 50) -> int:
        """Send what is due; returns how many rows were done."""
        rows = await asyncio.to_thread(self._claim, limit)
        done = 0
        for index, row in enumerate(rows):
            try:
                await self._deliver(row)
            except Outage as exc:
                self.watch(CHANNEL, outbox.UNAVAILABLE)
                self.outages += 1
                delay = exc.delay if exc.delay is not None else min(
                    self.cfg.retry_base_seconds * 2 ** (self.outages - 1), 300.0)
                log.warning("telegram: %s; %d card(s) wait, next try in %.0f s", exc, len(rows) - index,
                            delay)
                await asyncio.to_thread(self._release, [r.id for r in rows[index:]], delay)
                if self.wake is not None:  # honour retry_after to the second, not the next tick
                    asyncio.get_running_loop().call_later(delay + 0.05, self.wake)
                return done
            except (BadRequest, Forbidden, ChatMigrated) as exc:
                await asyncio.to_thread(self._failed, row, f"Telegram: {exc}", True)
            except Exception as exc:  # our own fault: the row waits for its next attempt
                log.exception("telegram: outbox #%s failed", row.id)
                await asyncio.to_thread(self._failed, row, f"{type(exc).__name__}: {exc}", False)
            else:
                self.watch(CHANNEL, outbox.SENT)
                done += 1
        self.outages = 0
        return done

    async def _deliver(self, row: Row) -> None:
        targets = await asyncio.to_thread(self._targets, row)
        for target in targets:
            await self._send(row, target)
        await asyncio.to_thread(self._sent, row.id)

    async def _send(self, row: Row, target: Target) -> None:
        text, markup = target.rendered.text, target.rendered.keyboard
        try:
            if target.card_id is None:
                msg = await self.bot.send_message(target.chat_id, text, parse_mode=ParseMode.HTML,
                                                  reply_markup=markup, link_preview_options=NO_PREVIEW)
                if row.purpose not in (ALERT, DIGEST):  # a message as it is, not a card to keep editing
                    await asyncio.to_thread(self._posted, row, target, msg.message_id)
                return
            await self.bot.edit_message_text(text, chat_id=target.chat_id, message_id=target.message_id,
                                             parse_mode=ParseMode.HTML, reply_markup=markup,
                                             link_preview_options=NO_PREVIEW)
        except RetryAfter as exc:
            delay = _retry_seconds(exc)
            raise Outage(f"flood control, retry after {delay:g} s", delay) from None
        except BadRequest as exc:
            message = str(exc).lower()
            if "not modified" in message:
                return  # the card already shows this state
            if target.card_id is not None and ("not found" in message or "can't be edited" in message):
                # The card was deleted in the chat (or is too old to edit): post a fresh one.
                await asyncio.to_thread(self._retire, target.card_id)
                await self._send(row, Target(target.chat_id, target.rendered,
                                             ticket_message_id=target.ticket_message_id))
                return
            raise
        except InvalidToken as exc:
            raise Outage(f"the bot token is not accepted ({exc})") from None
        except (Forbidden, ChatMigrated):
            raise
        except NetworkError as exc:  # timeouts, 5xx, connection refused
            raise Outage(str(exc) or type(exc).__name__) from None

    # -- database steps (in threads) -------------------------------------------------------------

    def _claim(self, limit: int) -> list[Row]:
        with self.db.transaction() as s:
            if not self.recovered:  # like the email delivery: a killed process's cards go out now
                if released := outbox.release_dead_claims(s, CHANNEL):
                    log.info("telegram: %d row(s) left claimed by a stopped process are due again", released)
                self.recovered = True
            items = outbox.claim_due(s, CHANNEL, limit, LEASE)
            return [Row(i.id, i.purpose, json.loads(i.payload)) for i in items]

    def _targets(self, row: Row) -> list[Target]:
        if row.purpose == ALERT:  # a deadline warning or reminder notice (inboxdesk.timers), as written
            return [Target(int(row.payload["chat_id"]), Rendered(str(row.payload["text"])))]
        with self.db.sessions() as s:
            if row.purpose == DIGEST:  # filtered mail of the day, with buttons signed now
                return [Target(int(row.payload["chat_id"]),
                               digest(s, row.payload, self.signer, display_zone(self.settings)))]
            ticket = s.get(Ticket, row.payload.get("ticket_id"))
            if ticket is None:
                return []
            zone = display_zone(self.settings)
            if row.purpose == POST:
                shown = s.get(TicketMessage, row.payload.get("ticket_message_id") or 0)
                return [Target(int(row.payload["chat_id"]), card(ticket, shown, self.signer, zone),
                               ticket_message_id=shown.id if shown else None)]
            cards = list(s.scalars(select(ChatCard).where(ChatCard.ticket_id == ticket.id,
                                                          ChatCard.live.is_(True)).order_by(ChatCard.id)))
            if not cards:
                earlier_post = s.scalar(select(OutboxItem.id).where(
                    OutboxItem.channel == CHANNEL, OutboxItem.purpose == POST,
                    OutboxItem.ticket_id == ticket.id, OutboxItem.status == outbox.PENDING,
                    OutboxItem.id < row.id).limit(1))
                if earlier_post is not None or not self.cfg.staff_chat_id:
                    return []  # the card on its way is rendered when it leaves: nothing to edit yet
                shown = latest_message(s, ticket)
                return [Target(self.cfg.staff_chat_id, card(ticket, shown, self.signer, zone),
                               ticket_message_id=shown.id if shown else None)]
            targets = []
            for c in cards:
                shown = s.get(TicketMessage, c.ticket_message_id) if c.ticket_message_id else None
                targets.append(Target(c.chat_id, card(ticket, shown, self.signer, zone), c.id, c.message_id,
                                      c.ticket_message_id))
            return targets

    def _posted(self, row: Row, target: Target, message_id: int) -> None:
        ticket_id = int(row.payload["ticket_id"])
        with self.db.transaction() as s:
            remember_card(s, ticket_id, target.chat_id, message_id, target.ticket_message_id)

    def _retire(self, card_id: int) -> None:
        with self.db.transaction() as s:
            s.execute(update(ChatCard).where(ChatCard.id == card_id).values(live=False))

    def _sent(self, row_id: int) -> None:
        with self.db.transaction() as s:
            outbox.mark_sent(s, row_id)

    def _release(self, ids: list[int], delay: float) -> None:
        with self.db.transaction() as s:
            outbox.release(s, ids, timedelta(seconds=delay))

    def _failed(self, row: Row, error: str, permanent: bool) -> None:
        with self.db.transaction() as s:
            status = outbox.mark_attempt_failed(s, row.id, error, permanent, self.cfg.max_attempts,
                                                timedelta(seconds=self.cfg.retry_base_seconds))
        self.watch(CHANNEL, status if status == outbox.FAILED else outbox.RETRY)
        log.warning("telegram: outbox #%s: %s (%s)", row.id, error,
                    "gave up" if status == outbox.FAILED else "will retry")


def remember_card(session: Session, ticket_id: int, chat_id: int, message_id: int,
                  ticket_message_id: int | None) -> None:
    """Record a card just posted; it replaces the ticket's older card in that chat as the live one."""
    session.execute(update(ChatCard).where(ChatCard.ticket_id == ticket_id, ChatCard.chat_id == chat_id)
                    .values(live=False))
    session.add(ChatCard(ticket_id=ticket_id, chat_id=chat_id, message_id=message_id,
                         ticket_message_id=ticket_message_id, live=True))


def _retry_seconds(exc: RetryAfter) -> float:
    with warnings.catch_warnings():  # the int form is deprecated in PTB 22; either form is fine here
        warnings.simplefilter("ignore", PTBDeprecationWarning)
        value = exc.retry_after
    return value.total_seconds() if isinstance(value, timedelta) else float(value)
