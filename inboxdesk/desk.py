"""The desk service: the one place where records are opened and changed.

Every operation takes the caller's session, writes the change, an audit event (AUD-1) and outbox
rows for its effects, and never commits: the caller's unit of work decides. The operations live
in layers along their seams — `desk_base` (audit, letters, lookups), `staff_actions` (take,
assign, reply, note, status, priority, escalate), `appeals` (APL-*) — and this module adds the
records that mail and phone calls open.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from inboxdesk import attachment_rules, domain, workflow
from inboxdesk.acceptance import ESCALATED, acceptance_clock
from inboxdesk.appeal_fields import extract, valid_email
from inboxdesk.appeals import AppealActions
from inboxdesk.desk_base import SYSTEM
from inboxdesk.form_check import FormCheck, check_request
from inboxdesk.letters import OutgoingFile
from inboxdesk.localtime import as_utc
from inboxdesk.settings import MailboxSettings, SettingsError
from inboxdesk.staff import StaffDirectory, StaffMember
from inboxdesk.templating import render_email
from inboxdesk.workflow import Refused
from mailflow.message import MailAttachment, ParsedMessage
from storage.counters import next_value
from storage.models import Attachment, AuditEvent, InboundMessage, Ticket, TicketMessage

__all__ = ["SYSTEM", "Desk", "Refused", "RefusedFile", "StaffDirectory", "StaffMember", "size_text"]


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


class Desk(AppealActions):
    """Opens tickets and appeals, threads mail into them, and carries out staff actions."""

    # -- records from mail ---------------------------------------------------------------------

    def open_from_mail(self, session: Session, box: MailboxSettings, inbound: InboundMessage,
                       msg: ParsedMessage, kept: Sequence[MailAttachment],
                       refused: Sequence[MailAttachment], linked_to: Ticket | None = None) -> Ticket:
        """A new ticket/appeal from an accepted email, acknowledged to the sender (OUT-2)."""
        return self._open(session, box, msg, kept, refused, inbound=inbound, linked_to=linked_to,
                          received_at=inbound.received_at)

    def add_sender_mail(self, session: Session, box: MailboxSettings, ticket: Ticket,
                        inbound: InboundMessage, msg: ParsedMessage, kept: Sequence[MailAttachment],
                        refused: Sequence[MailAttachment]) -> Ticket:
        """A sender's follow-up lands in its ticket (MAIL-4) and returns the ticket it landed in.

        MAIL-5: mail to a ticket waiting in `Обратная связь` moves it back into work; mail to a
        `Решена`/`Закрыта` one reopens it within `[desk] reopen_days`, later it opens a new
        ticket linked to the old one.
        """
        now = self.clock()
        if ticket.kind == domain.TICKET and ticket.status in workflow.FINISHED:
            since = as_utc(ticket.status_changed_at or ticket.updated_at)
            if now - since > timedelta(days=self.settings.desk.reopen_days):
                new = self.open_from_mail(session, box, inbound, msg, kept, refused, linked_to=ticket)
                self.audit(session, ticket, SYSTEM, "followup_opened_new", None, new.public_id,
                           inbound_id=inbound.id, reason=f"ответ позже {self.settings.desk.reopen_days} дн. "
                           f"после статуса «{ticket.status}»")
                return new
        self._add_inbound_message(session, ticket, msg, msg.new_text or msg.text, kept, refused, inbound)
        ticket.updated_at = now
        self.audit(session, ticket, msg.from_addr, "sender_reply", None, None, inbound_id=inbound.id)
        if self._waits_for_form(ticket) and self._form_still_missing(session, box, ticket, inbound, msg):
            pass  # MAIL-8: still short of mandatory parts; the sender was told which
        elif ticket.kind == domain.TICKET and (ticket.status in workflow.WAITING_FOR_SENDER
                                               or ticket.status in workflow.FINISHED):
            # Back to whoever owns it; a ticket nobody took yet waits in `Новая` again.
            back = workflow.IN_WORK[ticket.kind] if ticket.assignee else domain.TICKET_NEW
            self.set_status(session, ticket, msg.from_addr, back, reason="ответ заявителя",
                            inbound_id=inbound.id)
            self._notify_status(session, ticket, back)  # as `notify_statuses` asks, once a round
        if refused:
            subject, body = render_email(
                "refused_attachments", ticket=ticket, name=msg.from_name, subject=msg.subject,
                refused=_refused(refused), limit_mb=box.max_attachment_bytes // (1024 * 1024))
            self.queue_auto_letter(session, box, ticket, "refused_attachments", msg, subject, body)
        self.on_change(session, ticket, "sender_reply")
        return ticket

    # -- a request taken by phone (MAIL-11) ------------------------------------------------------

    def register_phone_request(self, s: Session, actor: StaffMember, mailbox: str, caller_name: str,
                               caller_email: str, caller_phone: str, subject: str, text: str) -> Ticket:
        """A ticket (or appeal) a staff member registers on behalf of a caller."""
        self.may("register", actor)
        try:
            box = self.settings.mailbox(mailbox)
        except SettingsError:
            names = ", ".join(b.name for b in self.settings.mailboxes) or "нет"
            raise Refused(f"Почтового ящика «{mailbox}» нет; ящики: {names}") from None
        caller_email = caller_email.strip().lower()
        if caller_email and not valid_email(caller_email):
            raise Refused(f"Адрес «{caller_email}» некорректен")
        if not subject.strip() or not text.strip():
            raise Refused("Нужны тема и текст обращения")
        msg = ParsedMessage(message_id=None, subject=" ".join(subject.split()), from_addr=caller_email,
                            from_name=" ".join(caller_name.split()), text=text.strip(),
                            new_text=text.strip())
        ticket = self._open(s, box, msg, (), (), channel="phone", actor=actor)
        if caller_phone.strip():
            ticket.fields = {**ticket.fields, "Телефон": caller_phone.strip()}
        return ticket

    # -- opening ---------------------------------------------------------------------------------

    def _open(self, s: Session, box: MailboxSettings, msg: ParsedMessage, kept: Sequence[MailAttachment],
              refused: Sequence[MailAttachment], *, inbound: InboundMessage | None = None,
              linked_to: Ticket | None = None, received_at: datetime | None = None,
              channel: str = "email", actor: StaffMember | None = None) -> Ticket:
        now = self.clock()
        kind = domain.KIND_BY_MAILBOX[box.kind]
        number = next_value(s, f"{box.id_prefix}-{now.year}")
        ticket = Ticket(
            public_id=domain.public_id(box.id_prefix, now.year, number), kind=kind,
            mailbox=box.name, status=domain.INITIAL_STATUS[kind], subject=msg.subject,
            requester_email=msg.from_addr, requester_name=msg.from_name, channel=channel,
            organisation=self.known_organisation(msg.from_addr),
            linked_ticket_id=linked_to.id if linked_to else None, created_at=now, updated_at=now,
            status_changed_at=now)
        s.add(ticket)
        s.flush()
        # A first message keeps its quoted history: a forwarded chain is part of the request.
        self._add_inbound_message(s, ticket, msg, msg.text, kept, refused, inbound,
                                  author=actor.name if actor else None)
        self.audit(s, ticket, actor.name if actor else SYSTEM, "created", None, ticket.status,
                   inbound_id=inbound.id if inbound else None, channel=channel,
                   linked_to=linked_to.public_id if linked_to else None)
        if kind == domain.APPEAL:
            fields = extract(from_name=msg.from_name, from_addr=msg.from_addr, reply_to=msg.reply_to,
                             subject=msg.subject, body=msg.text, filenames=[f.filename for f in kept])
            files = [OutgoingFile(f.filename, f.content_type, f.content) for f in kept]
            self.start_appeal(s, box, ticket, fields, as_utc(received_at or now), files)
            if box.acknowledge:
                self.acknowledge_appeal(s, box, ticket, msg)
        else:
            hours = self.settings.worktime.acceptance_hours
            ticket.accept_started_at = now
            ticket.accept_due_at = self.calendar.add_working_time(now, timedelta(hours=hours))
            check = self._check_new_request(s, ticket, msg, kept, refused, channel, linked_to)
            files_advice = attachment_rules.advice(kept)
            if files_advice:  # 003 §3.5: registered all the same; staff see why the sender is asked
                self.audit(s, ticket, SYSTEM, "files_advice", None, None, advice=files_advice)
            if check is not None and msg.from_addr:
                # One letter, not two: the request is registered (its ID is in the subject) and
                # this is what it lacks (regulation 3.2). Sent even with `acknowledge = false`:
                # it is the regulation's request for data, not a courtesy.
                self._ask_for_form(s, box, ticket, msg, check, refused, purpose="ack",
                                   files_advice=files_advice)
            elif box.acknowledge and msg.from_addr:
                self._acknowledge(s, box, ticket, msg, refused, files_advice)
        self.on_change(s, ticket, "created")
        return ticket

    # -- the request form (MAIL-8, regulation 3.1, 3.2, Appendix 1) -------------------------------

    def _check_new_request(self, s: Session, ticket: Ticket, msg: ParsedMessage,
                           kept: Sequence[MailAttachment], refused: Sequence[MailAttachment], channel: str,
                           linked_to: Ticket | None) -> FormCheck | None:
        """Check a new emailed request; an incomplete one waits in `Обратная связь` (audited, actor
        system) and its check is returned, else None. Phone requests are taken down by staff,
        who ask for what is missing themselves."""
        if not self.settings.desk.form_check or channel != "email":
            return None
        texts, files = [msg.text], [(f.filename, f.content_type) for f in (*kept, *refused)]
        if linked_to is not None and linked_to.requester_email == msg.from_addr:
            # A late answer that opened a new ticket continues the old request: its parts count.
            old_texts, old_files = self._sender_texts(s, linked_to)
            texts, files = old_texts + texts, old_files + files
        check = check_request(msg.subject, "\n\n".join(texts), files)
        ticket.organisation = check.found.get("organization") or ticket.organisation
        if check.complete and not check.attachments_only:
            return None
        ticket.missing_fields = check.missing_names
        self.set_status(s, ticket, SYSTEM, domain.TICKET_FEEDBACK,
                        reason="заявка не по форме (п. 3.2 Регламента)", missing=check.missing_names,
                        attachments_only=check.attachments_only or None)
        return check

    def _waits_for_form(self, ticket: Ticket) -> bool:
        """Is `ticket` in `Обратная связь` because its request lacks mandatory parts?"""
        return (self.settings.desk.form_check and ticket.kind == domain.TICKET
                and ticket.status in workflow.WAITING_FOR_SENDER and bool(ticket.missing_fields))

    def _form_still_missing(self, s: Session, box: MailboxSettings, ticket: Ticket, inbound: InboundMessage,
                            msg: ParsedMessage) -> bool:
        """Check the request and every answer together; True (and the sender told what is still
        missing) while mandatory parts are missing, else False (the caller resumes the work)."""
        texts, files = self._sender_texts(s, ticket)
        check = check_request(ticket.subject, "\n\n".join(texts), files)
        if not ticket.organisation:  # the answer named it
            ticket.organisation = check.found.get("organization", "")
        before = list(ticket.missing_fields or ())
        if check.complete and not check.attachments_only:
            self.audit(s, ticket, msg.from_addr, "form_completed", ", ".join(before), None,
                       inbound_id=inbound.id)
            return False
        if check.missing_names != before:
            self.audit(s, ticket, msg.from_addr, "form_incomplete", ", ".join(before),
                       ", ".join(check.missing_names), inbound_id=inbound.id)
        ticket.missing_fields = check.missing_names
        self._ask_for_form(s, box, ticket, msg, check, (), purpose="form_incomplete", again=True)
        return True

    def _sender_texts(self, s: Session, ticket: Ticket) -> tuple[list[str], list[tuple[str, str]]]:
        """Bodies and (file name, type) of every message the sender wrote to `ticket`."""
        mine = (TicketMessage.ticket_id == ticket.id, TicketMessage.direction == "in")
        bodies = list(s.scalars(select(TicketMessage.body).where(*mine).order_by(TicketMessage.id)))
        files = s.execute(select(Attachment.filename, Attachment.content_type).join(
            TicketMessage, TicketMessage.id == Attachment.ticket_message_id).where(*mine)
            .order_by(Attachment.id)).all()
        return bodies, [(name, ctype) for name, ctype in files]

    def _ask_for_form(self, s: Session, box: MailboxSettings, ticket: Ticket, msg: ParsedMessage,
                      check: FormCheck, refused: Sequence[MailAttachment], purpose: str,
                      again: bool = False, files_advice: Sequence[str] = ()) -> None:
        subject, body = render_email(
            "form_incomplete", ticket=ticket, name=msg.from_name, subject=ticket.subject or "(без темы)",
            missing=check.missing_names, attachments_only=check.attachments_only, again=again,
            refused=_refused(refused), limit_mb=box.max_attachment_bytes // (1024 * 1024),
            files_advice=files_advice)
        self.queue_auto_letter(s, box, ticket, purpose, msg, subject, body, required=True)

    # -- the acceptance clock (MAIL-7) ------------------------------------------------------------

    def set_status(self, session: Session, ticket: Ticket, actor: str, new: str, **detail: object) -> None:
        """Every status change; for a support ticket it also moves the acceptance clock."""
        old = ticket.status
        super().set_status(session, ticket, actor, new, **detail)
        if ticket.kind == domain.TICKET:
            if old in workflow.WAITING_FOR_SENDER and new != old:
                ticket.missing_fields = []  # the wait for the form ends with the wait
            self.refresh_acceptance(session, ticket)

    def escalate(self, s: Session, ticket: Ticket, actor: StaffMember, comment: str | None = None) -> Ticket:
        """MAIL-10; escalating is first line's answer to the request, so it stops the acceptance clock."""
        super().escalate(s, ticket, actor, comment)
        self.refresh_acceptance(s, ticket)
        return ticket

    def refresh_acceptance(self, session: Session, ticket: Ticket) -> None:
        """Recompute `accept_started_at`, `accepted_at` and `accept_due_at` from the status
        history (see `inboxdesk.acceptance`); the due time is None while the clock is paused."""
        history = session.execute(select(AuditEvent.at, AuditEvent.action, AuditEvent.to_value).where(
            AuditEvent.ticket_id == ticket.id, AuditEvent.action.in_(("created", "status", "escalated")),
        ).order_by(AuditEvent.id)).all()
        clock = acceptance_clock((as_utc(at), ESCALATED if action == "escalated" else status)
                                 for at, action, status in history if status)
        if clock is None:
            return
        ticket.accept_started_at, ticket.accepted_at = clock.started_at, clock.accepted_at
        ticket.accept_due_at = None if clock.paused else self.calendar.deadline_with_pauses(
            clock.started_at, self.settings.worktime.acceptance_hours, clock.pauses)

    def _add_inbound_message(self, session: Session, ticket: Ticket, msg: ParsedMessage, body: str,
                             kept: Sequence[MailAttachment], refused: Sequence[MailAttachment],
                             inbound: InboundMessage | None, author: str | None = None) -> TicketMessage:
        message = TicketMessage(
            ticket_id=ticket.id, direction="in", from_addr=msg.from_addr,
            to_addrs=list(msg.to + msg.cc), subject=msg.subject, body=body, author=author,
            message_id=msg.message_id, inbound_id=inbound.id if inbound else None, at=self.clock(),
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
        if inbound is not None:
            inbound.ticket_id = ticket.id
        return message

    def _acknowledge(self, session: Session, box: MailboxSettings, ticket: Ticket,
                     msg: ParsedMessage, refused: Sequence[MailAttachment],
                     files_advice: Sequence[str]) -> None:
        subject, body = render_email(
            "ack", ticket=ticket, name=msg.from_name, subject=msg.subject or "(без темы)",
            institution=self.settings.institution.name, refused=_refused(refused),
            limit_mb=box.max_attachment_bytes // (1024 * 1024), files_advice=files_advice)
        self.queue_auto_letter(session, box, ticket, "ack", msg, subject, body)


def _refused(files: Sequence[MailAttachment]) -> list[RefusedFile]:
    return [RefusedFile(f.filename, f.size) for f in files]
