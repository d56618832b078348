"""Gap-tolerant sequences for public IDs, safe under concurrent daemons."""

from __future__ import annotations

from sqlalchemy import update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session

from storage.models import Counter


def next_value(session: Session, name: str) -> int:
    """Increment counter `name` and return its new value.

    The UPDATE takes a row lock (PostgreSQL) or the write lock (SQLite), so two transactions can
    never get the same value; the value is only used if the caller's transaction commits.
    """
    insert = pg_insert if session.get_bind().dialect.name == "postgresql" else sqlite_insert
    session.execute(insert(Counter).values(name=name, value=0).on_conflict_do_nothing())
    return session.execute(
        update(Counter).where(Counter.name == name).values(value=Counter.value + 1).returning(Counter.value)
    ).scalar_one()
