"""Timed work (issue 5): deadline warnings, overdue alerts, reminders to senders, automatic closing.

`Timers.run_due(now)` is one step: it finds what has become due by `now` and does each thing in
its own transaction. The daemon calls it from an APScheduler job every `[desk] timer_seconds`
and `run --once` calls it too; tests pass `now` (and set the desk's clock) to move time.

Exactly once, across restarts and daemons: each thing done is a `deadline_alerts` row, keyed
(ticket, kind, point), inserted in the transaction that writes its effects (the outbox rows, the
status change). A second daemon doing the same thing at the same moment waits on the unique key
and fails; a restarted daemon finds the row. A point names the period it belongs to, so a new
period gets its own: `2h@20261116T0600Z` is "2 working hours before the acceptance deadline of
the clock started at 06:00 UTC on 16 November"; the answer deadline of an appeal is in its points,
so an extension brings fresh warnings. When several points of one thing are due at once (the
daemon was stopped for a night), only the latest is acted on and the earlier ones are recorded
as passed over (`sent` false): an overdue ticket gets the overdue alert, not three messages.

What is due (the regulation and DESIGN):
- `accept` (MAIL-7): `[worktime] warn_before` working time before a support ticket's acceptance
  deadline, and the deadline itself, while the ticket is not taken into work and not paused.
- `appeal_registration`, `appeal_answer` (APL-6): `[desk] appeal_warn_days` calendar days before
  the 59-FZ terms (at the start of the working day), and the term's end. Registration is
  automatic here; its term is watched while the appeal is still `Новое` (nobody has taken it up).
- `feedback_reminder`: `[desk] feedback_reminder_days` working days after a ticket entered
  `Обратная связь`, a letter to the sender and a line in the staff chat.
- `auto_close`: `[desk] auto_close_days` working days after a ticket became `Решена` without an
  answer from the sender, it becomes `Закрыта` (actor `system`) with a letter to the sender.

Staff-chat messages are outbox rows (channel `telegram`, purpose `alert`, payload JSON
``{"chat_id", "text", "ticket_id"}``, the text HTML-escaped) that the bot's delivery sends as plain
messages; without `[telegram] staff_chat_id` there is no chat to tell, and only the state is kept.
"""

from __future__ import annotations

import html
import json
import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, and_, or_, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from inboxdesk import domain, localtime
from inboxdesk.desk import Desk
from inboxdesk.desk_base import SYSTEM
from inboxdesk.digest import DIGEST, queue_daily_digest
from inboxdesk.letters import AUTO_GENERATED
from inboxdesk.localtime import as_utc
from inboxdesk.templating import render_email
from storage.db import Database
from storage.models import AuditEvent, DeadlineAlert, OutboxItem, Ticket, utcnow

log = logging.getLogger(__name__)

ALERT = "alert"  # outbox purpose of a plain staff-chat message
TELEGRAM = "telegram"
ACCEPT, APPEAL_REGISTRATION, APPEAL_ANSWER = "accept", "appeal_registration", "appeal_answer"
FEEDBACK_REMINDER, AUTO_CLOSE = "feedback_reminder", "auto_close"
OVERDUE = "overdue"


@dataclass(frozen=True)
class Point:
    key: str  # unique per ticket and kind: label@period
    label: str  # "2h", "30m", "3d", "overdue"
    at: datetime  # when it is due (UTC)
    due: datetime | None  # the deadline it is about


Plan = Callable[[Ticket, datetime], list[Point]]
Act = Callable[[Session, Ticket, Point], int | None]


def stamp(at: datetime) -> str:
    return f"{as_utc(at).astimezone(UTC):%Y%m%dT%H%MZ}"


def duration_label(d: timedelta) -> str:
    """`2h`, `30m`, `1h30m`: a warning point as it is written in settings."""
    minutes = int(d.total_seconds() // 60)
    h, m = divmod(minutes, 60)
    return (f"{h}h" if h else "") + (f"{m}m" if m or not h else "")


def duration_text(d: timedelta) -> str:
    """`2 ч`, `30 мин`, `1 ч 30 мин`."""
    minutes = int(d.total_seconds() // 60)
    h, m = divmod(minutes, 60)
    return " ".join(p for p in (f"{h} ч" if h else "", f"{m} мин" if m or not h else "") if p)


# -- what is overdue now (the CLI's `tickets list --overdue` and the bot's /overdue) -------------

def overdue_condition(now: datetime) -> ColumnElement[bool]:
    """Records past a deadline at `now`: support tickets not taken into work in time (MAIL-7),
    appeals not taken up within the registration term or not answered in time (APL-6)."""
    now = as_utc(now).astimezone(UTC)
    return or_(
        and_(Ticket.kind == domain.TICKET, Ticket.accepted_at.is_(None), Ticket.accept_due_at <= now),
        and_(Ticket.kind == domain.APPEAL, Ticket.status == domain.APPEAL_NEW,
             Ticket.registration_due_at <= now),
        and_(Ticket.kind == domain.APPEAL, Ticket.status != domain.APPEAL_DONE, Ticket.answer_due_at <= now),
    )


def overdue_records(session: Session, now: datetime | None = None) -> list[Ticket]:
    return list(session.scalars(select(Ticket).where(overdue_condition(now or utcnow())).order_by(Ticket.id)))


def missed_deadline(t: Ticket, now: datetime) -> datetime | None:
    """The deadline `t` has missed by `now` (the earliest, when several), else None."""
    now = as_utc(now)
    missed = []
    if t.kind == domain.TICKET and t.accepted_at is None and t.accept_due_at is not None:
        missed.append(as_utc(t.accept_due_at))
    if t.kind == domain.APPEAL and t.status == domain.APPEAL_NEW and t.registration_due_at is not None:
        missed.append(as_utc(t.registration_due_at))
    if t.kind == domain.APPEAL and t.status != domain.APPEAL_DONE and t.answer_due_at is not None:
        missed.append(as_utc(t.answer_due_at))
    missed = [d for d in missed if d <= now]
    return min(missed) if missed else None


# -- the scheduled step ---------------------------------------------------------------------------

class Timers:
    """Finds and does the timed work; one instance per daemon, safe to run in several."""

    def __init__(self, db: Database, desk: Desk) -> None:
        self.db, self.desk = db, desk
        self.settings = desk.settings
        self.calendar = desk.calendar

    def run_due(self, now: datetime | None = None) -> dict[str, int]:
        """Do everything due at `now` (default: the desk's clock); how many of each were done."""
        now = as_utc(now or self.desk.clock()).astimezone(UTC)
        counts: dict[str, int] = {}
        for kind, where, plan, act in self._kinds():
            for ticket_id, key in self._pending(kind, where, plan, now):
                if self._fire(kind, ticket_id, key, now, plan, act):
                    counts[kind] = counts.get(kind, 0) + 1
        if queue_daily_digest(self.db, self.desk, now):
            counts[DIGEST] = 1
        if counts:
            log.info("timers: %s", ", ".join(f"{k} {v}" for k, v in sorted(counts.items())))
        return counts

    def _kinds(self) -> list[tuple[str, list[ColumnElement[bool]], Plan, Act]]:
        desk = self.settings.desk
        kinds: list[tuple[str, list[ColumnElement[bool]], Plan, Act]] = [
            (ACCEPT, [Ticket.kind == domain.TICKET, Ticket.accepted_at.is_(None),
                      Ticket.accept_due_at.is_not(None)], self._accept_plan, self._accept_act),
            (APPEAL_REGISTRATION, [Ticket.kind == domain.APPEAL, Ticket.status == domain.APPEAL_NEW,
                                   Ticket.registration_due_at.is_not(None)],
             self._appeal_plan(APPEAL_REGISTRATION), self._appeal_act("срок регистрации обращения")),
            (APPEAL_ANSWER, [Ticket.kind == domain.APPEAL, Ticket.status != domain.APPEAL_DONE,
                             Ticket.answer_due_at.is_not(None)], self._appeal_plan(APPEAL_ANSWER),
             self._appeal_act("срок ответа на обращение")),
        ]
        if desk.feedback_reminder_days:
            kinds.append((FEEDBACK_REMINDER, [Ticket.kind == domain.TICKET,
                                              Ticket.status == domain.TICKET_FEEDBACK],
                          self._reminder_plan, self._reminder_act))
        if desk.auto_close_days:
            kinds.append((AUTO_CLOSE, [Ticket.kind == domain.TICKET, Ticket.status == domain.TICKET_RESOLVED],
                          self._close_plan, self._close_act))
        return kinds

    def _pending(self, kind: str, where: list[ColumnElement[bool]], plan: Plan,
                 now: datetime) -> list[tuple[int, str]]:
        """(ticket id, point key) of each record whose latest due point is not done yet."""
        with self.db.sessions() as s:
            tickets = list(s.scalars(select(Ticket).where(*where).order_by(Ticket.id)))
            if not tickets:
                return []
            ids = select(Ticket.id).where(*where)
            done = {(ticket_id, point) for ticket_id, point in s.execute(
                select(DeadlineAlert.ticket_id, DeadlineAlert.point).where(
                    DeadlineAlert.kind == kind, DeadlineAlert.ticket_id.in_(ids)))}
            todo = []
            for t in tickets:
                current = _current(plan(t, now), now)
                if current is not None and (t.id, current.key) not in done:
                    todo.append((t.id, current.key))
            return todo

    def _fire(self, kind: str, ticket_id: int, key: str, now: datetime, plan: Plan, act: Act) -> bool:
        """Do one due point in its own transaction; False when it was done already (by another
        daemon, or before a restart) or is no longer due (the record changed meanwhile)."""
        try:
            with self.db.transaction() as s:
                # FOR UPDATE (PostgreSQL): a staff change in flight is committed before we look.
                ticket = s.get(Ticket, ticket_id, with_for_update=True)
                if ticket is None:
                    return False
                points = [p for p in plan(ticket, now) if p.at <= now]
                if not points or points[-1].key != key:
                    return False
                recorded = set(s.scalars(select(DeadlineAlert.point).where(
                    DeadlineAlert.ticket_id == ticket.id, DeadlineAlert.kind == kind)))
                if key in recorded:
                    return False
                current = points[-1]
                alert = DeadlineAlert(ticket_id=ticket.id, kind=kind, point=key, due_at=current.due,
                                      sent=True, created_at=now)
                s.add(alert)
                s.flush()  # the lock: a second daemon inserting this key waits here, then fails
                for p in points[:-1]:
                    if p.key not in recorded:
                        s.add(DeadlineAlert(ticket_id=ticket.id, kind=kind, point=p.key, due_at=p.due,
                                            sent=False, created_at=now))
                alert.outbox_id = act(s, ticket, current)
        except IntegrityError:
            return False
        return True

    # -- MAIL-7: acceptance ------------------------------------------------------------------------

    def _accept_plan(self, t: Ticket, now: datetime) -> list[Point]:
        if t.kind != domain.TICKET or t.accepted_at is not None or t.accept_due_at is None:
            return []
        due = as_utc(t.accept_due_at)
        period = stamp(t.accept_started_at or t.created_at)
        points = [Point(f"{duration_label(w)}@{period}", duration_label(w),
                        self.calendar.add_working_time(due, -w), due)
                  for w in self.settings.worktime.warn_before]
        points.append(Point(f"{OVERDUE}@{period}", OVERDUE, due, due))
        return sorted(points, key=lambda p: p.at)

    def _accept_act(self, s: Session, t: Ticket, p: Point) -> int | None:
        assert p.due is not None
        due = self._when(p.due)
        if p.label == OVERDUE:
            hours = self.settings.worktime.acceptance_hours
            head = (f"🔴 <b>{_e(t.public_id)}</b>: заявка не принята в работу в срок — срок {due} истёк "
                    f"({hours:g} рабочих ч с поступления, п. 4.6 Регламента).")
        else:
            left = next(w for w in self.settings.worktime.warn_before if duration_label(w) == p.label)
            head = (f"⏰ <b>{_e(t.public_id)}</b>: до срока принятия в работу осталось "
                    f"{duration_text(left)} рабочего времени — срок {due}.")
        return self._tell_staff(s, t, "deadline_alert", p, head + "\n" + _about(t))

    # -- APL-6: appeals ----------------------------------------------------------------------------

    def _appeal_plan(self, kind: str) -> Plan:
        def plan(t: Ticket, now: datetime) -> list[Point]:
            if t.kind != domain.APPEAL or t.status == domain.APPEAL_DONE:
                return []
            if kind == APPEAL_REGISTRATION:
                if t.status != domain.APPEAL_NEW or t.registration_due_at is None:
                    return []
                due = as_utc(t.registration_due_at)
            else:
                if t.answer_due_at is None:
                    return []
                due = as_utc(t.answer_due_at)
            period = stamp(due)
            ws = self.settings.worktime
            last_day = (due.astimezone(self.calendar.tz) - timedelta(microseconds=1)).date()
            points = [Point(f"{n}d@{period}", f"{n}d",
                            datetime.combine(last_day - timedelta(days=n - 1), ws.day_start,
                                             self.calendar.tz).astimezone(UTC), due)
                      for n in self.settings.desk.appeal_warn_days]
            points.append(Point(f"{OVERDUE}@{period}", OVERDUE, due, due))
            return sorted(points, key=lambda p: p.at)

        return plan

    def _appeal_act(self, what: str) -> Act:
        def act(s: Session, t: Ticket, p: Point) -> int | None:
            last_day = self.desk.local_date(p.due)
            if p.label == OVERDUE:
                head = f"🔴 <b>{_e(t.public_id)}</b>: {what} истёк ({last_day}, 59-ФЗ)."
            else:
                days = int(p.label.removesuffix("d"))
                head = (f"⏰ <b>{_e(t.public_id)}</b>: {what} — до {last_day} включительно "
                        f"(осталось дней: {days}).")
            return self._tell_staff(s, t, "deadline_alert", p, head + "\n" + _about(t))

        return act

    # -- reminders in `Обратная связь` --------------------------------------------------------------

    def _reminder_plan(self, t: Ticket, now: datetime) -> list[Point]:
        if t.kind != domain.TICKET or t.status != domain.TICKET_FEEDBACK:
            return []
        since = as_utc(t.status_changed_at or t.updated_at)
        return [Point(f"{n}d@{stamp(since)}", f"{n}d", self.calendar.add_working_days(since, n), None)
                for n in self.settings.desk.feedback_reminder_days]

    def _reminder_act(self, s: Session, t: Ticket, p: Point) -> int | None:
        days = int(p.label.removesuffix("d"))
        since = as_utc(t.status_changed_at or t.updated_at)
        question = s.scalar(select(AuditEvent.detail).where(
            AuditEvent.ticket_id == t.id, AuditEvent.action == "status",
            AuditEvent.to_value == domain.TICKET_FEEDBACK).order_by(AuditEvent.id.desc()).limit(1)) or {}
        subject, body = render_email(
            "feedback_reminder", ticket=t, since=self._when(since), missing=list(t.missing_fields or ()),
            question=str(question.get("comment") or ""), institution=self.settings.institution.name)
        letter = self.desk.letter_to_requester(s, t, "reminder", subject, body, auto=AUTO_GENERATED)
        self.desk.audit(s, t, SYSTEM, "reminder", None, p.label, days=days,
                        outbox_id=letter.id if letter else None)
        told = ("заявителю отправлено напоминание." if letter else
                "адреса заявителя нет, напоминание не отправлено.")
        text = (f"✉️ <b>{_e(t.public_id)}</b>: заявка ждёт ответа заявителя {days} раб. дн. "
                f"(с {self._when(since)}); {told}\n{_about(t)}")
        self._queue_alert(s, t, text)
        return letter.id if letter else None

    # -- closing resolved tickets -------------------------------------------------------------------

    def _close_plan(self, t: Ticket, now: datetime) -> list[Point]:
        if t.kind != domain.TICKET or t.status != domain.TICKET_RESOLVED:
            return []
        since = as_utc(t.status_changed_at or t.updated_at)
        n = self.settings.desk.auto_close_days
        return [Point(f"{n}d@{stamp(since)}", f"{n}d", self.calendar.add_working_days(since, n), None)]

    def _close_act(self, s: Session, t: Ticket, p: Point) -> int | None:
        days = int(p.label.removesuffix("d"))
        resolved = self._when(as_utc(t.status_changed_at or t.updated_at))
        self.desk.set_status(s, t, SYSTEM, domain.TICKET_CLOSED,
                             reason=f"нет ответа заявителя {days} раб. дн. после решения")
        subject, body = render_email("auto_closed", ticket=t, resolved=resolved, days=days,
                                     reopen_days=self.settings.desk.reopen_days,
                                     institution=self.settings.institution.name)
        letter = self.desk.letter_to_requester(s, t, "status", subject, body, auto=AUTO_GENERATED)
        self.desk.on_change(s, t, "status")
        return letter.id if letter else None

    # -- the staff chat ----------------------------------------------------------------------------

    def _tell_staff(self, s: Session, t: Ticket, action: str, p: Point, text: str) -> int | None:
        item = self._queue_alert(s, t, text)
        self.desk.audit(s, t, SYSTEM, action, None, p.label, due=p.due.isoformat() if p.due else None,
                        outbox_id=item)
        return item

    def _queue_alert(self, s: Session, t: Ticket, text: str) -> int | None:
        """A plain message to the staff chat through the outbox; None without a staff chat."""
        chat_id = self.settings.telegram.staff_chat_id
        if not chat_id:
            log.info("no [telegram] staff_chat_id: not told in a chat: %s", text.splitlines()[0])
            return None
        now = self.desk.clock()
        payload: dict[str, Any] = {"chat_id": chat_id, "text": text, "ticket_id": t.id}
        item = OutboxItem(channel=TELEGRAM, purpose=ALERT, ticket_id=t.id, to_addr=str(chat_id),
                          recipients=[chat_id], subject=t.public_id,
                          payload=json.dumps(payload, ensure_ascii=False).encode(), created_at=now,
                          next_attempt_at=now)
        s.add(item)
        s.flush()
        return item.id

    def _when(self, at: datetime) -> str:
        return localtime.minute(at, self.calendar.tz)


def _current(points: list[Point], now: datetime) -> Point | None:
    due = [p for p in points if p.at <= now]
    return due[-1] if due else None


def _e(value: object) -> str:
    return html.escape(str(value if value is not None else ""), quote=False)


def _about(t: Ticket) -> str:
    who = t.requester_name or t.requester_email or "—"
    owner = f" · исполнитель {t.assignee}" if t.assignee else ""
    subject = t.subject if len(t.subject) <= 200 else t.subject[:199] + "…"
    return _e(f"«{subject}» · {who} · статус «{t.status}»{owner}")
