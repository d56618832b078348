"""Plain-data views of records for the CLI: JSON as data, and the same data as text for a person.

JSON times are ISO 8601 with the desk's local offset (`localtime.iso`); text shows them to the
minute with the zone's label, and 59-FZ terms as their last day (`localtime.minute`, `.day`).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import select
from sqlalchemy.orm import Session

from inboxdesk import localtime
from storage.models import AuditEvent, InboundMessage, OutboxItem, Ticket

KIND_NAMES = {"ticket": "заявка", "appeal": "обращение"}


def ticket_summary(t: Ticket, zone: ZoneInfo) -> dict[str, Any]:
    iso = lambda at: localtime.iso(at, zone)  # noqa: E731 - one name for the many fields below
    return {"id": t.public_id, "kind": t.kind, "status": t.status, "subject": t.subject,
            "requester_email": t.requester_email, "requester_name": t.requester_name,
            "organisation": t.organisation or None, "created_at": iso(t.created_at),
            "assignee": t.assignee, "priority": t.priority,
            "impact": t.impact, "line": t.line, "channel": t.channel,
            "missing_fields": list(t.missing_fields or ()), "status_changed_at": iso(t.status_changed_at),
            "accept_due_at": iso(t.accept_due_at), "accepted_at": iso(t.accepted_at),
            "sender_check": t.sender_check or None, "anonymised_at": iso(t.anonymised_at)}


def ticket_detail(session: Session, t: Ticket, zone: ZoneInfo) -> dict[str, Any]:
    view = ticket_summary(t, zone)
    linked = session.get(Ticket, t.linked_ticket_id) if t.linked_ticket_id else None
    view["linked_to"] = linked.public_id if linked else None
    view["fields"] = t.fields
    view["deadlines"] = deadlines(t, zone)
    view["messages"] = [{
        "direction": m.direction, "from": m.from_addr, "to": m.to_addrs, "subject": m.subject,
        "body": m.body, "at": localtime.iso(m.at, zone), "author": m.author, "message_id": m.message_id,
        "attachments": [{"filename": a.filename, "content_type": a.content_type, "size": a.size,
                         "sha256": a.sha256, "stored": a.content is not None,
                         "deleted_at": localtime.iso(a.deleted_at, zone)} for a in m.attachments],
    } for m in t.messages]
    events = session.scalars(select(AuditEvent).where(AuditEvent.ticket_id == t.id).order_by(AuditEvent.id))
    view["events"] = [audit_view(e, zone) for e in events]
    letters = session.scalars(select(OutboxItem).where(OutboxItem.ticket_id == t.id).order_by(OutboxItem.id))
    view["outbox"] = [outbox_view(o, zone, {t.id: t.public_id}) for o in letters]
    return view


def audit_view(e: AuditEvent, zone: ZoneInfo) -> dict[str, Any]:
    return {"at": localtime.iso(e.at, zone), "actor": e.actor, "action": e.action, "from": e.from_value,
            "to": e.to_value, "detail": e.detail}


def inbound_view(r: InboundMessage, zone: ZoneInfo, public_ids: dict[int, str]) -> dict[str, Any]:
    return {"id": r.id, "mailbox": r.mailbox, "uid": r.uid, "message_id": r.message_id,
            "from": r.from_addr, "subject": r.subject, "received_at": localtime.iso(r.received_at, zone),
            "state": r.state, "disposition": r.disposition, "reasons": r.reasons,
            "ticket_id": public_ids.get(r.ticket_id) if r.ticket_id else None,
            "raw_deleted_at": localtime.iso(r.raw_deleted_at, zone)}


def outbox_view(o: OutboxItem, zone: ZoneInfo, public_ids: dict[int, str] | None = None) -> dict[str, Any]:
    return {"id": o.id, "channel": o.channel, "purpose": o.purpose, "to": o.recipients,
            "subject": o.subject, "status": o.status, "attempts": o.attempts,
            "last_error": o.last_error,
            "ticket_id": (public_ids or {}).get(o.ticket_id) if o.ticket_id else None,
            "created_at": localtime.iso(o.created_at, zone), "sent_at": localtime.iso(o.sent_at, zone),
            "next_attempt_at": localtime.iso(o.next_attempt_at, zone) if o.status == "pending" else None}


# Dispositions (inboxdesk.domain.DISPOSITIONS) as a person reads them in a summary line.
DISPOSITION_NAMES = {"ticket": "заявка", "followup": "дополнение", "filtered": "отфильтровано",
                     "autoreply": "автоответ", "bounce": "возврат", "duplicate": "повтор", "error": "ошибка"}


def dispositions_text(counts: dict[str, int], mailbox_kind: str = "tickets") -> str:
    """`заявка 2, повтор 1` (a new record from an appeals mailbox is an обращение); `нового нет`."""
    names = {**DISPOSITION_NAMES, **({"ticket": "обращение"} if mailbox_kind == "appeals" else {})}
    return ", ".join(f"{names.get(k, k)} {v}" for k, v in sorted(counts.items())) or "нового нет"


def public_ids(session: Session) -> dict[int, str]:
    return {row.id: row.public_id for row in session.execute(select(Ticket.id, Ticket.public_id))}


def deadlines(t: Ticket, zone: ZoneInfo) -> dict[str, Any] | None:
    """APL-6 deadlines of an appeal; the MAIL-7 acceptance clock of a support ticket."""
    iso = lambda at: localtime.iso(at, zone)  # noqa: E731
    if t.kind == "ticket":
        started, due, accepted = t.accept_started_at, t.accept_due_at, t.accepted_at
        return {"accept_started_at": iso(started), "accept_due_at": iso(due), "accepted_at": iso(accepted),
                "paused": started is not None and accepted is None and due is None,
                "accepted_late": bool(accepted and due
                                      and localtime.as_utc(accepted) > localtime.as_utc(due))}
    if t.kind != "appeal":
        return None
    return {"registered_at": iso(t.registered_at), "registration_due_at": iso(t.registration_due_at),
            "answer_due_at": iso(t.answer_due_at), "extension_days": t.extension_days,
            "extension_reason": t.extension_reason}


# -- text for a person ----------------------------------------------------------------------------

def shown(value: str | None, zone: ZoneInfo) -> str:
    """A JSON time of these views as a person reads it: `07.12.2026 16:00 MSK` ("—" for none)."""
    return localtime.minute(datetime.fromisoformat(value), zone) if value else "—"


def term(value: str | None, zone: ZoneInfo) -> str:
    """A 59-FZ term by its last day, as the applicant's letter says it: `до 11.01.2027`."""
    return f"до {localtime.day(datetime.fromisoformat(value), zone)}" if value else "—"


def requester(v: dict[str, Any]) -> str:
    """`Петрова И. С. <i.petrova@sev.gov.ru>`, or the phone when a caller left no address."""
    name, email = v["requester_name"] or "", v["requester_email"] or ""
    contact = f"<{email}>" if email else (f"тел. {v['fields']['Телефон']}" if (v.get("fields") or {}).get(
        "Телефон") else "без адреса")
    return f"{name} {contact}".strip()


def detail_lines(v: dict[str, Any], zone: ZoneInfo) -> list[str]:
    """Text lines for a record's line, owner, priority, missing fields and deadlines."""
    lines = [f"исполнитель: {v['assignee'] or '—'}, линия {v['line']}, канал {v['channel']}"]
    if v.get("sender_check"):
        lines.append(f"⚠ отправитель не подтверждён (MAIL-2): {v['sender_check']}")
    if v["priority"]:
        lines.append(f"приоритет: {v['priority']}, влияние: {v['impact']}")
    if v["missing_fields"]:
        lines.append(f"не заполнено: {', '.join(v['missing_fields'])}")
    d = v.get("deadlines")
    if d and "accept_due_at" in d:
        lines.append(_acceptance_line(d, zone))
    elif d:
        lines.append(f"зарегистрировано: {shown(d['registered_at'], zone)} "
                     f"(срок регистрации {term(d['registration_due_at'], zone)})")
        extended = (f", продлён на {d['extension_days']} дн.: {d['extension_reason']}"
                    if d["extension_days"] else "")
        lines.append(f"срок ответа: {term(d['answer_due_at'], zone)}{extended}")
    for name, value in (v.get("fields") or {}).items():
        lines.append(f"{name}: {value}")
    return lines


def _acceptance_line(d: dict[str, Any], zone: ZoneInfo) -> str:
    if d["paused"]:
        return "срок принятия в работу: приостановлен, ждём ответа заявителя («Обратная связь»)"
    if d["accepted_at"]:
        late = " — с опозданием" if d["accepted_late"] else ""
        return (f"принята в работу: {shown(d['accepted_at'], zone)} "
                f"(срок {shown(d['accept_due_at'], zone)}{late})")
    return f"срок принятия в работу: {shown(d['accept_due_at'], zone)}"


def table(rows: Sequence[dict[str, Any]], columns: Sequence[str], empty: str = "(нет)") -> str:
    """Rows under a header line; lists are joined, long cells end with "…" at a word boundary
    (except in the last column, which has the rest of the line)."""
    if not rows:
        return empty
    cells = [[cell(r.get(c)) for c in columns] for r in rows]
    widths = [max(len(c), *(len(row[i]) for row in cells)) for i, c in enumerate(columns)]
    widths = [min(60, w) for w in widths[:-1]] + widths[-1:]
    lines = ["  ".join(c.ljust(w) for c, w in zip(columns, widths, strict=True)).rstrip()]
    lines += ["  ".join(_fit(v, w).ljust(w) for v, w in zip(row, widths, strict=True)).rstrip()
              for row in cells]
    return "\n".join(lines)


def cell(value: Any) -> str:
    """A value as a table shows it: lists joined with "; ", nothing for None, one line."""
    if value is None:
        return ""
    if isinstance(value, list | tuple):
        return "; ".join(cell(v) for v in value)
    return " ".join(str(value).split())


def _fit(text: str, width: int) -> str:
    if len(text) <= width:
        return text
    cut = text[:width - 1]
    space = cut.rfind(" ")
    return (cut[:space] if space > width // 2 else cut).rstrip(" ,;") + "…"
