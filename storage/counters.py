"""Gap-tolerant sequences for public IDs, safe under concurrent daemons."""

from __future__ import annotations

from sqlalchemy import bindparam, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session

from storage.models import Counter

# Built once: every new ticket runs it, and building and caching a statement costs more than
# running it. Counter rows are never loaded as ORM objects, so Core execution skips nothing.
_BUMP = (update(Counter).where(Counter.name == bindparam("counter_name"))
         .values(value=Counter.value + 1).returning(Counter.value))


def next_value(session: Session, name: str) -> int:
    """Increment counter `name` and return its new value.

    The UPDATE takes a row lock (PostgreSQL) or the write lock (SQLite), so two transactions can
    never get the same value; the value is only used if the caller's transaction commits. The
    row is created the first time a name is used (a new prefix or year); a concurrent creator
    waits on the unique key and then finds the row.
    """
    conn = session.connection()
    value = conn.execute(_BUMP, {"counter_name": name}).scalar()
    if value is None:
        insert = pg_insert if conn.dialect.name == "postgresql" else sqlite_insert
        conn.execute(insert(Counter).values(name=name, value=0).on_conflict_do_nothing())
        value = conn.execute(_BUMP, {"counter_name": name}).scalar_one()
    return value


def claim_once(session: Session, name: str) -> bool:
    """True for the one transaction that first names `name` (a daily job done once across
    daemons and restarts); False when it was claimed already. Kept only if the caller commits."""
    conn = session.connection()
    insert = pg_insert if conn.dialect.name == "postgresql" else sqlite_insert
    return bool(conn.execute(insert(Counter).values(name=name, value=1).on_conflict_do_nothing()).rowcount)
