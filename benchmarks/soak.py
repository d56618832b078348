"""Soak under kills (issue 9): two daemons on one database and one IMAP mailbox; one of them is
SIGKILLed at random moments again and again (and started again) while requests, replies and
re-deliveries arrive. Prints what was lost or made twice.

    .venv/bin/python benchmarks/soak.py [--kills 50] [--db sqlite|postgres] [--requests 300]

Needs root and the Debian package dovecot-imapd (see ../shared/TESTING.md). Every count printed
is read back from the database and the SMTP server, never assumed.
"""

from __future__ import annotations

import argparse
import os
import random
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from email.utils import make_msgid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.servers.dovecot import DovecotServer  # noqa: E402
from tests.servers.postgres import PostgresServer  # noqa: E402
from tests.servers.smtp import SmtpServer  # noqa: E402
from tests.story import cli_json, imap_box, letter, smtp_out, write_settings  # noqa: E402

ENV = "INBOXDESK_SOAK_IMAP_PASSWORD"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--kills", type=int, default=50)
    p.add_argument("--db", choices=["sqlite", "postgres"], default="sqlite")
    p.add_argument("--requests", type=int, default=300)
    p.add_argument("--seed", type=int, default=9)
    args = p.parse_args()
    rnd = random.Random(args.seed)
    work = Path(tempfile.mkdtemp(prefix="inboxdesk-soak-"))
    pg = PostgresServer() if args.db == "postgres" else None
    db_name = pg.create_database() if pg else None
    with DovecotServer() as dovecot, SmtpServer() as smtp:
        account = dovecot.new_user()
        url = pg.url(db_name) if pg else f"sqlite:///{work / 'db.sqlite3'}"
        box = imap_box(dovecot, account, ENV, poll_seconds=0.5)
        config = write_settings(work, url, [box], smtp_out(smtp))
        env = dict(os.environ, **{ENV: account.password}, INBOXDESK_CONFIG="")
        log = (work / "daemons.log").open("ab")

        def start() -> subprocess.Popen[bytes]:
            return subprocess.Popen([sys.executable, "-m", "inboxdesk.cli", "--config", str(config), "run"],
                                    env=env, stdout=log, stderr=subprocess.STDOUT, cwd=ROOT)

        requests, replies = [], []
        for n in range(args.requests):
            mid = make_msgid(domain="sev.gov.ru")
            requests.append(letter(sender=f"user{n}@sev.gov.ru", subject=f"Заявка {n}", message_id=mid))
            if n % 5 == 0:
                replies.append(letter(sender=f"user{n}@sev.gov.ru", subject=f"Re: Заявка {n}",
                                      in_reply_to=mid, references=mid, body=f"Дополнение {n}.\n"))
        redelivered = requests[: args.requests // 20]
        arrivals = [("request", r) for r in requests]
        for i, reply in enumerate(replies):  # each reply well after its request
            arrivals.insert(min(len(arrivals), (i * 5 + 1) * 2), ("reply", reply))
        arrivals += [("again", r) for r in redelivered]

        daemons = [start(), start()]
        started = time.monotonic()

        def arrive() -> None:
            for start_at in range(0, len(arrivals), 10):
                dovecot.append_many(account.address, [raw for _, raw in arrivals[start_at:start_at + 10]])
                time.sleep(0.5)

        feeder = threading.Thread(target=arrive)
        feeder.start()
        for _ in range(args.kills):
            time.sleep(rnd.uniform(0.3, 2.0))
            victim = rnd.randrange(2)
            daemons[victim].send_signal(signal.SIGKILL)
            daemons[victim].wait()
            daemons[victim] = start()
        feeder.join()
        expected = len(arrivals)
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline:
            inbound = cli_json(config, "inbound", "list")
            letters = cli_json(config, "outbox", "list")
            if (len(inbound) >= expected and all(r["state"] == "acked" for r in inbound)
                    and all(o["status"] == "sent" for o in letters)):
                break
            time.sleep(1)
        settled = time.monotonic() - started
        for d in daemons:
            d.send_signal(signal.SIGTERM)
        for d in daemons:
            d.wait(timeout=60)

        tickets = cli_json(config, "tickets", "list")
        inbound = cli_json(config, "inbound", "list")
        per_sender = Counter(t["requester_email"] for t in tickets)
        senders = {f"user{n}@sev.gov.ru" for n in range(args.requests)}
        acks = Counter(m.rcpt_tos[0] for m in smtp.messages if "зарегистрирована" in m.message["Subject"])
        by_sender = {t["requester_email"]: t["id"] for t in tickets}
        misplaced = sum(1 for r in inbound if r["disposition"] == "followup"
                        and r["ticket_id"] != by_sender.get(r["from"]))
        print(f"database {args.db}; {args.kills} SIGKILLs of one of two daemons; "
              f"{len(requests)} requests, {len(replies)} replies, {len(redelivered)} re-deliveries")
        print(f"settled after {settled:.0f} s")
        print(f"tickets: {len(tickets)} for {len(requests)} requests; lost {len(senders - set(per_sender))}; "
              f"made twice {sum(n - 1 for n in per_sender.values() if n > 1)}")
        print(f"dispositions: {dict(sorted(Counter(r['disposition'] for r in inbound).items()))}")
        print(f"replies in the wrong ticket: {misplaced}")
        twice = sum(n - 1 for n in acks.values())
        print(f"acknowledgements: lost {len(senders - set(acks))}; sent twice {twice} "
              "(a letter in flight at a kill may go twice)")
        errors = [line for line in (work / "daemons.log").read_text(errors="replace").splitlines()
                  if " ERROR " in line or "Traceback" in line]
        print(f"error lines in the daemons' logs: {len(errors)}")
        for line in errors[:5]:
            print("   ", line[:200])
    if pg and db_name:
        pg.drop_database(db_name)


if __name__ == "__main__":
    main()
