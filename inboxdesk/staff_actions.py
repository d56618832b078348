"""What staff do to a record: take, assign, reply, note, change status, set priority and impact,
escalate (MAIL-5, MAIL-6, MAIL-10). Each call writes the change, its audit event (AUD-1) and
outbox rows for its letters, then tells the listeners; the caller commits.
"""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import select
from sqlalchemy.orm import Session

from inboxdesk import domain, workflow
from inboxdesk.desk_base import DeskBase
from inboxdesk.letters import AUTO_GENERATED, OutgoingFile
from inboxdesk.staff import StaffMember
from inboxdesk.templating import render_email
from inboxdesk.workflow import HeldByOther, Refused
from storage.models import AuditEvent, Ticket, TicketMessage


class StaffActions(DeskBase):
    """Staff operations on tickets and appeals."""

    # -- for buttons -----------------------------------------------------------------------------

    def allowed_statuses(self, ticket: Ticket) -> list[str]:
        """Statuses `ticket` may be moved to now (MAIL-5, APL-4)."""
        return workflow.allowed_statuses(ticket.kind, ticket.status)

    def allowed_impacts(self, priority: int) -> list[str]:
        """Impacts that fit `priority` (MAIL-6)."""
        return workflow.allowed_impacts(priority)

    # -- ownership -------------------------------------------------------------------------------

    def take(self, s: Session, ticket: Ticket, actor: StaffMember, force: bool = False) -> Ticket:
        """Assign `ticket` to `actor` and move it into work; one someone else holds only with `force`."""
        self.may("take", actor, ticket)
        target = workflow.IN_WORK[ticket.kind]
        if ticket.assignee == actor.name and ticket.status == target:
            raise Refused(f"{ticket.public_id} уже в работе у вас")
        if ticket.assignee and ticket.assignee != actor.name and not force:
            raise HeldByOther(f"{ticket.public_id} у {ticket.assignee} (статус «{ticket.status}»); "
                              "забрать себе можно только явно")
        if ticket.status != target:
            workflow.check_transition(ticket.kind, ticket.status, target)
        self._set_assignee(s, ticket, actor, actor.name)
        if ticket.status != target:
            self.set_status(s, ticket, actor.name, target)
            self._notify_status(s, ticket, target)
        self.on_change(s, ticket, "assigned")
        return ticket

    def assign(self, s: Session, ticket: Ticket, actor: StaffMember, assignee: str) -> Ticket:
        """Hand `ticket` to staff member `assignee`; a new ticket becomes `Назначена`."""
        self.may("assign", actor, ticket)
        member = self.staff(s).get(assignee)
        if not workflow.works_line(member.role, ticket.kind, ticket.line):
            owner = workflow.ROLE_NAMES["engineer" if ticket.line == 2 else "operator"]
            raise Refused(f"{ticket.public_id} на {ticket.line}-й линии: назначить её можно на сотрудника "
                          f"с ролью {owner} или администратор; у {member.name} роль "
                          f"{workflow.ROLE_NAMES[member.role]}")
        if ticket.assignee == member.name:
            raise Refused(f"{ticket.public_id} уже назначена на {member.name}")
        if ticket.status in workflow.FINISHED or ticket.status == domain.APPEAL_DONE:
            raise Refused(f"{ticket.public_id} в статусе «{ticket.status}»: сначала верните её в работу")
        self._set_assignee(s, ticket, actor, member.name)
        new = workflow.ON_ASSIGN.get(ticket.status) if ticket.kind == domain.TICKET else None
        if new and not (ticket.status == domain.TICKET_IN_WORK and member.name == actor.name):
            self.set_status(s, ticket, actor.name, new)
        self.on_change(s, ticket, "assigned")
        return ticket

    def _set_assignee(self, s: Session, ticket: Ticket, actor: StaffMember, name: str | None) -> None:
        if ticket.assignee != name:
            self.audit(s, ticket, actor.name, "assigned", ticket.assignee, name)
            ticket.assignee, ticket.updated_at = name, self.clock()

    # -- conversation ------------------------------------------------------------------------------

    def reply(self, s: Session, ticket: Ticket, actor: StaffMember, text: str,
              files: Sequence[OutgoingFile] = ()) -> Ticket:
        """Email `text` (and `files`) to the requester, threaded to the ticket."""
        self.may("reply", actor, ticket)
        if not text.strip() and not files:
            raise Refused("Пустой ответ: нужен текст или файл")
        if not ticket.requester_email:
            raise Refused(f"У {ticket.public_id} нет адреса заявителя: ответить письмом нельзя")
        subject, body = render_email("reply", ticket=ticket, text=text.strip(), actor=actor,
                                     institution=self.settings.institution.name)
        item = self.letter_to_requester(s, ticket, "reply", subject, body, files, author=actor.name)
        self.audit(s, ticket, actor.name, "reply", None, None, outbox_id=item.id if item else None,
                   files=[f.filename for f in files] or None)
        ticket.updated_at = self.clock()
        self.on_change(s, ticket, "reply")
        return ticket

    def note(self, s: Session, ticket: Ticket, actor: StaffMember, text: str) -> Ticket:
        """An internal note: kept on the ticket, never emailed."""
        self.may("note", actor, ticket)
        if not text.strip():
            raise Refused("Пустая заметка")
        s.add(TicketMessage(ticket_id=ticket.id, direction="note", from_addr=actor.email,
                            body=text.strip(), author=actor.name, at=self.clock()))
        self.audit(s, ticket, actor.name, "note", None, None)
        ticket.updated_at = self.clock()
        self.on_change(s, ticket, "note")
        return ticket

    # -- status, priority, line --------------------------------------------------------------------

    def change_status(self, s: Session, ticket: Ticket, actor: StaffMember, status: str,
                      comment: str | None = None, answer_text: str | None = None,
                      answer_files: Sequence[OutgoingFile] = ()) -> Ticket:
        """Move `ticket` to `status` if the table allows; the sender is told when it matters.

        `comment` and `answer_text` go to the sender in the status letter (a question for
        `Обратная связь`, the solution for `Решена`); `answer_files` are attached to it.
        """
        self.may("status", actor, ticket)
        workflow.check_transition(ticket.kind, ticket.status, status)
        if status in workflow.OWNED and not ticket.assignee:
            self._set_assignee(s, ticket, actor, actor.name)
        self.set_status(s, ticket, actor.name, status, comment=comment or None,
                        answer=bool(answer_text and answer_text.strip()) or None,
                        files=[f.filename for f in answer_files] or None)
        self._notify_status(s, ticket, status, comment, answer_text, answer_files)
        self.on_change(s, ticket, "status")
        return ticket

    def _notify_status(self, s: Session, ticket: Ticket, status: str, comment: str | None = None,
                       answer_text: str | None = None, files: Sequence[OutgoingFile] = ()) -> None:
        """The sender's letter about a status change, if configured; an answer is always sent."""
        answer = (answer_text or "").strip()
        if not answer and not files and not (comment or "").strip() and (
                status not in self.settings.desk.notify_statuses or self._told_this_round(s, ticket, status)):
            return
        template = workflow.SENDER_NOTICES.get(status, "status_changed")
        subject, body = render_email(template, ticket=ticket, status=status, comment=(comment or "").strip(),
                                     answer=answer, files=[f.filename for f in files],
                                     institution=self.settings.institution.name)
        self.letter_to_requester(s, ticket, "status", subject, body, files, auto=AUTO_GENERATED)

    def _told_this_round(self, s: Session, ticket: Ticket, status: str) -> bool:
        """Was `ticket` already in `status` (ONCE_PER_ROUND) since it arrived or was last reopened?
        The change being made now is the last status event, so it is not counted."""
        if status not in workflow.ONCE_PER_ROUND:
            return False
        changes = list(s.scalars(select(AuditEvent.to_value).where(
            AuditEvent.ticket_id == ticket.id, AuditEvent.action == "status").order_by(AuditEvent.id)))[:-1]
        since = max((i for i, to in enumerate(changes) if to in workflow.FINISHED), default=-1)
        return status in changes[since + 1:]

    def set_priority(self, s: Session, ticket: Ticket, actor: StaffMember, priority: int,
                     impact: str) -> Ticket:
        """Set priority and impact as a pair from the regulation's table (MAIL-6)."""
        self.may("priority", actor, ticket)
        if ticket.kind != domain.TICKET:
            raise Refused("Приоритет и влияние есть только у заявок техподдержки")
        impact = workflow.check_pair(priority, impact)
        if (ticket.priority, ticket.impact) == (priority, impact):
            raise Refused(f"У {ticket.public_id} уже приоритет {priority} и влияние «{impact}»")
        old = _pair_text(ticket.priority, ticket.impact)
        ticket.priority, ticket.impact, ticket.updated_at = priority, impact, self.clock()
        self.audit(s, ticket, actor.name, "priority", old, _pair_text(priority, impact))
        self.on_change(s, ticket, "priority")
        return ticket

    def set_organisation(self, s: Session, ticket: Ticket, actor: StaffMember, name: str) -> Ticket:
        """Correct the organisation a request came from (read from the form or `[organisations]`)."""
        self.may("organisation", actor, ticket)
        name = " ".join(name.split())
        if not name or len(name) > 300:
            raise Refused("Укажите наименование организации (до 300 знаков)")
        if name == ticket.organisation:
            raise Refused(f"У {ticket.public_id} уже указана организация «{name}»")
        old, ticket.organisation, ticket.updated_at = ticket.organisation, name, self.clock()
        self.audit(s, ticket, actor.name, "organisation", old or None, name)
        self.on_change(s, ticket, "organisation")
        return ticket

    def escalate(self, s: Session, ticket: Ticket, actor: StaffMember, comment: str | None = None) -> Ticket:
        """Hand a ticket from the first line to the second (MAIL-10)."""
        return self._move_line(s, ticket, actor, 2, comment)

    def deescalate(self, s: Session, ticket: Ticket, actor: StaffMember,
                   comment: str | None = None) -> Ticket:
        """Hand an escalated ticket back to the first line: it is first line's to solve after all."""
        return self._move_line(s, ticket, actor, 1, comment)

    def _move_line(self, s: Session, ticket: Ticket, actor: StaffMember, line: int,
                   comment: str | None) -> Ticket:
        """Escalation (to 2) or its return (to 1): the line changes, the owner lets go (the other
        line takes it themselves), `Назначена` without an owner is `Новая` again, a comment is a note."""
        action, reason, already = (("escalate", "эскалация на вторую линию", "на второй линии") if line == 2
                                   else ("deescalate", "возврат на первую линию", "на первой линии"))
        if ticket.kind != domain.TICKET:
            raise Refused("Линии поддержки есть только у заявок техподдержки")
        if ticket.line == line:
            raise Refused(f"{ticket.public_id} уже {already}")
        self.may(action, actor, ticket)
        if ticket.status in workflow.FINISHED:
            raise Refused(f"{ticket.public_id} в статусе «{ticket.status}»: сначала верните её в работу")
        old, ticket.line = ticket.line, line
        self.audit(s, ticket, actor.name, "escalated" if line == 2 else "deescalated", str(old), str(line),
                   comment=comment or None)
        self._set_assignee(s, ticket, actor, None)
        new = workflow.ON_ESCALATE.get(ticket.status)
        if new:
            self.set_status(s, ticket, actor.name, new, reason=reason)
        if comment and comment.strip():
            title = "Эскалация на вторую линию" if line == 2 else "Возврат на первую линию"
            s.add(TicketMessage(ticket_id=ticket.id, direction="note", from_addr=actor.email,
                                body=f"{title}: {comment.strip()}", author=actor.name, at=self.clock()))
        self.on_change(s, ticket, "escalated" if line == 2 else "deescalated")
        return ticket


def _pair_text(priority: int | None, impact: str | None) -> str | None:
    label = workflow.priority_label(priority)
    return f"{label} / {impact}" if label else None
