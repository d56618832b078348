"""Issue 9, several instances on one database (DESIGN §4): two daemons and a cron `run --once`
read one IMAP mailbox into one database while requests, replies and re-deliveries arrive.

Every request must become exactly one ticket with one acknowledgement, every reply must land in
its own ticket, every re-delivery must be a `duplicate`, and no instance may log an error; with
one daemon SIGKILLed again and again meanwhile, still no ticket twice and no letter lost (only a
letter in flight at a kill may go out twice).
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from email.utils import make_msgid
from pathlib import Path

import pytest

from tests.story import cli_json, imap_box, letter, smtp_out, write_settings

ENV = "INBOXDESK_TEST_IMAP_PASSWORD"
REQUESTS, REPLIES, REDELIVERED = 60, 15, 8


def _daemon(config: Path, env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    out = log.open("ab")
    return subprocess.Popen([sys.executable, "-m", "inboxdesk.cli", "--config", str(config), "run"],
                            env=env, stdout=out, stderr=subprocess.STDOUT)


def _mail() -> tuple[list[bytes], list[tuple[str, bytes]]]:
    """The requests, then (the sender whose request it answers, raw) for each reply."""
    requests, ids = [], []
    for n in range(REQUESTS):
        mid = make_msgid(domain="sev.gov.ru")
        ids.append(mid)
        requests.append(letter(sender=f"user{n}@sev.gov.ru", subject=f"Заявка номер {n}", message_id=mid))
    replies = [(f"user{n}@sev.gov.ru",
                letter(sender=f"user{n}@sev.gov.ru", subject=f"Re: Заявка номер {n}", in_reply_to=ids[n],
                       references=ids[n], body=f"Дополнение к заявке {n}: кабинет {200 + n}.\n"))
               for n in range(0, REQUESTS, REQUESTS // REPLIES)]
    return requests, replies


def _arrive(dovecot, address: str, requests: list[bytes], replies: list[tuple[str, bytes]]) -> None:
    """Requests in small bursts, each reply after its request, and some requests delivered again."""
    for start in range(0, REQUESTS, 10):
        dovecot.append_many(address, requests[start:start + 10])
        time.sleep(0.3)
    dovecot.append_many(address, [raw for _, raw in replies])
    dovecot.append_many(address, requests[:REDELIVERED])


def _settled(config: Path) -> bool:
    inbound = cli_json(config, "inbound", "list")
    letters = cli_json(config, "outbox", "list")
    return (len(inbound) == REQUESTS + len(_mail()[1]) + REDELIVERED
            and all(r["state"] == "acked" for r in inbound)
            and all(o["status"] == "sent" for o in letters))


@pytest.fixture
def world(tmp_path, db_url, dovecot, imap_account, smtp_server):
    env = dict(os.environ, **{ENV: imap_account.password}, INBOXDESK_CONFIG="")
    config = write_settings(tmp_path, db_url, [imap_box(dovecot, imap_account, ENV)], smtp_out(smtp_server))
    with config.open("a", encoding="utf-8") as f:
        f.write("\n[intake]\nworkers = 0\n")
    return config, env


@pytest.mark.parametrize("kills", [0, 4], ids=["steady", "sigkills"])
def test_two_daemons_and_cron_make_each_ticket_once(world, tmp_path, dovecot, imap_account, smtp_server,
                                                    kills):
    config, env = world
    requests, replies = _mail()
    logs = [tmp_path / "a.log", tmp_path / "b.log"]
    daemons = [_daemon(config, env, log) for log in logs]
    cron_runs: list[subprocess.CompletedProcess[str]] = []
    stop = threading.Event()

    def cron() -> None:  # `run --once` from cron, beside the daemons, again and again
        while not stop.is_set():
            cron_runs.append(subprocess.run(
                [sys.executable, "-m", "inboxdesk.cli", "--config", str(config), "run", "--once"],
                env=env, capture_output=True, text=True, timeout=120))

    cron_thread = threading.Thread(target=cron)
    cron_thread.start()
    arrival = threading.Thread(target=_arrive, args=(dovecot, imap_account.address, requests, replies))
    arrival.start()
    killer = random.Random(9)
    try:
        for _ in range(kills):  # daemon A dies mid-work and is started again
            time.sleep(killer.uniform(0.5, 1.5))
            daemons[0].send_signal(signal.SIGKILL)
            daemons[0].wait()
            daemons[0] = _daemon(config, env, logs[0])
        arrival.join()
        deadline = time.monotonic() + 120
        while not _settled(config):
            assert time.monotonic() < deadline, "mail not settled in time"
            time.sleep(0.5)
    finally:
        stop.set()
        cron_thread.join()
        for d in daemons:
            d.send_signal(signal.SIGTERM)
        for d in daemons:
            d.wait(timeout=30)

    tickets = cli_json(config, "tickets", "list")
    senders = sorted(f"user{n}@sev.gov.ru" for n in range(REQUESTS))
    assert sorted(t["requester_email"] for t in tickets) == senders
    inbound = cli_json(config, "inbound", "list")
    assert Counter(r["disposition"] for r in inbound) == {
        "ticket": REQUESTS, "followup": len(replies), "duplicate": REDELIVERED}
    by_sender = {t["requester_email"]: t["id"] for t in tickets}
    for sender, _ in replies:  # each reply in its own request's ticket
        [reply] = [r for r in inbound if r["disposition"] == "followup" and r["from"] == sender]
        assert reply["ticket_id"] == by_sender[sender]

    acks = Counter(m.rcpt_tos[0] for m in smtp_server.messages if "зарегистрирована" in m.message["Subject"])
    assert set(acks) == set(by_sender)  # none lost
    repeated = sum(n - 1 for n in acks.values())
    assert repeated <= kills  # only a letter in flight at a kill may go twice
    if not kills:
        assert repeated == 0
    for log in logs:
        text = log.read_text(errors="replace")
        assert "Traceback" not in text and " ERROR " not in text, text[-3000:]
    assert all(r.returncode == 0 and "Traceback" not in r.stderr for r in cron_runs), cron_runs[-1].stderr
    assert len(cron_runs) >= 2


def test_cards_claimed_by_a_killed_process_go_out_at_start_up(desk_config, dovecot, api):
    """Issue 9: Telegram rows claimed by a process of this host that no longer runs are freed
    when the bot's delivery starts, like email rows, instead of waiting for their lease."""
    import asyncio
    import socket
    from datetime import timedelta

    from sqlalchemy import update

    from inboxdesk.app import App
    from inboxdesk.settings import load_settings
    from storage.models import OutboxItem, utcnow
    from tests.bot_world import cards, daemon_running, until

    config = desk_config()
    app = App(load_settings(config))
    try:
        app.intake.ingest(app.settings.mailbox("help"), [letter(subject="Карточка после сбоя")])
        dead = subprocess.Popen([sys.executable, "-c", "pass"])
        dead.wait()  # a pid that ran on this host and is gone
        with app.db.transaction() as s:
            claimed = s.execute(update(OutboxItem).where(OutboxItem.channel == "telegram").values(
                claimed_by=f"{socket.gethostname()}:{dead.pid}",
                claimed_until=utcnow() + timedelta(minutes=5))).rowcount
        assert claimed == 1
    finally:
        app.close()

    async def story() -> None:
        async with daemon_running(config):
            await until(lambda: cards(api), timeout=15)

    asyncio.run(story())
