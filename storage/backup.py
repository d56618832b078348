"""`inboxdesk backup PATH` and `inboxdesk restore PATH` (issue 13).

SQLite is copied page by page with SQLite's own online backup (consistent while the daemon
writes); PostgreSQL with `pg_dump --format=custom` (one snapshot) and back with `pg_restore`. A
backup is written under a temporary name and renamed when complete, so a file named like the
backup is always a whole one. The password goes to the tools in PGPASSWORD, never on a command
line other users could read.
"""

from __future__ import annotations

import os
import shutil
import sqlite3
import subprocess
from contextlib import closing
from pathlib import Path

from sqlalchemy import URL, func, inspect, make_url, select, table

from storage.db import make_engine


class BackupError(Exception):
    """A backup or restore that could not be done; the message says why, in one line."""


def backup(url: str, path: Path) -> None:
    if path.exists():
        raise BackupError(f"{path} exists already: choose a new name (a backup never overwrites one)")
    u = make_url(url)
    partial = path.with_name(path.name + ".partial")
    partial.unlink(missing_ok=True)
    try:
        if u.get_backend_name() == "sqlite":
            with closing(_sqlite(u, readonly=True)) as source, closing(sqlite3.connect(partial)) as target:
                source.backup(target)
        else:
            _pg_tool(u, "pg_dump", "--format=custom", "--no-owner", "--file", str(partial))
        partial.rename(path)
    finally:
        partial.unlink(missing_ok=True)


def restore(url: str, path: Path, replace: bool = False) -> None:
    """The database at `url` becomes the backup at `path`; one with records in it is replaced only
    when asked (`replace`). Stop every instance first: they would write into the restored data."""
    if not path.is_file():
        raise BackupError(f"{path}: no such backup file")
    if not replace and _holds_data(url):
        raise BackupError("the database holds data: stop every instance, then restore with --replace")
    u = make_url(url)
    if u.get_backend_name() == "sqlite":
        backup_file = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
        with closing(backup_file) as source, closing(_sqlite(u)) as target:
            source.backup(target)
    else:
        _pg_tool(u, "pg_restore", "--clean", "--if-exists", "--no-owner", "--single-transaction",
                 "--exit-on-error", str(path))


def _holds_data(url: str) -> bool:
    """Has anything been received or recorded here? (An empty schema may be replaced freely.)"""
    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            tables = set(inspect(conn).get_table_names())
            return any(conn.scalar(select(func.count()).select_from(table(name))) for name in
                       ("inbound_messages", "tickets") if name in tables)
    finally:
        engine.dispose()


def _sqlite(u: URL, readonly: bool = False) -> sqlite3.Connection:
    if not u.database or u.database == ":memory:":
        raise BackupError("an in-memory SQLite database has nothing to back up")
    if readonly:
        return sqlite3.connect(f"file:{u.database}?mode=ro", uri=True)
    return sqlite3.connect(u.database)


def _pg_tool(u: URL, tool: str, *args: str) -> None:
    program = shutil.which(tool)
    if program is None:
        raise BackupError(f"{tool} not found: install postgresql-client (the server's major version)")
    env = {**os.environ, **({"PGPASSWORD": u.password} if u.password else {})}
    conninfo = u.set(drivername="postgresql", password=None).render_as_string(hide_password=False)
    done = subprocess.run([program, *args, "--dbname", conninfo], env=env, capture_output=True, text=True,
                          check=False)
    if done.returncode != 0:
        last = (done.stderr.strip().splitlines() or [f"exit status {done.returncode}"])[-1]
        raise BackupError(f"{tool}: {last}")
