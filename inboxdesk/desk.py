"""The desk service: the one place where records are opened and changed.

Every operation takes the caller's session, writes the change, an audit event (AUD-1) and outbox
rows for its effects, and never commits: the caller's unit of work decides.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from inboxdesk import domain
from inboxdesk.letters import AUTO_REPLIED, OutgoingEmail, compose
from inboxdesk.settings import MailboxSettings, Settings
from inboxdesk.templating import render_email
from mailflow.message import MailAttachment, ParsedMessage
from storage import outbox
from storage.counters import next_value
from storage.models import (
    Attachment,
    AuditEvent,
    InboundMessage,
    OutboxItem,
    Ticket,
    TicketMessage,
    utcnow,
)

SYSTEM = "system"  # the actor of automatic changes


def size_text(size: int) -> str:
    """`3.2 МБ` / `120 КБ`: sizes as a sender reads them."""
    if size >= 1024 * 1024:
        return f"{size / (1024 * 1024):.1f} МБ"
    return f"{max(1, round(size / 1024))} КБ"


@dataclass(frozen=True)
class RefusedFile:
    filename: str
    size: int

    @property
    def size_text(self) -> str:
        return size_text(self.size)


class Desk:
    """Opens tickets and appeals, threads mail into them, and queues the letters they cause."""

    def __init__(self, settings: Settings, clock: Callable[[], datetime] = utcnow) -> None:
        self.settings = settings
        self.clock = clock

    # -- records from mail ---------------------------------------------------------------------

    def open_from_mail(self, session: Session, box: MailboxSettings, inbound: InboundMessage,
                       msg: ParsedMessage, kept: Sequence[MailAttachment],
                       refused: Sequence[MailAttachment], linked_to: Ticket | None = None) -> Ticket:
        """A new ticket/appeal from an accepted email, acknowledged to the sender (OUT-2)."""
        now = self.clock()
        kind = domain.KIND_BY_MAILBOX[box.kind]
        number = next_value(session, f"{box.id_prefix}-{now.year}")
        ticket = Ticket(
            public_id=domain.public_id(box.id_prefix, now.year, number), kind=kind,
            mailbox=box.name, status=domain.INITIAL_STATUS[kind], subject=msg.subject,
            requester_email=msg.from_addr, requester_name=msg.from_name,
            linked_ticket_id=linked_to.id if linked_to else None, created_at=now, updated_at=now,
        )
        session.add(ticket)
        session.flush()
        # A first message keeps its quoted history: a forwarded chain is part of the request.
        self._add_inbound_message(session, ticket, inbound, msg, msg.text, kept, refused)
        self.audit(session, ticket, SYSTEM, "created", None, ticket.status,
                   inbound_id=inbound.id, linked_to=linked_to.public_id if linked_to else None)
        if box.acknowledge:
            self._acknowledge(session, box, ticket, msg, refused)
        return ticket

    def add_sender_mail(self, session: Session, box: MailboxSettings, ticket: Ticket,
                        inbound: InboundMessage, msg: ParsedMessage, kept: Sequence[MailAttachment],
                        refused: Sequence[MailAttachment]) -> None:
        """A sender's follow-up lands in its ticket (MAIL-4); refused files are explained."""
        self._add_inbound_message(session, ticket, inbound, msg, msg.new_text or msg.text, kept, refused)
        ticket.updated_at = self.clock()
        self.audit(session, ticket, msg.from_addr, "sender_reply", None, None, inbound_id=inbound.id)
        if refused:
            subject, body = render_email(
                "refused_attachments", ticket=ticket, name=msg.from_name, subject=msg.subject,
                refused=_refused(refused), limit_mb=box.max_attachment_bytes // (1024 * 1024))
            self.queue_auto_letter(session, box, ticket, "refused_attachments", msg, subject, body)

    def _add_inbound_message(self, session: Session, ticket: Ticket, inbound: InboundMessage,
                             msg: ParsedMessage, body: str, kept: Sequence[MailAttachment],
                             refused: Sequence[MailAttachment]) -> TicketMessage:
        message = TicketMessage(
            ticket_id=ticket.id, direction="in", from_addr=msg.from_addr,
            to_addrs=list(msg.to + msg.cc), subject=msg.subject, body=body,
            message_id=msg.message_id, inbound_id=inbound.id, at=self.clock(),
        )
        session.add(message)
        session.flush()
        for f in kept:
            session.add(Attachment(ticket_message_id=message.id, filename=f.filename,
                                   content_type=f.content_type, size=f.size, sha256=f.sha256,
                                   content=f.content))
        for f in refused:  # MAIL-9: remembered by name, size and hash; the bytes are not kept
            session.add(Attachment(ticket_message_id=message.id, filename=f.filename,
                                   content_type=f.content_type, size=f.size, sha256=f.sha256,
                                   content=None))
        inbound.ticket_id = ticket.id
        return message

    def _acknowledge(self, session: Session, box: MailboxSettings, ticket: Ticket,
                     msg: ParsedMessage, refused: Sequence[MailAttachment]) -> None:
        subject, body = render_email(
            "ack", ticket=ticket, name=msg.from_name, subject=msg.subject or "(без темы)",
            institution=self.settings.institution.name, refused=_refused(refused),
            limit_mb=box.max_attachment_bytes // (1024 * 1024))
        self.queue_auto_letter(session, box, ticket, "ack", msg, subject, body)

    # -- letters ---------------------------------------------------------------------------------

    def queue_auto_letter(self, session: Session, box: MailboxSettings, ticket: Ticket, purpose: str,
                          answering: ParsedMessage, subject: str, body: str) -> OutboxItem | None:
        """An automatic answer to `answering`, unless the OUT-1 hourly cap for its sender is hit."""
        to = (answering.reply_to or (answering.from_addr,))[0]
        since = self.clock() - timedelta(hours=1)
        if outbox.auto_mail_count(session, to, since) >= self.settings.outbound.auto_mail_per_hour:
            self.audit(session, ticket, SYSTEM, "auto_mail_suppressed", None, None, to=to,
                       purpose=purpose, reason="hourly cap of automatic mail to this address")
            return None
        mail = OutgoingEmail(
            from_addr=box.address, from_name=self.settings.institution.name, to=(to,),
            subject=domain.tagged_subject(ticket.public_id, subject), body=body,
            in_reply_to=answering.message_id, references=answering.references, auto=AUTO_REPLIED)
        return self.queue_letter(session, ticket, purpose, mail)

    def queue_letter(self, session: Session, ticket: Ticket | None, purpose: str,
                     mail: OutgoingEmail, author: str | None = None) -> OutboxItem:
        """Compose `mail` and put it in the outbox; it also shows in the ticket's history."""
        message_id, payload = compose(mail)
        item = OutboxItem(
            channel="email", purpose=purpose, ticket_id=ticket.id if ticket else None,
            mail_from=mail.from_addr, recipients=list(mail.to), to_addr=mail.to[0].lower(),
            subject=mail.subject, message_id=message_id, payload=payload,
            auto=mail.auto is not None, created_at=self.clock(), next_attempt_at=self.clock(),
        )
        session.add(item)
        session.flush()
        if ticket is not None:
            session.add(TicketMessage(
                ticket_id=ticket.id, direction="out", from_addr=mail.from_addr, to_addrs=list(mail.to),
                subject=mail.subject, body=mail.body, message_id=message_id, author=author,
                outbox_id=item.id, at=self.clock()))
        return item

    # -- lookups and audit -------------------------------------------------------------------------

    def ticket_by_public_id(self, session: Session, public: str) -> Ticket | None:
        return session.scalar(select(Ticket).where(Ticket.public_id == public))

    def ticket_by_id(self, session: Session, ticket_id: int) -> Ticket | None:
        return session.get(Ticket, ticket_id)

    def audit(self, session: Session, ticket: Ticket | None, actor: str, action: str,
              from_value: str | None, to_value: str | None, inbound_id: int | None = None,
              **detail: object) -> None:
        """Record who did what, when, from -> to (AUD-1)."""
        session.add(AuditEvent(
            ticket_id=ticket.id if ticket else None, inbound_id=inbound_id, actor=actor, action=action,
            from_value=from_value, to_value=to_value,
            detail={k: v for k, v in detail.items() if v is not None}, at=self.clock()))


def _refused(files: Sequence[MailAttachment]) -> list[RefusedFile]:
    return [RefusedFile(f.filename, f.size) for f in files]
