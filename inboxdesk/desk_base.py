"""What every desk operation stands on: audit events, letters into the outbox, the one setter of
statuses, lookups, and the hook that tells other channels (the staff chat) that a record changed.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import and_, or_, select
from sqlalchemy.orm import Session

from inboxdesk import domain, workflow
from inboxdesk.letters import AUTO_REPLIED, OutgoingEmail, OutgoingFile, compose
from inboxdesk.settings import MailboxSettings, Settings, SettingsError
from inboxdesk.staff import StaffDirectory, StaffMember, directory
from inboxdesk.workflow import Refused
from mailflow.message import ParsedMessage
from storage import outbox
from storage.db import contains_text
from storage.models import Attachment, AuditEvent, OutboxItem, Ticket, TicketMessage, utcnow

SYSTEM = "system"  # the actor of automatic changes
Listener = Callable[[Session, Ticket, str], None]


# Letters the regulation requires (003 §3.2: what a request lacks): never dropped by a cap.
REQUIRED_LETTERS = ("ack", "form_incomplete")


class DeskBase:
    """Shared machinery of the desk service; `Desk` adds the operations."""

    def __init__(self, settings: Settings, clock: Callable[[], datetime] = utcnow) -> None:
        self.settings = settings
        self.clock = clock
        # Subscribers called after every change, inside the same transaction (the bot queues its
        # card refresh here, so the chat never shows a change that was rolled back).
        self.listeners: list[Listener] = []

    def on_change(self, session: Session, ticket: Ticket, event: str) -> None:
        """Tell every listener that `ticket` changed: created, sender_reply, status, assigned, ..."""
        for listener in self.listeners:
            listener(session, ticket, event)

    def staff(self, session: Session) -> StaffDirectory:
        """Staff from settings.toml and from the `staff` table (settings win)."""
        return directory(session, self.settings.staff)

    # -- status, the one place it changes ---------------------------------------------------------

    def set_status(self, session: Session, ticket: Ticket, actor: str, new: str, **detail: object) -> None:
        old, now = ticket.status, self.clock()
        ticket.status, ticket.status_changed_at, ticket.updated_at = new, now, now
        self.audit(session, ticket, actor, "status", old, new, **detail)

    # -- letters ---------------------------------------------------------------------------------

    def known_organisation(self, address: str) -> str:
        """`[organisations]` for a sender: the address itself, else its domain or a parent domain
        ("" when none is listed; a request that names its МО says better, see form_check)."""
        known = self.settings.organisations
        address = address.strip().lower()
        host = address.rpartition("@")[2]
        candidates = [address] + [".".join(host.split(".")[i:]) for i in range(host.count(".") + 1)]
        return next((known[c] for c in candidates if c in known), "")

    def box_of(self, ticket: Ticket) -> MailboxSettings:
        """The mailbox a record belongs to: its letters leave from that address."""
        try:
            return self.settings.mailbox(ticket.mailbox)
        except SettingsError:
            raise Refused(f"Почтовый ящик «{ticket.mailbox}» записи {ticket.public_id} "
                          "больше не настроен; письмо отправить нельзя") from None

    def thread_of(self, session: Session, ticket: Ticket) -> tuple[str | None, tuple[str, ...]]:
        """(In-Reply-To, References) for a letter to the requester: the conversation they saw,
        not letters to others (the department)."""
        rows = session.execute(
            select(TicketMessage.message_id, TicketMessage.direction, TicketMessage.to_addrs)
            .where(TicketMessage.ticket_id == ticket.id, TicketMessage.message_id.is_not(None))
            .order_by(TicketMessage.id)).all()
        requester = ticket.requester_email.lower()
        ids = [mid for mid, direction, to in rows
               if direction == "in" or requester in [a.lower() for a in to or ()]]
        return (ids[-1] if ids else None), tuple(ids[-20:])

    def letter_to_requester(self, session: Session, ticket: Ticket, purpose: str, subject: str, body: str,
                            files: Sequence[OutgoingFile] = (), auto: str | None = None,
                            author: str | None = None) -> OutboxItem | None:
        """A letter to the record's requester, tagged and threaded; None when there is no address."""
        if not ticket.requester_email:
            self.audit(session, ticket, SYSTEM, "letter_not_sent", None, None, purpose=purpose,
                       reason="у записи нет адреса заявителя")
            return None
        box = self.box_of(ticket)
        in_reply_to, references = self.thread_of(session, ticket)
        mail = OutgoingEmail(
            from_addr=box.address, from_name=self.settings.institution.name, to=(ticket.requester_email,),
            subject=domain.tagged_subject(ticket.public_id, subject), body=body, in_reply_to=in_reply_to,
            references=references, auto=auto, files=tuple(files))
        return self.queue_letter(session, ticket, purpose, mail, author=author)

    def queue_auto_letter(self, session: Session, box: MailboxSettings, ticket: Ticket, purpose: str,
                          answering: ParsedMessage, subject: str, body: str,
                          to: str | None = None, required: bool = False) -> OutboxItem | None:
        """An automatic answer to `answering` (to its sender unless `to` is given), unless one of
        the OUT-1 hourly caps is hit (recorded on the record with its reason).

        A `required` letter (the regulation's request for missing data, 003 §3.2) is never
        dropped: over a cap it waits out the hour, and a newer one takes the place of one still
        waiting for the same record, so the sender gets the latest list once."""
        to = to or self._answer_address(box, answering)
        now = self.clock()
        cap = outbox.auto_mail_cap(session, self.settings.outbound, domain.mail_key(to), ticket.id,
                                   now - timedelta(hours=1))
        if cap and not required:
            self.audit(session, ticket, SYSTEM, "auto_mail_suppressed", None, None, to=to,
                       purpose=purpose, reason=cap)
            return None
        mail = OutgoingEmail(
            from_addr=box.address, from_name=self.settings.institution.name, to=(to,),
            subject=domain.tagged_subject(ticket.public_id, subject), body=body,
            in_reply_to=answering.message_id, references=answering.references, auto=AUTO_REPLIED)
        if not cap:
            return self.queue_letter(session, ticket, purpose, mail)
        folded = outbox.withdraw_waiting(session, ticket.id, REQUIRED_LETTERS, after=now)
        item = self.queue_letter(session, ticket, purpose, mail)
        item.next_attempt_at = now + timedelta(hours=1)
        self.audit(session, ticket, SYSTEM, "auto_mail_delayed", None, None, to=to, purpose=purpose,
                   reason=cap, replaces=folded or None, outbox_id=item.id)
        self.on_change(session, ticket, "letter_delayed")
        return item

    @staticmethod
    def _answer_address(box: MailboxSettings, answering: ParsedMessage) -> str:
        """Where an automatic answer goes: the sender (From), or their Reply-To only inside the
        mailbox's allowed domains. Anywhere else Reply-To would make us mail a stranger, quoting
        the sender's subject: a reflection channel (issue 10, OUT-1)."""
        for address in answering.reply_to[:1]:
            if box.allowed_domains and domain.domain_allowed(
                    address.rpartition("@")[2], box.allowed_domains, box.allow_subdomains):
                return address
        return answering.from_addr

    def queue_letter(self, session: Session, ticket: Ticket | None, purpose: str,
                     mail: OutgoingEmail, author: str | None = None) -> OutboxItem:
        """Compose `mail` and put it in the outbox; it also shows in the ticket's history."""
        message_id, payload = compose(mail)
        item = OutboxItem(
            channel="email", purpose=purpose, ticket_id=ticket.id if ticket else None,
            mail_from=mail.from_addr, recipients=list(mail.to), to_addr=domain.mail_key(mail.to[0]),
            subject=mail.subject, message_id=message_id, payload=payload,
            auto=mail.auto is not None, created_at=self.clock(), next_attempt_at=self.clock(),
        )
        session.add(item)
        session.flush()
        if ticket is not None:
            message = TicketMessage(
                ticket_id=ticket.id, direction="out", from_addr=mail.from_addr, to_addrs=list(mail.to),
                subject=mail.subject, body=mail.body, message_id=message_id, author=author,
                outbox_id=item.id, at=self.clock())
            session.add(message)
            session.flush()
            for f in mail.files:  # the history shows what was sent, byte for byte
                session.add(Attachment(ticket_message_id=message.id, filename=f.filename,
                                       content_type=f.content_type, size=len(f.content),
                                       sha256=_sha256(f.content), content=f.content))
        return item

    @staticmethod
    def may(action: str, actor: StaffMember, ticket: Ticket | None = None) -> None:
        """Refuse unless `actor` may do `action` (to `ticket`): workflow.MAY decides."""
        if ticket is None:
            workflow.check_may(action, actor.role)
        else:
            workflow.check_may(action, actor.role, ticket.kind, ticket.line, ticket.public_id)

    def retry_letters(self, session: Session, actor: StaffMember, ids: Sequence[int]) -> list[OutboxItem]:
        """Send `failed` or `bounced` letters again (an admin's decision, audited per letter)."""
        workflow.check_may("retry", actor.role)
        items = list(session.scalars(select(OutboxItem).where(OutboxItem.id.in_(ids))
                                     .order_by(OutboxItem.id)))
        missing = sorted(set(ids) - {i.id for i in items})
        if missing:
            raise Refused(f"Писем {', '.join(f'#{i}' for i in missing)} нет")
        if waiting := [f"#{i.id} ({i.status})" for i in items if i.status not in outbox.RETRYABLE]:
            raise Refused(f"Повторить можно только неотправленные письма; не такие: {', '.join(waiting)}")
        for item in items:
            ticket = self.ticket_by_id(session, item.ticket_id) if item.ticket_id else None
            self.audit(session, ticket, actor.name, "letter_retry", item.status, outbox.PENDING,
                       outbox_id=item.id, last_error=item.last_error, attempts=item.attempts)
            outbox.reopen(item, self.clock())
        return items

    def flag_unconfirmed_sender(self, session: Session, ticket: Ticket, inbound: Any, reason: str) -> None:
        """MAIL-2 `warn`: the record shows that a sender's mail on it was not confirmed."""
        ticket.sender_check = reason
        self.audit(session, ticket, SYSTEM, "sender_unconfirmed", None, None, inbound_id=inbound.id,
                   reason=reason)
        self.on_change(session, ticket, "sender_unconfirmed")

    # -- lookups and audit -------------------------------------------------------------------------

    def ticket_by_public_id(self, session: Session, public: str) -> Ticket | None:
        return session.scalar(select(Ticket).where(Ticket.public_id == public.strip().upper()))

    def ticket_by_id(self, session: Session, ticket_id: int) -> Ticket | None:
        return session.get(Ticket, ticket_id)

    def find(self, session: Session, text: str, limit: int = 50) -> list[Ticket]:
        """Records whose ID, subject, requester or any message body contains `text`."""
        text = text.strip()
        if not text:
            return []
        exact = self.ticket_by_public_id(session, text)

        def matches(column: Any) -> Any:  # a column expression
            return contains_text(column, text)

        # What people wrote: the senders' mail and the staff's answers, not our form letters
        # (acknowledgements, the form reminder), which every record would match alike.
        written = or_(TicketMessage.direction == "in",
                      and_(TicketMessage.direction == "out", TicketMessage.author.is_not(None)))
        in_body = select(TicketMessage.ticket_id).where(written, matches(TicketMessage.body))
        found = list(session.scalars(select(Ticket).where(or_(
            matches(Ticket.public_id), matches(Ticket.subject), matches(Ticket.requester_email),
            matches(Ticket.requester_name), Ticket.id.in_(in_body),
        )).order_by(Ticket.id.desc()).limit(limit)))
        if exact is not None:
            found = [exact] + [t for t in found if t.id != exact.id]
        return found

    def list_tickets(self, session: Session, status: str | None = None, assignee: str | None = None,
                     kind: str | None = None) -> list[Ticket]:
        query = select(Ticket).order_by(Ticket.id)
        if status:
            query = query.where(Ticket.status == status)
        if assignee:
            query = query.where(Ticket.assignee == assignee)
        if kind:
            query = query.where(Ticket.kind == kind)
        return list(session.scalars(query))

    def audit(self, session: Session, ticket: Ticket | None, actor: str, action: str,
              from_value: str | None, to_value: str | None, inbound_id: int | None = None,
              **detail: object) -> None:
        """Record who did what, when, from -> to (AUD-1)."""
        session.add(AuditEvent(
            ticket_id=ticket.id if ticket else None, inbound_id=inbound_id, actor=actor, action=action,
            from_value=from_value, to_value=to_value,
            detail={k: v for k, v in detail.items() if v is not None}, at=self.clock()))


def _sha256(content: bytes) -> str:
    return hashlib.sha256(content).hexdigest()
