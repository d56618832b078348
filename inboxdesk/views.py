"""Plain-data views of records, shared by the CLI's JSON and tables (and later the bot)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from storage.models import AuditEvent, InboundMessage, OutboxItem, Ticket


def iso(at: datetime | None) -> str | None:
    return at.isoformat() if at else None


def ticket_summary(t: Ticket) -> dict[str, Any]:
    return {"id": t.public_id, "kind": t.kind, "status": t.status, "subject": t.subject,
            "requester_email": t.requester_email, "requester_name": t.requester_name,
            "created_at": iso(t.created_at), "assignee": t.assignee, "priority": t.priority,
            "impact": t.impact, "line": t.line, "channel": t.channel,
            "missing_fields": list(t.missing_fields or ()), "status_changed_at": iso(t.status_changed_at),
            "accept_due_at": iso(t.accept_due_at), "accepted_at": iso(t.accepted_at)}


def ticket_detail(session: Session, t: Ticket) -> dict[str, Any]:
    view = ticket_summary(t)
    linked = session.get(Ticket, t.linked_ticket_id) if t.linked_ticket_id else None
    view["linked_to"] = linked.public_id if linked else None
    view["fields"] = t.fields
    view["deadlines"] = deadlines(t)
    view["messages"] = [{
        "direction": m.direction, "from": m.from_addr, "to": m.to_addrs, "subject": m.subject,
        "body": m.body, "at": iso(m.at), "author": m.author, "message_id": m.message_id,
        "attachments": [{"filename": a.filename, "content_type": a.content_type, "size": a.size,
                         "sha256": a.sha256, "stored": a.content is not None} for a in m.attachments],
    } for m in t.messages]
    events = session.scalars(select(AuditEvent).where(AuditEvent.ticket_id == t.id).order_by(AuditEvent.id))
    view["events"] = [audit_view(e) for e in events]
    letters = session.scalars(select(OutboxItem).where(OutboxItem.ticket_id == t.id).order_by(OutboxItem.id))
    view["outbox"] = [outbox_view(o, {t.id: t.public_id}) for o in letters]
    return view


def audit_view(e: AuditEvent) -> dict[str, Any]:
    return {"at": iso(e.at), "actor": e.actor, "action": e.action, "from": e.from_value,
            "to": e.to_value, "detail": e.detail}


def inbound_view(r: InboundMessage, public_ids: dict[int, str]) -> dict[str, Any]:
    return {"id": r.id, "mailbox": r.mailbox, "uid": r.uid, "message_id": r.message_id,
            "from": r.from_addr, "subject": r.subject, "received_at": iso(r.received_at),
            "state": r.state, "disposition": r.disposition, "reasons": r.reasons,
            "ticket_id": public_ids.get(r.ticket_id) if r.ticket_id else None}


def outbox_view(o: OutboxItem, public_ids: dict[int, str] | None = None) -> dict[str, Any]:
    return {"id": o.id, "channel": o.channel, "purpose": o.purpose, "to": o.recipients,
            "subject": o.subject, "status": o.status, "attempts": o.attempts,
            "last_error": o.last_error,
            "ticket_id": (public_ids or {}).get(o.ticket_id) if o.ticket_id else None,
            "created_at": iso(o.created_at), "sent_at": iso(o.sent_at)}


def public_ids(session: Session) -> dict[int, str]:
    return {row.id: row.public_id for row in session.execute(select(Ticket.id, Ticket.public_id))}


def deadlines(t: Ticket) -> dict[str, Any] | None:
    """APL-6 deadlines of an appeal; the MAIL-7 acceptance clock of a support ticket."""
    if t.kind == "ticket":
        started, due, accepted = t.accept_started_at, t.accept_due_at, t.accepted_at
        return {"accept_started_at": iso(started), "accept_due_at": iso(due), "accepted_at": iso(accepted),
                "paused": started is not None and accepted is None and due is None,
                "accepted_late": bool(accepted and due and accepted > due)}
    if t.kind != "appeal":
        return None
    return {"registered_at": iso(t.registered_at), "registration_due_at": iso(t.registration_due_at),
            "answer_due_at": iso(t.answer_due_at), "extension_days": t.extension_days,
            "extension_reason": t.extension_reason}


def detail_lines(v: dict[str, Any]) -> list[str]:
    """Text lines for a record's line, owner, priority, missing fields and deadlines."""
    lines = [f"исполнитель: {v['assignee'] or '—'}, линия {v['line']}, канал {v['channel']}"]
    if v["priority"]:
        lines.append(f"приоритет: {v['priority']}, влияние: {v['impact']}")
    if v["missing_fields"]:
        lines.append(f"не заполнено: {', '.join(v['missing_fields'])}")
    d = v.get("deadlines")
    if d and "accept_due_at" in d:
        lines.append(_acceptance_line(d))
    elif d:
        lines.append(f"зарегистрировано: {d['registered_at']} (срок регистрации {d['registration_due_at']})")
        extended = (f", продлён на {d['extension_days']} дн.: {d['extension_reason']}"
                    if d["extension_days"] else "")
        lines.append(f"срок ответа: {d['answer_due_at']}{extended}")
    for name, value in (v.get("fields") or {}).items():
        lines.append(f"{name}: {value}")
    return lines


def _acceptance_line(d: dict[str, Any]) -> str:
    if d["paused"]:
        return "срок принятия в работу: приостановлен, ждём ответа заявителя («Обратная связь»)"
    if d["accepted_at"]:
        late = " — с опозданием" if d["accepted_late"] else ""
        return f"принята в работу: {d['accepted_at']} (срок {d['accept_due_at']}{late})"
    return f"срок принятия в работу: {d['accept_due_at'] or '—'}"
