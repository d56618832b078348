"""Issue 18: a newcomer's first hour, tried from the README in a fresh checkout.

Each story is one thing a new user or administrator did and what they must see.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

from tests.story import cli_json

ROOT = Path(__file__).resolve().parent.parent


def _checkout(tmp_path: Path) -> Path:
    work = tmp_path / "checkout"
    work.mkdir()
    shutil.copy(ROOT / "settings.toml", work)
    shutil.copytree(ROOT / "samples", work / "samples")
    return work


def _copy_samples(work: Path) -> None:
    """`cp -r samples/mail var/` (into an existing var/mail on the second run, as cp does)."""
    shutil.copytree(work / "samples" / "mail", work / "var" / "mail", dirs_exist_ok=True)


def _waiting(work: Path) -> list[Path]:
    return [p for box in ("help", "appeals") for p in (work / "var" / "mail" / box / "new").iterdir()
            if not p.name.startswith(".")]


def _cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _daemon(work: Path) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-m", "inboxdesk.cli", "run"], cwd=work,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            env=dict(os.environ, INBOXDESK_CONFIG=""))


def _until_mailboxes_empty(daemon: subprocess.Popen[str], work: Path) -> None:
    deadline = time.monotonic() + 60
    while _waiting(work):
        assert daemon.poll() is None, daemon.stdout.read()
        assert time.monotonic() < deadline, f"still in new/: {_waiting(work)}"
        time.sleep(0.2)


def _stop(daemon: subprocess.Popen[str]) -> str:
    daemon.send_signal(signal.SIGTERM)
    output, _ = daemon.communicate(timeout=30)
    assert daemon.returncode == 0, output
    return output


def test_readme_first_command_twice_sees_duplicates_and_the_daemon_goes_idle(tmp_path):
    """The README's first command run twice (MAIL-3, LOOP-1, DESIGN §4 "nothing twice"): the copies
    carry the same Maildir names as the finished originals; they are recorded as `duplicate`, leave
    new/, make no ticket or letter, and the daemon then sleeps instead of re-fetching them."""
    work = _checkout(tmp_path)
    _copy_samples(work)
    daemon = _daemon(work)
    try:
        _until_mailboxes_empty(daemon, work)
    finally:
        _stop(daemon)
    config = work / "settings.toml"
    first_tickets = cli_json(config, "tickets", "list")
    letters = sorted(p.name for p in (work / "var" / "outbound" / "new").iterdir())

    _copy_samples(work)  # the README's command again
    assert len(_waiting(work)) == 5
    daemon = _daemon(work)
    try:
        _until_mailboxes_empty(daemon, work)
        time.sleep(1.0)  # let the pass that finished them return
        before = _cpu_seconds(daemon.pid)
        time.sleep(3.0)
        busy = _cpu_seconds(daemon.pid) - before
    finally:
        output = _stop(daemon)

    assert busy < 1.0, f"daemon busy for {busy:.2f} s of 3 s while nothing arrived:\n{output}"
    assert output.count("5 fetched") + output.count("4 fetched") + output.count("1 fetched") <= 2, output
    inbound = cli_json(config, "inbound", "list")
    assert [r["disposition"] for r in inbound[5:]] == ["duplicate"] * 5
    assert all("уже получено как входящее" in r["reasons"][0] for r in inbound[5:])
    assert cli_json(config, "tickets", "list") == first_tickets
    assert sorted(p.name for p in (work / "var" / "outbound" / "new").iterdir()) == letters
    # The originals stay in cur/ beside the copies: a copy never overwrites the first message.
    assert len(list((work / "var" / "mail" / "help" / "cur").glob("*:2,*S*"))) == 8

    _copy_samples(work)  # and `run --once` returns on copies too
    done = subprocess.run([sys.executable, "-m", "inboxdesk.cli", "run", "--once"], cwd=work, timeout=120,
                          capture_output=True, text=True, env=dict(os.environ, INBOXDESK_CONFIG=""))
    assert done.returncode == 0, done.stderr
    assert not _waiting(work)
    assert [r["disposition"] for r in cli_json(config, "inbound", "list")[10:]] == ["duplicate"] * 5
