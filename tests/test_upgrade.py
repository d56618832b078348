"""Issue 13: upgrades. A database made by the first migration, with data in it, is refused by
the daemon with one clear line until `inboxdesk db upgrade`; then everything is there and mail
flows. A schema newer than the code is refused too. SQLite and PostgreSQL."""

from __future__ import annotations

from alembic import command
from sqlalchemy import text

from storage.db import Database, _config, head_revision
from tests.story import cli, cli_json, letter, maildir_settings


def test_an_old_database_waits_for_db_upgrade_and_keeps_its_data(tmp_path, db_url, capsys):
    db = Database(db_url)
    cfg = _config()
    with db.engine.begin() as conn:  # the schema as the first release left it, with a ticket
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, "0001")
    config = maildir_settings(tmp_path, db_url)
    db.dispose()
    old = Database(db_url)
    with old.engine.begin() as conn:
        conn.execute(text(
            "INSERT INTO tickets (public_id, kind, mailbox, status, subject, requester_email, "
            "requester_name, organisation, line, fields, created_at, updated_at, channel, missing_fields, "
            "extension_days) "
            "VALUES ('HD-2026-000001', 'ticket', 'help', 'Новая', 'Старая заявка', 'old@sev.gov.ru', "
            "'Старый', '', 1, '{}', CURRENT_TIMESTAMP, CURRENT_TIMESTAMP, 'email', '[]', 0)"))
        conn.execute(text("INSERT INTO counters (name, value) VALUES ('HD-2026', 1)"))
    old.dispose()

    status, _ = cli(config, "run", "--once")
    refusal = capsys.readouterr().err.strip()
    assert status == 2
    assert refusal == (f"inboxdesk: the database's schema is 0001, this inboxdesk needs {head_revision()}: "
                       "back it up, then run `inboxdesk db upgrade`")

    assert cli(config, "db", "upgrade") == (0, f"схема базы данных: {head_revision()}\n")
    [ticket] = cli_json(config, "tickets", "list")
    assert (ticket["id"], ticket["subject"]) == ("HD-2026-000001", "Старая заявка")
    assert ticket["sender_check"] is None  # the new column, filled for old rows
    (tmp_path / "mail" / "new").mkdir(parents=True)
    (tmp_path / "mail" / "new" / "1.a.host").write_bytes(letter(subject="Новая после обновления"))
    assert cli(config, "run", "--once")[0] == 0
    assert [t["id"] for t in cli_json(config, "tickets", "list")] == ["HD-2026-000001", "HD-2026-000002"]


def test_a_newer_schema_is_refused(tmp_path, db_url, capsys):
    config = maildir_settings(tmp_path, db_url)
    assert cli(config, "tickets", "list")[0] == 0  # a first start sets the schema up
    db = Database(db_url)
    with db.engine.begin() as conn:
        conn.execute(text("UPDATE alembic_version SET version_num = '9999'"))
    db.dispose()
    capsys.readouterr()
    assert cli(config, "run", "--once")[0] == 2
    assert "the database's schema (9999) is newer than this inboxdesk" in capsys.readouterr().err


def test_the_migrations_make_exactly_the_schema_the_models_describe(db_url):
    """Every column and index of storage.models is made by a migration, on both databases: a
    model changed without its migration would work in tests (the schema is migrated) but differ
    on an upgraded server."""
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext

    from storage.models import Base

    db = Database(db_url)
    db.migrate()
    with db.engine.connect() as conn:
        differences = compare_metadata(MigrationContext.configure(conn), Base.metadata)
    db.dispose()
    assert differences == []
