"""Issue 9: `kill -9` of the daemon leaves no process behind. Its parse workers, the fork server
that started them and multiprocessing's resource tracker all end with it (each held a pipe the
next one waited on, so before they ran on, about 170 MB per crash)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

from tests.story import letter, maildir_settings


def _marked(mark: str) -> list[int]:
    """Processes whose environment carries `mark` (children inherit it)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if f"INBOXDESK_TEST_MARK={mark}".encode() in (entry / "environ").read_bytes().split(b"\0"):
                found.append(int(entry.name))
        except OSError:
            continue
    return found


def test_kill_9_of_the_daemon_takes_its_parse_workers_with_it(tmp_path):
    maildir = tmp_path / "mail"
    (maildir / "new").mkdir(parents=True)
    for n in range(40):  # a batch big enough for the workers (MIN_BATCH)
        (maildir / "new" / f"{n}.m{n}.host").write_bytes(letter(subject=f"Заявка {n}"))
    config = maildir_settings(tmp_path, f"sqlite:///{tmp_path / 'db.sqlite3'}", poll_seconds=0.5)
    with config.open("a", encoding="utf-8") as f:
        f.write("\n[intake]\nworkers = 2\n")
    mark = uuid.uuid4().hex
    daemon = subprocess.Popen([sys.executable, "-m", "inboxdesk.cli", "--config", str(config), "run"],
                              env=dict(os.environ, INBOXDESK_TEST_MARK=mark), stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 60
        while len(_marked(mark)) < 4:  # the daemon, the fork server, two workers (and the tracker)
            assert daemon.poll() is None and time.monotonic() < deadline, _marked(mark)
            time.sleep(0.2)
    finally:
        daemon.send_signal(signal.SIGKILL)
        daemon.wait()
    deadline = time.monotonic() + 15
    while _marked(mark) and time.monotonic() < deadline:
        time.sleep(0.2)
    left = _marked(mark)
    for pid in left:  # leave the machine clean even when the story fails
        os.kill(pid, signal.SIGKILL)
    assert left == []
