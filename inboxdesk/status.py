"""How the desk is doing, from the database (issue 13): the same summary for `inboxdesk status`,
the daemon's `/readyz` and the gauges of `/metrics`, whichever instance asks.

Ready means: the database answers, every mailbox was read to the end within its interval (by any
instance), and no letter has been due for longer than STUCK.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import func, select, text

from inboxdesk import localtime, retention, workflow
from inboxdesk.failures import failure_text
from inboxdesk.retention import Retention
from inboxdesk.settings import RETENTION_KEYS, MailboxSettings, Settings
from inboxdesk.timers import overdue_condition
from storage import leases, outbox
from storage.db import Database
from storage.models import AuditEvent, OutboxItem, Ticket, utcnow

STUCK = timedelta(minutes=15)  # a due letter older than this: delivery is not working


def read_within(box: MailboxSettings) -> timedelta:
    """How old a mailbox's last complete read may be before it counts as not being read."""
    return timedelta(seconds=3 * box.poll_seconds + 10)


def summary(db: Database, settings: Settings, zone: ZoneInfo, now: datetime | None = None,
            started_at: datetime | None = None) -> dict[str, Any]:
    """Everything `status` shows; `problems` lists why the desk is not ready (empty: ready).
    `started_at`: a daemon's start, so mailboxes it has not had time to read are not counted."""
    now = now or utcnow()
    view: dict[str, Any] = {"at": localtime.iso(now, zone), "problems": []}
    problems: list[str] = view["problems"]
    try:
        with db.sessions() as s:
            s.execute(text("SELECT 1"))
            reads = leases.last_reads(s)
            kinds = (OutboxItem.channel, OutboxItem.purpose, OutboxItem.status)
            by_kind = s.execute(select(*kinds, func.count()).group_by(*kinds)).all()
            by_status: dict[str, int] = {}
            for _channel, _purpose, status, count in by_kind:
                by_status[status] = by_status.get(status, 0) + count
            oldest = s.scalar(select(func.min(OutboxItem.next_attempt_at)).where(
                OutboxItem.status == outbox.PENDING, OutboxItem.next_attempt_at <= now))
            tickets = dict(s.execute(select(Ticket.status, func.count()).where(
                Ticket.status.not_in(workflow.DONE)).group_by(Ticket.status)).all())
            overdue = s.scalar(select(func.count()).select_from(Ticket).where(overdue_condition(now))) or 0
            kept = settings.retention
            view["retention"] = {
                "days": {key: getattr(kept, key) for key in RETENTION_KEYS},
                "due": Retention(db, kept).due(s, now).as_dict(),
                "last_done_at": localtime.iso(s.scalar(select(func.max(AuditEvent.at)).where(
                    AuditEvent.actor == retention.ACTOR)), zone)}
    except Exception as exc:  # any driver error: the desk is not ready, and says why
        problems.append(failure_text(exc))
        view["database"] = "unreachable"
        return view
    view["database"] = "ok"
    view["mailboxes"] = {}
    for box in settings.mailboxes:
        last = reads.get(box.name)
        late = now - localtime.as_utc(last) > read_within(box) if last else (
            started_at is None or now - started_at > read_within(box))
        view["mailboxes"][box.name] = {"last_read_at": localtime.iso(last, zone), "read_in_time": not late}
        if late:
            problems.append(f"mailbox {box.name}: not read since "
                            f"{localtime.minute(last, zone) if last else 'the start'}")
    age = (now - localtime.as_utc(oldest)).total_seconds() if oldest else 0.0
    view["outbox"] = {"by_status": by_status, "oldest_due_seconds": round(age),
                      "by_channel": [{"channel": c, "purpose": p, "status": st, "count": n}
                                     for c, p, st, n in by_kind]}
    if age > STUCK.total_seconds():
        problems.append(f"outbox: a letter has been due for {round(age / 60)} min")
    view["open_records"] = tickets
    view["overdue"] = overdue
    return view


def summary_text(view: dict[str, Any]) -> str:
    """The summary for a terminal."""
    lines = [f"состояние на {view['at']}: {'готов' if not view['problems'] else 'есть проблемы'}",
             f"база данных: {view['database']}"]
    for name, box in (view.get("mailboxes") or {}).items():
        lines.append(f"ящик {name}: прочитан {box['last_read_at'] or 'ещё не читался'}"
                     f"{'' if box['read_in_time'] else ' — давно'}")
    if "outbox" in view:
        counts = ", ".join(f"{k} {v}" for k, v in sorted(view["outbox"]["by_status"].items())) or "пусто"
        lines.append(f"исходящие: {counts}; самое старое ждёт {view['outbox']['oldest_due_seconds']} с")
        opened = ", ".join(f"{k} {v}" for k, v in sorted(view["open_records"].items())) or "нет"
        lines.append(f"открытые записи: {opened}; просрочено: {view['overdue']}")
        lines.append(_retention_line(view["retention"]))
    lines += [f"ПРОБЛЕМА: {p}" for p in view["problems"]]
    return "\n".join(lines)


# The steps of `[retention]` for a person: what is deleted, and what the due count counts.
_RETENTION_STEPS = (("filtered_raw_days", "filtered_raw", "исходные письма отфильтрованной почты", "писем"),
                    ("closed_raw_days", "closed_raw", "исходные письма завершённых записей", "записей"),
                    ("closed_files_days", "closed_files", "вложения завершённых записей", "записей"),
                    ("anonymise_days", "anonymised", "обезличивание завершённых записей", "записей"))


def _retention_line(kept: dict[str, Any]) -> str:
    steps = [f"{what} через {kept['days'][key]} дн. (сейчас к выполнению: {kept['due'][due]} {unit})"
             for key, due, what, unit in _RETENTION_STEPS if kept["days"][key] is not None]
    if not steps:
        return "хранение: всё хранится бессрочно ([retention] не задан)"
    last = f"; последний раз {kept['last_done_at']}" if kept["last_done_at"] else ""
    return "хранение: " + "; ".join(steps) + last
