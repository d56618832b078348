"""Where an accepted message belongs: an existing record (MAIL-4) or a new one."""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass

from sqlalchemy import bindparam, exists, select
from sqlalchemy.orm import Session

from inboxdesk import domain
from inboxdesk.settings import MailboxSettings
from mailflow.message import ParsedMessage
from storage.models import InboundMessage, Ticket, TicketMessage


@dataclass(frozen=True)
class Route:
    """`ticket` is the record to add to (None: open a new one, linked to `linked_to` if set)."""

    ticket: Ticket | None
    reason: str
    linked_to: Ticket | None = None


def find_duplicate(session: Session, box: MailboxSettings, inbound: InboundMessage) -> InboundMessage | None:
    """An earlier processed message of this mailbox with the same Message-ID (or content hash).

    This is what keeps a recreated mailbox (new UIDVALIDITY) or a re-imported file from opening
    the same ticket twice.
    """
    return session.scalar(
        select(InboundMessage).where(
            InboundMessage.mailbox == box.name, InboundMessage.dedup_key == inbound.dedup_key,
            InboundMessage.id != inbound.id, InboundMessage.disposition.is_not(None),
            InboundMessage.disposition != "error",
        ).order_by(InboundMessage.id).limit(1)
    )


def known_dedup_keys(session: Session, box: MailboxSettings, keys: Collection[str]) -> set[str]:
    """Which of `keys` an earlier processed message of this mailbox already carries (one query).

    Rows being processed have no disposition yet, so they never count; a key found here still
    goes through `find_duplicate` for the original's record.
    """
    if not keys:
        return set()
    params = {"mailbox": box.name, "keys": sorted(set(keys))}
    return set(session.connection().execute(_KNOWN_KEYS, params).scalars())


_KNOWN_KEYS = select(InboundMessage.dedup_key).distinct().where(
    InboundMessage.mailbox == bindparam("mailbox"),
    InboundMessage.dedup_key.in_(bindparam("keys", expanding=True)),
    InboundMessage.disposition.is_not(None), InboundMessage.disposition != "error")


_THREAD_TICKET = (
    select(Ticket.id).join(TicketMessage, TicketMessage.ticket_id == Ticket.id)
    .where(TicketMessage.message_id.in_(bindparam("ids", expanding=True)),
           Ticket.mailbox == bindparam("mailbox"))
    .order_by(TicketMessage.id.desc()).limit(1))


def route(session: Session, box: MailboxSettings, msg: ParsedMessage) -> Route:
    """Thread by Message-ID references first (they prove the sender saw our mail), then by tag."""
    kind = domain.KIND_BY_MAILBOX[box.kind]
    if msg.thread_ids:
        # Most references point at mail we never saw (other systems, the sender's own chain): a
        # prepared Core query answers that cheaply; the ticket is loaded only when one is found.
        if any(isinstance(obj, TicketMessage | Ticket) for obj in session.new):
            session.flush()  # what an autoflush would have written first
        ticket_id = session.connection().execute(
            _THREAD_TICKET, {"ids": list(msg.thread_ids), "mailbox": box.name}).scalar()
        ticket = session.get(Ticket, ticket_id) if ticket_id is not None else None
        if ticket is not None:
            if is_participant(session, ticket, msg.from_addr):
                return Route(ticket, "In-Reply-To/References указывают на письмо этой записи")
            # MAIL-4 (issue 10): a Message-ID is no secret (a copy on CC, the department's copy);
            # a stranger who cites one opens a record of their own, linked, and learns nothing.
            return Route(None, f"In-Reply-To/References на письмо записи {ticket.public_id} от адреса, "
                               "не участвующего в переписке: новая связанная запись", linked_to=ticket)
    for public in domain.tags_in(msg.subject):
        ticket = session.scalar(select(Ticket).where(Ticket.public_id == public, Ticket.kind == kind))
        if ticket is None:
            continue
        if is_participant(session, ticket, msg.from_addr):
            return Route(ticket, f"тег [{public}] в теме")
        # MAIL-4: a tag alone from a stranger must not append to someone else's ticket.
        return Route(None, f"тег [{public}] от адреса, не участвующего в переписке: новая связанная запись",
                     linked_to=ticket)
    return Route(None, "новая запись: нет ссылки на существующую")


def is_participant(session: Session, ticket: Ticket, address: str) -> bool:
    """The requester, anyone whose mail is already part of the ticket, or anyone we wrote to about
    it (the department on an appeal). Whoever was only copied on someone's mail is not."""
    address = (address or "").lower()
    if not address:
        return False
    if address == ticket.requester_email.lower():
        return True
    if session.scalar(select(exists().where(
            TicketMessage.ticket_id == ticket.id, TicketMessage.direction == "in",
            TicketMessage.from_addr == address))):
        return True
    return any(address in (a.lower() for a in to or ()) for to in session.scalars(
        select(TicketMessage.to_addrs).where(TicketMessage.ticket_id == ticket.id,
                                             TicketMessage.direction == "out")))
