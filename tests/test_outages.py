"""Outages (issue 2, point 7): IMAP down, a wrong password, SMTP down. The running daemon logs one
clear line per failure, keeps running, and catches up when the server is back.
"""

from __future__ import annotations

import asyncio
import logging
import time

import pytest

from inboxdesk.app import App
from inboxdesk.daemon import Daemon
from inboxdesk.settings import load_settings
from tests.story import cli_json, imap_box, letter, smtp_out, write_settings

ENV = "INBOXDESK_TEST_IMAP_PASSWORD"


async def until(condition, timeout: float = 30.0, step: float = 0.1) -> None:
    """Wait for `condition()` (run in a thread, it may touch the database)."""
    deadline = time.monotonic() + timeout
    while not await asyncio.to_thread(condition):
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached in time")
        await asyncio.sleep(step)


def failure_lines(caplog, needle: str) -> list[str]:
    return [r.getMessage() for r in caplog.records
            if r.levelno >= logging.WARNING and needle in r.getMessage()]


def start(config):
    daemon = Daemon(App(load_settings(config)))
    return daemon, asyncio.ensure_future(daemon.run_forever())


async def stop(daemon, task) -> None:
    daemon.stop()
    await asyncio.wait_for(task, 30)
    daemon.app.close()


@pytest.fixture
def env_password(monkeypatch, imap_account):
    monkeypatch.setenv(ENV, imap_account.password)


def test_imap_down_then_back(tmp_path, dovecot_factory, smtp_server, caplog, monkeypatch):
    """The IMAP server is down at start: one error line while it lasts (not one per poll), the
    daemon runs on, and the request waiting in the mailbox becomes a ticket once the server
    answers again (issue 9: one line per failure kind, one "working again")."""
    server = dovecot_factory()
    account = server.new_user()
    monkeypatch.setenv(ENV, account.password)
    server.append(account.address, letter(subject="Пока сервер лежал"))
    config = write_settings(tmp_path, f"sqlite:///{tmp_path / 'db.sqlite3'}",
                            [imap_box(server, account, ENV, poll_seconds=0.3)], smtp_out(smtp_server))
    server.stop()
    caplog.set_level(logging.INFO)

    async def story():
        daemon, task = start(config)
        await until(lambda: len(failure_lines(caplog, "help: IMAP")) >= 1)
        await asyncio.sleep(1.5)  # five more polls fail the same way
        assert not task.done()  # still running
        [line] = failure_lines(caplog, "help: IMAP")
        assert str(server.port) in line and "\n" not in line
        await asyncio.to_thread(server.start)
        await until(lambda: len(smtp_server.messages) == 1)
        await stop(daemon, task)

    asyncio.run(story())
    assert len(cli_json(config, "tickets", "list")) == 1
    assert any("working again" in r.getMessage() for r in caplog.records)


def test_wrong_password_is_reported_without_the_password_then_recovers(tmp_path, dovecot, imap_account,
                                                                        smtp_server, caplog, monkeypatch):
    """A wrong IMAP password: a clear 'login failed' line that never shows the secret; when the
    account's password is put right on the server, the daemon catches up by itself."""
    monkeypatch.setenv(ENV, "wrong-secret-123")
    dovecot.append(imap_account.address, letter(subject="Заявка"))
    config = write_settings(tmp_path, f"sqlite:///{tmp_path / 'db.sqlite3'}",
                            [imap_box(dovecot, imap_account, ENV, poll_seconds=0.3)], smtp_out(smtp_server))
    caplog.set_level(logging.INFO)

    async def story():
        daemon, task = start(config)
        await until(lambda: len(failure_lines(caplog, "help: IMAP")) >= 1)
        await asyncio.sleep(1.0)  # more polls, the same failure: still one line
        lines = failure_lines(caplog, "help: IMAP")
        assert len(lines) == 1
        assert "login failed" in lines[0].lower() or "authentication" in lines[0].lower()
        assert all("wrong-secret-123" not in line for line in lines)
        await asyncio.to_thread(dovecot.add_user, imap_account.address, "wrong-secret-123")
        await until(lambda: len(smtp_server.messages) == 1)
        await stop(daemon, task)

    asyncio.run(story())
    assert len(cli_json(config, "tickets", "list")) == 1


def test_smtp_down_delays_the_acknowledgement_but_never_loses_it(tmp_path, dovecot, imap_account, smtp_server,
                                                                  caplog, env_password):
    """SMTP is down: the ticket is made at once, the acknowledgement waits in the outbox (its
    attempts are not used up by the outage) and leaves when the server is back."""
    smtp_server.stop()
    dovecot.append(imap_account.address, letter(subject="Заявка при лежащем SMTP"))
    config = write_settings(tmp_path, f"sqlite:///{tmp_path / 'db.sqlite3'}",
                            [imap_box(dovecot, imap_account, ENV, poll_seconds=0.3)],
                            smtp_out(smtp_server, retry_base_seconds=0.2))
    caplog.set_level(logging.INFO)

    async def story():
        daemon, task = start(config)
        await until(lambda: len(cli_json(config, "tickets", "list")) == 1)
        await until(lambda: len(failure_lines(caplog, "outbox: SMTP")) >= 2)
        [row] = await asyncio.to_thread(cli_json, config, "outbox", "list")
        assert row["status"] == "pending" and row["attempts"] == 0
        await asyncio.to_thread(smtp_server.start)
        daemon.wake_delivery()
        await until(lambda: len(smtp_server.messages) == 1)
        await stop(daemon, task)

    asyncio.run(story())
    [row] = cli_json(config, "outbox", "list")
    assert row["status"] == "sent"
    assert len(smtp_server.messages) == 1
