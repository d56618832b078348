"""Citizens' appeals (seed 000, DESIGN APL-1..APL-6): fields, deadlines, completion, and the
regulated status emails to the department.

The department's letters follow the regulation to the letter: `Наименование поля: Значение поля`
lines in its order, the appeal's files attached byte for byte. They are outbox rows like any
letter, so they are retried until sent and their state shows on the appeal.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from functools import cached_property

from sqlalchemy import select
from sqlalchemy.orm import Session

from inboxdesk import domain, localtime
from inboxdesk.appeal_fields import EMAIL, FIELDS, TOPIC, AppealFields, valid_email
from inboxdesk.letters import AUTO_GENERATED, OutgoingEmail, OutgoingFile
from inboxdesk.localtime import as_utc
from inboxdesk.settings import MailboxSettings
from inboxdesk.staff import StaffMember
from inboxdesk.staff_actions import StaffActions
from inboxdesk.templating import render_email
from inboxdesk.workflow import Refused, check_transition
from inboxdesk.worktime import WorkCalendar
from mailflow.message import ParsedMessage
from storage.models import OutboxItem, Ticket

DEPARTMENT_NEW = "department_new"  # outbox purposes: the department's letters on an appeal
DEPARTMENT_DONE = "department_done"


class AppealActions(StaffActions):
    """Appeal-specific parts of the desk."""

    @cached_property
    def calendar(self) -> WorkCalendar:
        return WorkCalendar.from_settings(self.settings.worktime)

    def local_date(self, at: datetime | None) -> str:
        """`16.12.2026`: the local day of `at`; for a deadline, its last day (it expires at 24:00)."""
        return localtime.day(at, self.calendar.tz)

    def _term(self, start: datetime, days: int) -> datetime:
        """When a 59-FZ term of `days` calendar days from `start` runs out (issue 5's calendar)."""
        roll = self.settings.worktime.appeal_deadline_roll
        return self.calendar.calendar_deadline(as_utc(start), days, roll)  # type: ignore[arg-type]

    # -- creation (APL-1..APL-3, APL-6) ----------------------------------------------------------

    def start_appeal(self, s: Session, box: MailboxSettings, ticket: Ticket, fields: AppealFields,
                     received_at: datetime, files: Sequence[OutgoingFile]) -> None:
        """Fill a new appeal from its fields, set its deadlines and tell the department."""
        desk = self.settings.desk
        ticket.fields = dict(fields.values)
        ticket.missing_fields = list(fields.missing)
        ticket.subject = fields.values[TOPIC] or ticket.subject
        ticket.requester_name = fields.full_name
        ticket.requester_email = fields.values[EMAIL] if valid_email(fields.values[EMAIL]) else ""
        # 59-FZ counts calendar days: registration within 3 days of arrival, the answer within 30
        # days of registration. Registration here is automatic, at once.
        ticket.registered_at = self.clock()
        ticket.registration_due_at = self._term(received_at, desk.appeal_registration_days)
        ticket.answer_due_at = self._term(ticket.registered_at, desk.appeal_answer_days)
        if fields.missing:
            self.audit(s, ticket, "system", "fields_missing", None, ", ".join(fields.missing),
                       source=fields.source)
        if self.settings.department.notify:
            subject, body = render_email(
                DEPARTMENT_NEW, ticket=ticket, institution=self.settings.institution.name,
                fields=[(name, ticket.fields.get(name, "")) for name in FIELDS])
            self._to_department(s, box, ticket, DEPARTMENT_NEW, subject, body, files)

    def acknowledge_appeal(self, s: Session, box: MailboxSettings, ticket: Ticket,
                           answering: ParsedMessage) -> None:
        """The applicant's acknowledgement with the ID and the answer date (OUT-2, APL-2)."""
        if not ticket.requester_email:
            self.audit(s, ticket, "system", "letter_not_sent", None, None, purpose="ack",
                       reason="в обращении нет корректного адреса электронной почты")
            return
        subject, body = render_email(
            "appeal_ack", ticket=ticket, institution=self.settings.institution.name,
            answer_due=self.local_date(ticket.answer_due_at), missing=ticket.missing_fields,
            registered=self.local_date(ticket.registered_at))
        self.queue_auto_letter(s, box, ticket, "ack", answering, subject, body, to=ticket.requester_email)

    def _to_department(self, s: Session, box: MailboxSettings, ticket: Ticket, purpose: str,
                       subject: str, body: str, files: Sequence[OutgoingFile]) -> OutboxItem:
        # Never capped like other automatic mail: the regulation requires every one of them.
        first = s.scalar(select(OutboxItem.message_id).where(
            OutboxItem.ticket_id == ticket.id, OutboxItem.purpose == DEPARTMENT_NEW).limit(1))
        mail = OutgoingEmail(
            from_addr=box.address, from_name=self.settings.institution.name,
            to=(self.settings.department.address,), subject=domain.tagged_subject(ticket.public_id, subject),
            body=body, in_reply_to=first, auto=AUTO_GENERATED, files=tuple(files))
        item = self.queue_letter(s, ticket, purpose, mail)
        self.audit(s, ticket, "system", "department_notice", None, ticket.status, outbox_id=item.id,
                   to=self.settings.department.address)
        return item

    # -- completion (APL-5) ----------------------------------------------------------------------

    def change_status(self, s: Session, ticket: Ticket, actor: StaffMember, status: str,
                      comment: str | None = None, answer_text: str | None = None,
                      answer_files: Sequence[OutgoingFile] = ()) -> Ticket:
        if ticket.kind == domain.APPEAL and status == domain.APPEAL_DONE:
            return self.complete_appeal(s, ticket, actor, answer_text, answer_files, comment=comment)
        return super().change_status(s, ticket, actor, status, comment, answer_text, answer_files)

    def complete_appeal(self, s: Session, ticket: Ticket, actor: StaffMember, answer_text: str | None,
                        answer_files: Sequence[OutgoingFile] = (), comment: str | None = None) -> Ticket:
        """`Выполнено` with an answer text or a paper answer's copy: the department and the
        applicant are both written to (APL-5)."""
        self.may("status", actor, ticket)
        if ticket.kind != domain.APPEAL:
            raise Refused(f"{ticket.public_id} — заявка, а не обращение; для неё есть статус «Решена»")
        check_transition(ticket.kind, ticket.status, domain.APPEAL_DONE)
        answer = (answer_text or "").strip()
        if not answer and not answer_files:
            raise Refused("Для статуса «Выполнено» нужен текст ответа или копия бумажного ответа (файл)")
        if not ticket.assignee:
            self._set_assignee(s, ticket, actor, actor.name)
        if ticket.status == domain.APPEAL_NEW:  # the regulation's letter is about this very step
            self.set_status(s, ticket, actor.name, domain.APPEAL_IN_REVIEW, reason="завершение обращения")
        self.set_status(s, ticket, actor.name, domain.APPEAL_DONE, comment=comment or None,
                        answer=bool(answer) or None, files=[f.filename for f in answer_files] or None)
        names = [f.filename for f in answer_files]
        if self.settings.department.notify:
            subject, body = render_email(
                DEPARTMENT_DONE, ticket=ticket, institution=self.settings.institution.name,
                institution_id=self.settings.institution.id, answer=answer, files=names)
            self._to_department(s, self.box_of(ticket), ticket, DEPARTMENT_DONE, subject, body, answer_files)
        subject, body = render_email(
            "appeal_answer", ticket=ticket, answer=answer, files=names,
            registered=self.local_date(ticket.registered_at), institution=self.settings.institution.name)
        self.letter_to_requester(s, ticket, "answer", subject, body, answer_files, author=actor.name)
        self.on_change(s, ticket, "status")
        return ticket

    # -- deadline extension (APL-6) --------------------------------------------------------------

    def extend_deadline(self, s: Session, ticket: Ticket, actor: StaffMember, days: int,
                        reason: str) -> Ticket:
        """The one extension 59-FZ allows, with a letter to the applicant."""
        self.may("extend", actor, ticket)
        limit = self.settings.desk.appeal_extension_max_days
        if ticket.kind != domain.APPEAL:
            raise Refused(f"{ticket.public_id} — заявка: продлевается только срок ответа на обращение")
        if ticket.status == domain.APPEAL_DONE:
            raise Refused(f"{ticket.public_id} уже выполнено")
        if ticket.extension_days:
            raise Refused(f"Срок по {ticket.public_id} уже продлевался (до "
                          f"{self.local_date(ticket.answer_due_at)}); продлить можно один раз")
        if not 1 <= days <= limit:
            raise Refused(f"Продлить можно на 1–{limit} дней, а не на {days}")
        if not reason.strip():
            raise Refused("Укажите причину продления: она сообщается заявителю")
        old = as_utc(ticket.answer_due_at or self._term(ticket.registered_at or ticket.created_at,
                                                        self.settings.desk.appeal_answer_days))
        # The extension runs on from the last day of the current term.
        ticket.answer_due_at = self._term(old - timedelta(microseconds=1), days)
        ticket.extension_days, ticket.extension_reason = days, reason.strip()
        ticket.updated_at = self.clock()
        self.audit(s, ticket, actor.name, "deadline_extended", self.local_date(old),
                   self.local_date(ticket.answer_due_at), days=days, reason=reason.strip())
        subject, body = render_email(
            "appeal_extended", ticket=ticket, days=days, reason=reason.strip(),
            answer_due=self.local_date(ticket.answer_due_at), institution=self.settings.institution.name)
        self.letter_to_requester(s, ticket, "extension", subject, body, auto=AUTO_GENERATED)
        self.on_change(s, ticket, "extended")
        return ticket
