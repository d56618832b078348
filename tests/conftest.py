"""Fixtures for real servers; the logic lives in tests/servers."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.bot_world import bot_settings
from tests.botapi import BotApiServer
from tests.servers import unavailable
from tests.servers.dovecot import DovecotMissing, DovecotServer, ImapAccount
from tests.servers.postgres import PostgresServer, PostgresUnavailable
from tests.servers.smtp import SmtpServer


def _new_dovecot(tls: bool, extra_config: str = "") -> DovecotServer:
    try:
        return DovecotServer(tls=tls, extra_config=extra_config)
    except DovecotMissing as exc:
        unavailable(str(exc))


@pytest.fixture(scope="session")
def dovecot() -> Iterator[DovecotServer]:
    """One Dovecot for the session, with STARTTLS and an IMAPS port; use `imap_account` per test."""
    server = _new_dovecot(tls=True)
    with server:
        yield server


@pytest.fixture
def imap_account(dovecot: DovecotServer) -> ImapAccount:
    """A fresh mail user (empty INBOX) on the session Dovecot."""
    return dovecot.new_user()


@pytest.fixture
def dovecot_factory() -> Iterator[Callable[..., DovecotServer]]:
    """Private Dovecot instances for tests that stop/restart the server; closed after the test."""
    servers: list[DovecotServer] = []

    def make(tls: bool = False, extra_config: str = "") -> DovecotServer:
        server = _new_dovecot(tls, extra_config)
        servers.append(server)
        server.start()
        return server

    yield make
    for server in servers:
        server.close()


@pytest.fixture
def smtp_server() -> Iterator[SmtpServer]:
    """A capturing SMTP server (plain, no AUTH) for one test; starting one takes milliseconds."""
    with SmtpServer() as server:
        yield server


@pytest.fixture(scope="session")
def _pg_session_db() -> Iterator[tuple[PostgresServer, str]]:
    server = PostgresServer()
    try:
        server.ensure_running()
    except PostgresUnavailable as exc:
        unavailable(str(exc))
    name = server.create_database()
    yield server, name
    server.drop_database(name)


@pytest.fixture
def postgres_url(_pg_session_db: tuple[PostgresServer, str]) -> str:
    """URL of an empty PostgreSQL database (one per session, emptied before each test)."""
    server, name = _pg_session_db
    server.reset_database(name)
    return server.url(name)


@pytest.fixture(params=[pytest.param("sqlite", id="sqlite"),
                        pytest.param("postgres", id="postgres", marks=pytest.mark.postgres)])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """URL of an empty database: an SQLite file, then PostgreSQL (tests run once for each)."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'inboxdesk.sqlite3'}"
    return request.getfixturevalue("postgres_url")


@pytest.fixture
def api() -> Iterator[BotApiServer]:
    """The Bot API HTTP server the staff bot talks to (Telegram itself is unreachable)."""
    with BotApiServer() as server:
        yield server


@pytest.fixture
def desk_config(tmp_path, dovecot, imap_account, smtp_server, api, monkeypatch) -> Path:
    """Settings for a desk with the bot on: Dovecot, aiosmtpd, the Bot API server, staff."""
    return bot_settings(tmp_path, dovecot, imap_account, smtp_server, api, monkeypatch)
