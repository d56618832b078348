"""Mailbox leases (issue 9): each mailbox is read by one instance at a time.

A lease is a row per mailbox with a holder (`host:pid`) and an expiry. Taking it is one
conditional UPDATE — free, expired, already ours, or held by a dead process of this host — so
two instances can never both hold it: SQLite serialises the writes (BEGIN IMMEDIATE), PostgreSQL
locks the row. The holder renews it between batches; if it dies, another instance takes over when
the lease runs out (at once on the same host).
"""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import or_, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session

from storage.models import MailboxLease, utcnow
from storage.owners import dead_here, worker_id


def acquire(session: Session, mailbox: str, ttl: timedelta, now: datetime | None = None) -> bool:
    """Take or renew the lease of `mailbox` for `ttl`; False when another live instance holds it."""
    now = now or utcnow()
    me = worker_id()
    conn = session.connection()
    insert = pg_insert if conn.dialect.name == "postgresql" else sqlite_insert
    conn.execute(insert(MailboxLease).values(mailbox=mailbox, holder=None, expires_at=None)
                 .on_conflict_do_nothing())
    current = session.execute(select(MailboxLease.holder).where(MailboxLease.mailbox == mailbox)).scalar()
    takeable = [MailboxLease.holder.is_(None), MailboxLease.holder == me, MailboxLease.expires_at < now]
    if current and dead_here(current):
        takeable.append(MailboxLease.holder == current)
    taken = conn.execute(update(MailboxLease).where(MailboxLease.mailbox == mailbox, or_(*takeable))
                         .values(holder=me, expires_at=now + ttl)).rowcount
    return taken == 1


def release(session: Session, mailbox: str, read_to_the_end: bool = False) -> None:
    """Give the lease back (only if it is still ours), noting when the mailbox was last read."""
    values: dict[str, object] = {"holder": None, "expires_at": None}
    if read_to_the_end:
        values["last_read_at"] = utcnow()
    session.execute(update(MailboxLease).where(MailboxLease.mailbox == mailbox,
                                               MailboxLease.holder == worker_id()).values(**values))


def last_reads(session: Session) -> dict[str, datetime | None]:
    """When each mailbox was last read to the end, by any instance."""
    return dict(session.execute(select(MailboxLease.mailbox, MailboxLease.last_read_at)).all())
