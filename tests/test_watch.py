"""Issue 13, watching the daemon: `/healthz`, `/readyz` and `/metrics` answer with the right state
while mail flows and while the database or the IMAP server is away; `inboxdesk status` prints the
same summary (and `--json`)."""

from __future__ import annotations

import asyncio
import json
import urllib.error
import urllib.request

import pytest

from inboxdesk.app import App
from inboxdesk.daemon import Daemon
from inboxdesk.settings import load_settings
from tests.servers import free_port
from tests.servers.tcp_proxy import TcpProxy
from tests.story import cli, cli_json, imap_box, letter, smtp_out, write_settings

ENV = "INBOXDESK_TEST_IMAP_PASSWORD"


def _get(port: int, path: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=10) as answer:
            return answer.status, answer.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()
    except urllib.error.URLError:  # not listening (yet)
        return 0, ""


async def _until(check, timeout: float = 30.0):
    """Wait for `check()` (run in a thread: the server answering it runs in this loop)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        result = await asyncio.to_thread(check)
        if result:
            return result
        assert loop.time() < deadline, "not reached in time"
        await asyncio.sleep(0.2)


def _metric(text: str, name: str, *labels: str) -> float:
    """The sum of the samples of `name` (up to its labels) that carry every one of `labels`."""
    return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
               if line.startswith(name) and all(label in line for label in labels))


@pytest.mark.postgres
def test_endpoints_follow_mail_and_outages(tmp_path, _pg_session_db, dovecot_factory, smtp_server,
                                           monkeypatch):
    server, name = _pg_session_db
    server.reset_database(name)
    imap = dovecot_factory()
    account = imap.new_user()
    monkeypatch.setenv(ENV, account.password)
    port = free_port()
    with TcpProxy(server.host, server.port) as proxy:
        url = f"postgresql+psycopg://{server.user}@127.0.0.1:{proxy.port}/{name}"
        config = write_settings(tmp_path, url, [imap_box(imap, account, ENV, poll_seconds=0.5)],
                                smtp_out(smtp_server))
        with config.open("a", encoding="utf-8") as f:
            f.write(f'\n[http]\nlisten = "127.0.0.1:{port}"\n')

        async def story() -> None:
            daemon = Daemon(App(load_settings(config)))
            task = asyncio.ensure_future(daemon.run_forever())
            try:
                await _until(lambda: _get(port, "/readyz")[0] == 200)
                assert await asyncio.to_thread(_get, port, "/healthz") == (200, '{"status": "alive"}')
                imap.append(account.address, letter(subject="Заявка для метрик"))
                sent_ack = 'inboxdesk_outbox_letters{channel="email",purpose="ack",status="sent"}'
                tickets = ("inboxdesk_messages_total{", 'disposition="ticket"')
                metrics = await _until(lambda: (m := _get(port, "/metrics")[1])
                                       and _metric(m, *tickets) == 1 and _metric(m, sent_ack) == 1 and m)
                assert _metric(metrics, 'inboxdesk_open_records{status="Новая"}') == 1
                assert _metric(metrics, "inboxdesk_database_up") == 1
                attempts = 'inboxdesk_delivery_attempts_total{channel="email"'
                assert _metric(metrics, attempts, 'outcome="sent"') == 1

                smtp_server.stop()  # the mail server for letters goes away: counted, and the letter waits
                imap.append(account.address, letter(subject="Вторая заявка для метрик"))
                await _until(lambda: (m := _get(port, "/metrics")[1])
                             and _metric(m, attempts, 'outcome="unavailable"') >= 1
                             and _metric(m, "inboxdesk_failures_total{", 'part="smtp"',
                                         'kind="unavailable"') >= 1)
                smtp_server.start()
                await _until(lambda: _metric(_get(port, "/metrics")[1], attempts, 'outcome="sent"') == 2)

                proxy.cut()  # the database goes away: not ready, and why
                _, body = await _until(lambda: (r := _get(port, "/readyz"))[0] == 503 and r)
                assert json.loads(body)["problems"][0].startswith("database: ")
                assert (await asyncio.to_thread(_get, port, "/healthz"))[0] == 200  # alive all the same
                await _until(lambda: (m := _get(port, "/metrics")[1])  # the process's counters still show
                             and _metric(m, "inboxdesk_database_up") == 0
                             and _metric(m, "inboxdesk_failures_total{", 'kind="database"') >= 1)
                proxy.restore()
                await _until(lambda: _get(port, "/readyz")[0] == 200)

                imap.stop()  # the mail server goes away: the mailbox is not read in time
                _, body = await _until(lambda: (r := _get(port, "/readyz"))[0] == 503 and r, timeout=40)
                assert json.loads(body)["problems"] == [json.loads(body)["problems"][0]]
                assert json.loads(body)["problems"][0].startswith("mailbox help: not read since")
                imap.start()
                await _until(lambda: _get(port, "/readyz")[0] == 200, timeout=40)
            finally:
                daemon.stop()
                await asyncio.wait_for(task, 30)
                daemon.app.close()

        asyncio.run(story())
        status, out = cli(config, "status")
        view = cli_json(config, "status")
    assert status == 0 and "база данных: ok" in out and "открытые записи: Новая 2" in out
    assert view["problems"] == [] and view["outbox"]["by_status"] == {"sent": 2}


@pytest.mark.parametrize("fmt", ["text", "json"])
def test_log_lines_for_the_journal_and_for_collectors(tmp_path, fmt):
    """Issue 13: under systemd (JOURNAL_STREAM set) text lines carry no time stamp of their own;
    `[log] format = "json"` gives one JSON object per line."""
    import os
    import subprocess
    import sys

    from tests.story import maildir_settings

    config = maildir_settings(tmp_path, f"sqlite:///{tmp_path / 'db.sqlite3'}")
    with config.open("a", encoding="utf-8") as f:
        f.write(f'\n[log]\nformat = "{fmt}"\n')
    (tmp_path / "mail" / "new").mkdir(parents=True)
    (tmp_path / "mail" / "new" / "1.a.host").write_bytes(letter(subject="Заявка для журнала"))
    done = subprocess.run([sys.executable, "-m", "inboxdesk.cli", "--config", str(config), "run", "--once"],
                          env=dict(os.environ, JOURNAL_STREAM="8:12345"), capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr
    lines = done.stderr.splitlines()
    if fmt == "json":  # every line an object; the message's own line names its records
        entries = [json.loads(line) for line in lines]
        [event] = [e for e in entries if "inbound_id" in e]
        assert event["message"] == "mailbox help: inbound #1 ticket HD-2026-000001"
        assert (event["mailbox"], event["inbound_id"], event["disposition"], event["record"]) == (
            "help", 1, "ticket", "HD-2026-000001")
        assert any(e["message"].startswith("mailbox help: 1 fetched") for e in entries)
        assert any(e.get("outbox_id") == 1 and e["message"].startswith("outbox #1 sent to") for e in entries)
    else:
        assert "INFO mailflow.intake: mailbox help: inbound #1 ticket HD-2026-000001" in lines
        assert "INFO inboxdesk.daemon: mailbox help: 1 fetched, ticket 1" in lines
