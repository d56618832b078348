"""Everything held about one person, for a subject-access request (152-FZ art. 14; issue 13).

`inboxdesk export-data --requester EMAIL` gathers, as one JSON document: every record the person
requested (with its messages, attachments — their bytes in base64 —, fields, deadlines, audit
events and letters), every letter of theirs the mailboxes received (with the raw bytes in base64,
whether or not it became a record) and every letter we wrote to them.
"""

from __future__ import annotations

import base64
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from inboxdesk import localtime, views
from storage.models import Attachment, InboundMessage, OutboxItem, Ticket, TicketMessage, utcnow


def export_requester(session: Session, address: str, zone: ZoneInfo) -> dict[str, Any]:
    address = address.strip().lower()
    records = list(session.scalars(select(Ticket).where(func.lower(Ticket.requester_email) == address)
                                   .order_by(Ticket.id)))
    ids = views.public_ids(session)
    exported = []
    for ticket in records:
        view = views.ticket_detail(session, ticket, zone)
        files = session.execute(select(Attachment.filename, Attachment.content).join(
            TicketMessage, TicketMessage.id == Attachment.ticket_message_id)
            .where(TicketMessage.ticket_id == ticket.id).order_by(Attachment.id)).all()
        view["files"] = [{"filename": name, "content_base64": base64.b64encode(content).decode()
                          if content is not None else None} for name, content in files]
        exported.append(view)
    received = [{**views.inbound_view(r, zone, ids),
                 "raw_base64": None if r.raw_deleted_at else base64.b64encode(r.raw).decode()}
                for r in session.scalars(select(InboundMessage).where(
                    func.lower(InboundMessage.from_addr) == address).order_by(InboundMessage.id))]
    letters = session.scalars(select(OutboxItem).where(OutboxItem.channel == "email").order_by(OutboxItem.id))
    written = [views.outbox_view(o, zone, ids) for o in letters
               if address in (r.lower() for r in o.recipients)]
    return {"requester": address, "exported_at": localtime.iso(utcnow(), zone),
            "records": exported, "received_letters": received, "letters_to_them": written}
