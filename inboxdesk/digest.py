"""The daily word on filtered mail (issue 17: nothing hidden from staff).

Mail the rules filtered (a foreign domain, spam signs, an auto-reply) is recorded but makes no
record, so without this only the CLI shows it. At the start of each working day the staff chat
gets one message listing what was filtered since the previous one (at the first timer run after
the day's start that finds any), with a button to read each
letter and one to take it in as a request (`mailflow.intake.accept_filtered`, audited). Done
once a day across daemons and restarts (a `counters` row claimed in the same transaction as the
outbox row). The bot renders the message when it sends it (purpose `digest`), so the buttons
carry its own signature.
"""

from __future__ import annotations

import json
from datetime import date, datetime, timedelta

from sqlalchemy import Select, func, select

from inboxdesk import domain
from inboxdesk.desk import Desk
from inboxdesk.localtime import as_utc
from storage.counters import claim_once
from storage.db import Database
from storage.models import InboundMessage, OutboxItem

DIGEST = "digest"  # outbox purpose (telegram)
SHOWN = 10  # letters listed with buttons; the rest are counted (`inbound list` has them all)


def filtered_since(since: datetime) -> Select[tuple[int]]:
    """Filtered mail that staff could still take in, received since `since`."""
    return select(InboundMessage.id).where(
        InboundMessage.disposition.in_(domain.TAKEABLE), InboundMessage.ticket_id.is_(None),
        InboundMessage.received_at >= since).order_by(InboundMessage.id)


def queue_daily_digest(db: Database, desk: Desk, now: datetime) -> bool:
    """Queue today's digest if it is due (a working day, its start passed), not done yet and
    anything was filtered; True when it was queued."""
    settings = desk.settings
    chat = settings.telegram.staff_chat_id
    local = as_utc(now).astimezone(desk.calendar.tz)
    if not chat or not desk.calendar.is_working_day(local.date()) or local.time() < desk.calendar.start:
        return False
    with db.transaction() as s:
        previous = s.scalar(select(func.max(OutboxItem.created_at)).where(
            OutboxItem.channel == "telegram", OutboxItem.purpose == DIGEST))
        since = as_utc(previous) if previous else _previous_working_morning(desk, local.date())
        ids = list(s.scalars(filtered_since(since)))
        if not ids or not claim_once(s, f"filtered-digest:{local.date().isoformat()}"):
            return False  # nothing filtered yet today (a later run may find some), or done
        payload = {"chat_id": chat, "inbound_ids": ids[:SHOWN], "count": len(ids),
                   "since": as_utc(since).isoformat()}
        s.add(OutboxItem(channel="telegram", purpose=DIGEST, to_addr=str(chat), recipients=[chat],
                         subject="filtered mail", created_at=now, next_attempt_at=now,
                         payload=json.dumps(payload).encode()))
    return True


def _previous_working_morning(desk: Desk, today: date) -> datetime:
    """The start of the working day before `today`: what the first digest covers (Monday's
    takes in the weekend)."""
    day = today - timedelta(days=1)
    while not desk.calendar.is_working_day(day):
        day -= timedelta(days=1)
    return datetime.combine(day, desk.calendar.start, desk.calendar.tz)
