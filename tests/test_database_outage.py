"""Issue 9, database faults: PostgreSQL goes away (sessions cut, connections refused) for a while
in poll and in IDLE mode while mail arrives. The daemon says so once per kind of failure, keeps
every mailbox watcher alive, says when it works again, and then turns every request into exactly
one ticket with one acknowledgement.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections import Counter

import pytest

from tests.servers.tcp_proxy import TcpProxy
from tests.story import cli_json, imap_box, letter, smtp_out, write_settings

ENV = "INBOXDESK_TEST_IMAP_PASSWORD"
OUTAGE_SECONDS = 8.0


@pytest.mark.postgres
@pytest.mark.parametrize("idle", [False, True], ids=["poll", "idle"])
def test_postgres_away_for_a_while_loses_nothing(tmp_path, _pg_session_db, dovecot, imap_account, smtp_server,
                                                 idle):
    server, name = _pg_session_db
    server.reset_database(name)
    with TcpProxy(server.host, server.port) as proxy:
        url = f"postgresql+psycopg://{server.user}@127.0.0.1:{proxy.port}/{name}"
        box = imap_box(dovecot, imap_account, ENV, idle=idle, poll_seconds=1)
        config = write_settings(tmp_path, url, [box],
                                smtp_out(smtp_server))
        env = dict(os.environ, **{ENV: imap_account.password}, INBOXDESK_CONFIG="")
        log = (tmp_path / "daemon.log").open("wb")
        daemon = subprocess.Popen([sys.executable, "-m", "inboxdesk.cli", "--config", str(config), "run"],
                                  env=env, stdout=log, stderr=subprocess.STDOUT)
        try:
            senders = [f"user{n}@sev.gov.ru" for n in range(9)]
            for sender in senders[:3]:
                dovecot.append(imap_account.address, letter(sender=sender, subject=f"До сбоя {sender}"))
            _until(lambda: len(cli_json(config, "tickets", "list")) == 3)

            proxy.cut()  # the database goes away
            for sender in senders[3:6]:
                dovecot.append(imap_account.address, letter(sender=sender, subject=f"Во время сбоя {sender}"))
                time.sleep(OUTAGE_SECONDS / 3)
            proxy.restore()
            recovered_at = time.monotonic()
            for sender in senders[6:]:
                dovecot.append(imap_account.address, letter(sender=sender, subject=f"После сбоя {sender}"))

            _until(lambda: len(cli_json(config, "tickets", "list")) == 9
                   and {o["status"] for o in cli_json(config, "outbox", "list")} == {"sent"},
                   lambda: (cli_json(config, "tickets", "list"), cli_json(config, "outbox", "list")))
            recovery = time.monotonic() - recovered_at
            print(f"PostgreSQL {'IDLE' if idle else 'poll'}: caught up {recovery:.1f} s after it returned")
        finally:
            daemon.send_signal(signal.SIGTERM)
            daemon.wait(timeout=30)
            log.close()
        tickets = cli_json(config, "tickets", "list")  # through the proxy, restored

    text = (tmp_path / "daemon.log").read_text(errors="replace")
    assert sorted(t["requester_email"] for t in tickets) == senders
    acks = Counter(m.rcpt_tos[0] for m in smtp_server.messages)
    assert acks == Counter(senders)  # one acknowledgement each
    assert "Traceback" not in text and "Task exception was never retrieved" not in text, text[-3000:]
    errors = [line for line in text.splitlines() if " ERROR " in line]
    assert errors and all("database: " in line for line in errors), errors
    assert len(errors) <= 6, errors  # one per kind of failure and part, not one per second
    assert "help: working again" in text
    assert recovery < 30, f"took {recovery:.1f} s to catch up after the database came back"


def _until(condition, state=lambda: None, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            if condition():
                return
        except AssertionError:
            pass
        assert time.monotonic() < deadline, f"not reached in time: {state()}"
        time.sleep(0.3)


@pytest.fixture
def small_disk(tmp_path):
    """A 64 MiB tmpfs of this test's own (skipped where mounting is not allowed)."""
    where = tmp_path / "disk"
    where.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64m", "tmpfs", str(where)],
                             capture_output=True, text=True)
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.strip()}")
    try:
        yield where
    finally:
        subprocess.run(["umount", "-l", str(where)], capture_output=True)


@pytest.mark.parametrize("idle", [False, True], ids=["poll", "idle"])
def test_sqlite_on_a_full_disk_loses_nothing(tmp_path, small_disk, dovecot, imap_account, smtp_server, idle):
    """SQLite's disk fills up while mail arrives (a read-only remount cannot be had while the
    daemon writes: the kernel refuses it as busy): the daemon says so, keeps the watcher alive,
    and makes every request one ticket once the disk has room again."""
    url = f"sqlite:///{small_disk / 'inboxdesk.sqlite3'}"
    box = imap_box(dovecot, imap_account, ENV, idle=idle, poll_seconds=1)
    config = write_settings(tmp_path, url, [box], smtp_out(smtp_server))
    env = dict(os.environ, **{ENV: imap_account.password}, INBOXDESK_CONFIG="")
    log = (tmp_path / "daemon.log").open("wb")
    daemon = subprocess.Popen([sys.executable, "-m", "inboxdesk.cli", "--config", str(config), "run"],
                              env=env, stdout=log, stderr=subprocess.STDOUT)
    senders = [f"user{n}@sev.gov.ru" for n in range(6)]
    filler = small_disk / "filler"
    try:
        for sender in senders[:2]:
            dovecot.append(imap_account.address, letter(sender=sender, subject=f"До сбоя {sender}"))
        _until(lambda: len(cli_json(config, "tickets", "list")) == 2)
        subprocess.run(["dd", "if=/dev/zero", f"of={filler}", "bs=1M", "count=100"], capture_output=True)
        for sender in senders[2:4]:
            scan = [("scan.pdf", "application/pdf", b"%PDF" * 50_000)]
            dovecot.append(imap_account.address, letter(sender=sender, subject=f"Во время сбоя {sender}",
                                                        files=scan))
        time.sleep(4)
        filler.unlink()
        for sender in senders[4:]:
            dovecot.append(imap_account.address, letter(sender=sender, subject=f"После сбоя {sender}"))
        freed_at = time.monotonic()
        _until(lambda: len(cli_json(config, "tickets", "list")) == 6
               and {o["status"] for o in cli_json(config, "outbox", "list")} == {"sent"},
               lambda: cli_json(config, "inbound", "list"))
        print(f"SQLite {'IDLE' if idle else 'poll'}: caught up {time.monotonic() - freed_at:.1f} s after "
              "the disk had room again")
    finally:
        daemon.send_signal(signal.SIGTERM)
        daemon.wait(timeout=30)
        log.close()

    text = (tmp_path / "daemon.log").read_text(errors="replace")
    assert sorted(t["requester_email"] for t in cli_json(config, "tickets", "list")) == senders
    assert Counter(m.rcpt_tos[0] for m in smtp_server.messages) == Counter(senders)
    assert "Traceback" not in text and "Task exception was never retrieved" not in text, text[-3000:]
    errors = [line for line in text.splitlines() if " ERROR " in line]
    assert errors and all("database: " in line for line in errors), errors
    assert "help: working again" in text
