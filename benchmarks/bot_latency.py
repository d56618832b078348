"""Latency of the staff chat (DESIGN 6): from a message appearing in the IMAP mailbox to its card
arriving at the Bot API server, with IMAP IDLE on and off; and from a staff member's Telegram
reply to the email reaching the SMTP server.

Real parts only: a private Dovecot, the daemon with its bot in one event loop, the Bot API server
of `tests/botapi.py`, aiosmtpd. Messages are appended one at a time at random moments, so polling
is measured fairly (a poll may be anywhere in its interval).

    .venv/bin/python benchmarks/bot_latency.py [--count 30] [--poll-seconds 2]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from inboxdesk.app import App
from inboxdesk.daemon import Daemon
from inboxdesk.settings import load_settings
from tests.botapi import BotApiServer
from tests.servers.dovecot import DovecotServer
from tests.servers.smtp import SmtpServer
from tests.story import imap_box, letter, smtp_out, write_settings

T = TypeVar("T")
STAFF_CHAT = -100777
STAFF_USER = {"id": 501, "is_bot": False, "first_name": "Иван", "username": "ivanov"}


def quantile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def summary(name: str, values: list[float]) -> str:
    ms = [v * 1000 for v in values]
    return (f"{name:<38} n={len(ms):<3} p50 {quantile(ms, 0.5):7.0f} ms   p95 {quantile(ms, 0.95):7.0f} ms"
            f"   min {min(ms):6.0f}   max {max(ms):6.0f}   mean {statistics.mean(ms):6.0f}")


async def wait_for(condition: Callable[[], T], timeout: float = 30.0, step: float = 0.002) -> T:
    deadline = time.monotonic() + timeout
    while not (result := condition()):
        if time.monotonic() > deadline:
            raise TimeoutError("nothing arrived in time")
        await asyncio.sleep(step)
    return result


def answered(smtp: SmtpServer, n: int) -> bool:
    """The staff reply to request `n` is at the SMTP server."""
    return any(m.rcpt_tos == [f"user{n}@sev.gov.ru"]
               and f"Ответ по заявке {n}" in m.message.get_body(("plain",)).get_content()
               for m in smtp.messages[-3:])


async def measure(dovecot: DovecotServer, smtp: SmtpServer, idle: bool, count: int, poll_seconds: float,
                  replies: bool) -> tuple[list[float], list[float]]:
    account = dovecot.new_user("bench")
    folder = Path(tempfile.mkdtemp(prefix="inboxdesk-bench-"))
    os.environ["BENCH_IMAP_PASSWORD"] = account.password
    os.environ["BENCH_BOT_TOKEN"] = "123456:TEST-token-for-inboxdesk"
    with BotApiServer() as api:
        config = write_settings(folder, f"sqlite:///{folder / 'db.sqlite3'}",
                                [imap_box(dovecot, account, "BENCH_IMAP_PASSWORD", idle=idle,
                                          poll_seconds=60.0 if idle else poll_seconds)],
                                smtp_out(smtp))
        config.write_text(config.read_text(encoding="utf-8") + "\n".join([
            "", "[telegram]", 'token_env = "BENCH_BOT_TOKEN"', f'base_url = "{api.base_url}"',
            f'base_file_url = "{api.base_file_url}"', f"staff_chat_id = {STAFF_CHAT}",
            "", "[[staff]]", 'name = "ivanov"', 'role = "operator"', f"telegram_id = {STAFF_USER['id']}",
            ""]), encoding="utf-8")
        daemon = Daemon(App(load_settings(config)))
        task = asyncio.ensure_future(daemon.run_forever())
        rng = random.Random(7)
        cards: list[float] = []
        answers: list[float] = []
        try:
            await wait_for(lambda: api.calls_of("getUpdates"))  # the bot is up
            await asyncio.sleep(1.0)
            for i in range(count):
                await asyncio.sleep(rng.uniform(0.2, 1.0))
                subject = f"Заявка номер {i:03d} для замера"
                raw = letter(sender=f"user{i}@sev.gov.ru", subject=subject, body=f"Текст заявки {i}.\n")
                started = time.monotonic()
                await asyncio.to_thread(dovecot.append, account.address, raw)
                call = await wait_for(lambda s=subject: next(
                    (c for c in api.calls_of("sendMessage") if s in c.params.get("text", "")), None))
                cards.append(call.at - started)
                if replies:
                    card = next(m for m in api.messages(STAFF_CHAT) if subject in m.text)
                    await asyncio.sleep(0.3)  # let the acknowledgement go first
                    started = time.monotonic()
                    api.send(STAFF_USER, STAFF_CHAT, f"Ответ по заявке {i}", reply_to=card.message_id)
                    await wait_for(lambda n=i: answered(smtp, n))
                    answers.append(time.monotonic() - started)
        finally:
            daemon.stop()
            await asyncio.wait_for(task, 30)
            daemon.app.close()
    return cards, answers


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=30, help="messages per mode")
    parser.add_argument("--poll-seconds", type=float, default=2.0, help="polling interval without IDLE")
    args = parser.parse_args()
    dovecot = DovecotServer()
    dovecot.start()
    try:
        with SmtpServer() as smtp:
            idle_cards, answers = await measure(dovecot, smtp, True, args.count, args.poll_seconds, True)
        with SmtpServer() as smtp:
            poll_cards, _ = await measure(dovecot, smtp, False, args.count, args.poll_seconds, False)
    finally:
        dovecot.close()
    print(f"mail in IMAP -> card at the Bot API ({os.cpu_count()} cores, Dovecot on loopback, SQLite)")
    print(summary("IDLE on", idle_cards))
    print(summary(f"IDLE off, polling every {args.poll_seconds:g} s", poll_cards))
    print(summary("staff reply in Telegram -> SMTP server", answers))


if __name__ == "__main__":
    import logging

    logging.basicConfig(level=logging.WARNING)
    asyncio.run(main())
