"""Crash safety (issue 2, point 6): the real daemon process is killed with SIGKILL at chosen lines,
then started again. Every request must end as exactly one ticket, no acknowledgement may be lost,
and at most the one letter in flight may go out twice. A recreated mailbox creates nothing new.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections import Counter

import pytest

from tests.story import cli_json, imap_box, letter, smtp_out, write_settings

ENV = "INBOXDESK_TEST_IMAP_PASSWORD"
SENDERS = [f"user{i}@sev.gov.ru" for i in range(3)]


def run_daemon_once(config, env, failpoint: str | None = None) -> subprocess.CompletedProcess:
    """`inboxdesk run --once` in its own process, optionally armed to SIGKILL itself."""
    env = dict(env, INBOXDESK_FAILPOINT=failpoint or "")
    return subprocess.run([sys.executable, "-m", "inboxdesk.cli", "--config", str(config), "run", "--once"],
                          env=env, capture_output=True, text=True, timeout=120)


@pytest.fixture
def setup(tmp_path, db_url, dovecot, imap_account, smtp_server):
    env = dict(os.environ, **{ENV: imap_account.password})
    config = write_settings(tmp_path, db_url, [imap_box(dovecot, imap_account, ENV)], smtp_out(smtp_server))
    for sender in SENDERS:
        dovecot.append(imap_account.address, letter(sender=sender, subject=f"Заявка от {sender}"))
    return config, env


@pytest.mark.parametrize("failpoint", ["after_fetch", "after_record", "after_process", "after_send"])
def test_sigkill_at_any_step_loses_nothing_and_duplicates_no_ticket(setup, failpoint, smtp_server, dovecot,
                                                                      imap_account):
    """DESIGN §6 reliability: kill right after fetching, right after the commit (before the mailbox
    flag), and during SMTP delivery (after the server accepted a letter, before it is marked sent)."""
    config, env = setup

    crashed = run_daemon_once(config, env, failpoint)
    assert crashed.returncode == -signal.SIGKILL, crashed.stderr
    finished = run_daemon_once(config, env)
    assert finished.returncode == 0, finished.stderr

    tickets = cli_json(config, "tickets", "list")
    assert sorted(t["requester_email"] for t in tickets) == SENDERS  # each request: one ticket
    acks = Counter(m.rcpt_tos[0] for m in smtp_server.messages)
    assert set(acks) == set(SENDERS)  # no acknowledgement lost
    repeated = sum(n - 1 for n in acks.values())
    assert repeated == (1 if failpoint == "after_send" else 0)  # only the letter in flight
    assert all(o["status"] == "sent" for o in cli_json(config, "outbox", "list"))
    assert all(b"\\Seen" in flags for _, flags, _ in dovecot.folder_messages(imap_account.address))
    assert [r["disposition"] for r in cli_json(config, "inbound", "list")] == ["ticket"] * 3


def test_recreated_mailbox_with_new_uidvalidity_creates_nothing_new(setup, smtp_server, dovecot,
                                                                     imap_account):
    """Issue 2 point 6: the same messages under a new UIDVALIDITY are recognised by Message-ID."""
    config, env = setup
    assert run_daemon_once(config, env).returncode == 0
    before = dovecot.uidvalidity(imap_account.address)

    after = dovecot.recreate_folder(imap_account.address, keep_messages=True)
    assert after != before
    result = run_daemon_once(config, env)
    assert result.returncode == 0, result.stderr

    assert len(cli_json(config, "tickets", "list")) == 3
    assert len(smtp_server.messages) == 3
    dispositions = [r["disposition"] for r in cli_json(config, "inbound", "list")]
    assert dispositions == ["ticket"] * 3 + ["duplicate"] * 3
