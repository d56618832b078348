"""Engines, sessions and schema migrations.

The caller owns the transaction: repository functions take a session and never commit.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine, create_engine, event, inspect, or_, text
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session, sessionmaker

MIGRATIONS = Path(__file__).with_name("migrations")
MIGRATION_LOCK = 0x1B0D_E5C  # the advisory lock key that serialises migrations on PostgreSQL


def make_engine(url: str) -> Engine:
    """An engine for `url`; SQLite files get WAL and foreign keys, parent folders are created."""
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        if parsed.database and parsed.database != ":memory:":
            Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
        # A busy daemon and a CLI call may share the file: wait for the lock instead of failing.
        engine = create_engine(url, connect_args={"timeout": 30})

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_conn, _record):
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            # NORMAL in WAL mode is durable across process crashes (only an OS crash may lose the
            # last commits), which is the failure model the daemon guards against.
            cur.execute("PRAGMA synchronous=NORMAL")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.close()
            # Let SQLAlchemy, not the driver, start transactions (SAVEPOINT works only then).
            dbapi_conn.isolation_level = None

        @event.listens_for(engine, "begin")
        def _sqlite_begin(conn):
            # IMMEDIATE takes the write lock up front: a second process waits (busy timeout)
            # instead of failing on a read-to-write upgrade.
            conn.exec_driver_sql("BEGIN IMMEDIATE")

        return engine
    if parsed.get_backend_name() == "postgresql" and parsed.get_driver_name() in ("", "psycopg2"):
        url = parsed.set(drivername="postgresql+psycopg").render_as_string(hide_password=False)
    return create_engine(url, pool_pre_ping=True)


def escape_like(text: str) -> str:
    """`text` as a literal inside a LIKE pattern written with `escape="\\"`."""
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def contains_text(column: Any, text: str) -> Any:
    """`column` contains `text`, in any case. SQLite folds case for ASCII only (and PostgreSQL
    by its locale), so the usual spellings of a Cyrillic word are matched explicitly: as typed,
    lower, upper, capitalised."""
    patterns = {f"%{escape_like(v)}%" for v in (text, text.lower(), text.upper(), text.capitalize())}
    return or_(*(column.ilike(p, escape="\\") for p in patterns))


class SchemaMismatch(Exception):
    """The database's schema is not the one this code was written for; the message says what to do."""


def _config() -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    return cfg


def head_revision() -> str:
    """The newest migration this code carries."""
    return ScriptDirectory.from_config(_config()).get_current_head() or ""


def migrate(engine: Engine, existing: bool = True) -> None:
    """Bring the schema to the newest Alembic revision.

    With `existing = False` only an empty database is set up (a first start): a database with an
    older schema raises SchemaMismatch and waits for `inboxdesk db upgrade`, after a backup; a
    newer one (a newer inboxdesk wrote it) always does (issue 13).
    """
    cfg = _config()
    head = head_revision()
    with engine.begin() as conn:
        # Several instances may start at once (issue 9): one migrates, the others wait and then
        # find the schema current. SQLite's BEGIN IMMEDIATE already serialises them.
        if conn.dialect.name == "postgresql":
            conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": MIGRATION_LOCK})
        current = MigrationContext.configure(conn).get_current_revision()
        known = {s.revision for s in ScriptDirectory.from_config(cfg).walk_revisions()}
        if current is not None and current not in known:
            raise SchemaMismatch(f"the database's schema ({current}) is newer than this inboxdesk ({head}): "
                                 "run the inboxdesk that wrote it, or upgrade this one")
        if current == head:
            return
        if not existing and (current is not None or inspect(conn).get_table_names()):
            raise SchemaMismatch(f"the database's schema is {current or 'unknown'}, this inboxdesk needs "
                                 f"{head}: back it up, then run `inboxdesk db upgrade`")
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, "head")


class Database:
    """One engine and its session factory; `transaction()` is the unit of work."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.engine = make_engine(url)
        self.sessions = sessionmaker(self.engine, expire_on_commit=False)

    @property
    def is_postgres(self) -> bool:
        return self.engine.dialect.name == "postgresql"

    def migrate(self) -> None:
        """Upgrade the schema to this code's (`inboxdesk db upgrade`)."""
        migrate(self.engine)

    def prepare(self) -> None:
        """Set up an empty database; refuse one whose schema differs from this code's."""
        migrate(self.engine, existing=False)

    @contextmanager
    def transaction(self) -> Iterator[Session]:
        """A session whose work is committed on success and rolled back on any error."""
        with self.sessions() as session, session.begin():
            yield session

    def dispose(self) -> None:
        self.engine.dispose()
