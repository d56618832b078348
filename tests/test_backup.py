"""Issue 13: backups that restore. `inboxdesk backup PATH` takes a consistent copy while the desk
holds records (SQLite's online backup; pg_dump on PostgreSQL); `inboxdesk restore PATH` puts it
into an empty database row for row, and into one with data only with `--replace`. After a restore,
the mail acknowledged since the backup is taken in again from the mailbox, exactly once.
SQLite and PostgreSQL."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import MetaData, create_engine

from storage.db import make_engine
from tests.story import cli, cli_json, letter, maildir_settings

SCAN = b"%PDF-1.4 scan \x00\xff\xfe" * 300


@pytest.fixture
def empty_url(request, db_url, tmp_path) -> Iterator[str]:
    """A second empty database of the same kind as `db_url`, to restore into."""
    if db_url.startswith("sqlite"):
        yield f"sqlite:///{tmp_path / 'restored.sqlite3'}"
        return
    server, _ = request.getfixturevalue("_pg_session_db")
    name = server.create_database()
    yield server.url(name)
    server.drop_database(name)


def rows(url: str) -> dict[str, list[tuple]]:
    """Every row of every table, sorted, bytes included: what must survive a backup."""
    engine = make_engine(url) if url.startswith("sqlite") else create_engine(url)
    meta = MetaData()
    meta.reflect(engine)
    with engine.connect() as conn:
        found = {t.name: sorted(tuple(repr(v) for v in row) for row in conn.execute(t.select()))
                 for t in meta.sorted_tables}
    engine.dispose()
    return found


def deliver(folder: Path, name: str, raw: bytes) -> None:
    (folder / "mail" / "new").mkdir(parents=True, exist_ok=True)
    (folder / "mail" / "new" / name).write_bytes(raw)


def test_a_backup_restores_row_for_row_and_mail_since_then_comes_in_again_once(tmp_path, db_url, empty_url):
    config = maildir_settings(tmp_path, db_url)
    deliver(tmp_path, "1.a.host", letter(subject="Не печатается рецепт",
                                         files=[("ошибка.pdf", "application/pdf", SCAN)]))
    deliver(tmp_path, "2.a.host", letter(sender="b.orlova@sev.gov.ru", subject="Нет доступа к МИС"))
    deliver(tmp_path, "3.a.host", letter(sender="promo@shop.example", subject="Скидки"))
    assert cli(config, "run", "--once")[0] == 0
    before = rows(db_url)
    assert len(before["tickets"]) == 2 and len(before["attachments"]) == 1 and before["outbox_items"]

    backup = tmp_path / "inboxdesk.backup"
    status, out = cli(config, "backup", str(backup))
    assert status == 0 and out.startswith(f"резервная копия записана: {backup} (")
    assert cli(config, "backup", str(backup))[0] == 1  # never over an existing backup
    assert not list(tmp_path.glob("*.partial"))

    deliver(tmp_path, "4.a.host", letter(sender="c.popov@sev.gov.ru", subject="Медленно работает"))
    assert cli(config, "run", "--once")[0] == 0
    assert len(cli_json(config, "tickets", "list")) == 3

    # Into an empty database: row for row what the desk held when the backup was taken.
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    restored = maildir_settings(elsewhere, empty_url)
    assert cli(restored, "restore", str(backup)) == (0, f"база данных восстановлена из {backup}\n")
    assert rows(empty_url) == before

    # Over the live database only when asked; then the letter acknowledged since the backup is
    # put back into the mailbox and becomes its ticket again, and nothing else is made twice.
    status, _ = cli(config, "restore", str(backup))
    assert status == 1
    assert len(cli_json(config, "tickets", "list")) == 3  # refused: nothing changed
    assert cli(config, "restore", "--replace", str(backup))[0] == 0
    assert rows(db_url) == before
    for done in (tmp_path / "mail" / "cur").iterdir():
        shutil.move(done, tmp_path / "mail" / "new" / done.name.split(":")[0])
    assert cli(config, "run", "--once")[0] == 0
    tickets = cli_json(config, "tickets", "list")
    assert sorted(t["subject"] for t in tickets) == sorted(
        ["Не печатается рецепт", "Нет доступа к МИС", "Медленно работает"])
    dispositions = sorted(r["disposition"] for r in cli_json(config, "inbound", "list", "--json"))
    assert dispositions == ["duplicate", "duplicate", "duplicate", "filtered", "ticket", "ticket", "ticket"]


def test_a_backup_names_what_it_cannot_do(tmp_path, db_url):
    config = maildir_settings(tmp_path, db_url)
    assert cli(config, "restore", str(tmp_path / "missing.backup"))[0] == 1
