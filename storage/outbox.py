"""The outbox: effects written in the transaction that caused them, delivered later.

Claiming is a conditional UPDATE with a lease, so several daemons can share the work and a
daemon killed mid-delivery leaves rows that become due again when the lease runs out.
"""

from __future__ import annotations

import socket
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Select, bindparam, delete, func, or_, select, update
from sqlalchemy.orm import Session

from storage.db import escape_like
from storage.models import OutboxItem, TicketMessage, utcnow
from storage.owners import dead_here, worker_id

PENDING, SENT, FAILED, BOUNCED = "pending", "sent", "failed", "bounced"
RETRYABLE = (FAILED, BOUNCED)  # what an admin may send again (`inboxdesk outbox retry`)
# What became of one delivery attempt, for whoever counts them (inboxdesk.metrics): SENT, FAILED
# (given up), RETRY (refused for now, tried again later) or UNAVAILABLE (the server not reached).
RETRY, UNAVAILABLE = "retry", "unavailable"
AttemptWatcher = Callable[[str, str], None]  # (channel, outcome)


def unwatched(_channel: str, _outcome: str) -> None:
    """The watcher when nobody counts."""


def _auto_since(*where: Any) -> Select[tuple[int]]:
    return select(func.count()).select_from(OutboxItem).where(
        OutboxItem.auto.is_(True), OutboxItem.created_at >= bindparam("since"), *where)


# Prepared once: they run for every acknowledgement. Each has an index (to_addr | ticket_id |
# created_at with auto); the per-domain one scans the hour's rows and runs only when configured.
_CAPS = (
    ("auto_mail_per_hour", "почасовой предел автоматических писем на этот адрес",
     _auto_since(OutboxItem.to_addr == bindparam("key"))),
    ("auto_mail_per_record_hour", "почасовой предел автоматических писем по этой записи",
     _auto_since(OutboxItem.ticket_id == bindparam("ticket_id"))),
    ("auto_mail_per_domain_hour", "почасовой предел автоматических писем на этот домен",
     _auto_since(OutboxItem.to_addr.like(bindparam("domain_like"), escape="\\"))),
    ("auto_mail_total_hour", "почасовой предел всех автоматических писем",
     _auto_since()),
)


def auto_mail_cap(session: Session, limits: Any, key: str, ticket_id: int | None,
                  since: datetime) -> str | None:
    """The OUT-1 cap an automatic letter to `key` (`domain.mail_key`) about record `ticket_id`
    would exceed now, as its reason; None when it may go. A limit of 0 is no limit.

    It flushes first only when outbox rows wait in the session (an autoflush would write
    everything pending, every time).
    """
    if any(isinstance(obj, OutboxItem) for obj in (*session.new, *session.dirty)):
        session.flush()
    domain_like = f"%@{escape_like(key.rpartition('@')[2])}"
    params = {"since": since, "key": key, "ticket_id": ticket_id, "domain_like": domain_like}
    conn = session.connection()
    for setting, reason, query in _CAPS:
        limit = getattr(limits, setting)
        if limit and (conn.execute(query, params).scalar() or 0) >= limit:
            return f"{reason} ({limit} в час)"
    return None


def withdraw_waiting(session: Session, ticket_id: int, purposes: tuple[str, ...],
                     after: datetime) -> list[int]:
    """Delete the record's letters of `purposes` held back until after `after` and not yet
    claimed (a newer letter replaces them), with their copies in the record's history (never
    sent, they were never said); their IDs."""
    ids = list(session.scalars(select(OutboxItem.id).where(
        OutboxItem.ticket_id == ticket_id, OutboxItem.purpose.in_(purposes), OutboxItem.status == PENDING,
        OutboxItem.next_attempt_at > after, OutboxItem.claimed_by.is_(None))))
    if ids:
        session.execute(delete(TicketMessage).where(TicketMessage.outbox_id.in_(ids)))
        session.execute(delete(OutboxItem).where(OutboxItem.id.in_(ids)))
    return ids


def release_dead_claims(session: Session, channel: str | None = None) -> int:
    """Free rows claimed by processes of this host that no longer run (killed mid-delivery), so
    their letters go out now rather than when the lease ends. Other hosts' claims wait for it."""
    host = socket.gethostname()
    pending = [OutboxItem.status == PENDING, OutboxItem.claimed_by.like(f"{host}:%")]
    if channel is not None:
        pending.append(OutboxItem.channel == channel)
    owners = session.scalars(select(OutboxItem.claimed_by).distinct().where(*pending))
    dead = [o for o in owners if dead_here(o)]
    if not dead:
        return 0
    return session.execute(update(OutboxItem).where(*pending, OutboxItem.claimed_by.in_(dead))
                           .values(claimed_until=None, claimed_by=None)).rowcount


def claim_due(session: Session, channel: str, limit: int, lease: timedelta,
              now: datetime | None = None) -> list[OutboxItem]:
    """Take up to `limit` due rows of `channel` for `lease`; the caller commits the claim."""
    now = now or utcnow()
    due = (
        select(OutboxItem.id)
        .where(OutboxItem.channel == channel, OutboxItem.status == PENDING,
               OutboxItem.next_attempt_at <= now,
               or_(OutboxItem.claimed_until.is_(None), OutboxItem.claimed_until < now))
        .order_by(OutboxItem.next_attempt_at, OutboxItem.id)
        .limit(limit)
    )
    if session.get_bind().dialect.name == "postgresql":
        due = due.with_for_update(skip_locked=True)
    ids = list(session.scalars(due))
    if not ids:
        return []
    session.execute(
        update(OutboxItem).where(OutboxItem.id.in_(ids)).values(claimed_until=now + lease,
                                                                claimed_by=worker_id())
    )
    return list(session.scalars(select(OutboxItem).where(OutboxItem.id.in_(ids)).order_by(OutboxItem.id)))


def reopen(item: OutboxItem, now: datetime) -> None:
    """A `failed` or `bounced` row goes out again: pending, due now, its attempts counted anew
    (its last error stays until the next attempt replaces it)."""
    item.status, item.attempts, item.next_attempt_at = PENDING, 0, now
    item.claimed_until = item.claimed_by = None


def release(session: Session, ids: list[int], delay: timedelta) -> None:
    """Give claimed rows back untouched, due again after `delay` (the server was unreachable)."""
    session.execute(update(OutboxItem).where(OutboxItem.id.in_(ids)).values(
        claimed_until=None, claimed_by=None, next_attempt_at=utcnow() + delay))


def mark_sent(session: Session, item_id: int) -> None:
    session.execute(update(OutboxItem).where(OutboxItem.id == item_id).values(
        status=SENT, sent_at=utcnow(), attempts=OutboxItem.attempts + 1, claimed_until=None,
        claimed_by=None, last_error=None))


def mark_attempt_failed(session: Session, item_id: int, error: str, permanent: bool,
                        max_attempts: int, retry_base: timedelta) -> str:
    """Record a failed attempt; returns the row's new status (pending again, or failed)."""
    item = session.get(OutboxItem, item_id)
    assert item is not None
    item.attempts += 1
    item.last_error = error[:2000]
    item.claimed_until = item.claimed_by = None
    if permanent or item.attempts >= max_attempts:
        item.status = FAILED
    else:
        # Exponential back-off, capped at six hours between tries.
        delay = min(retry_base * (2 ** (item.attempts - 1)), timedelta(hours=6))
        item.next_attempt_at = utcnow() + delay
    return item.status
