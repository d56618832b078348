"""Who holds a claim or a lease: `host:pid`, and whether that process still runs.

Outbox claims and mailbox leases name their holder this way, so a process killed on this host is
recognised at once and its work freed, instead of when its lease runs out.
"""

from __future__ import annotations

import os
import socket


def worker_id() -> str:
    """This host and process."""
    return f"{socket.gethostname()}:{os.getpid()}"


def dead_here(holder: str | None) -> bool:
    """Is `holder` a process of this host that no longer runs? (Another host's: not known, False.)"""
    host, _, pid = (holder or "").rpartition(":")
    if host != socket.gethostname() or not pid.isdigit():
        return False
    return not _alive(int(pid))


def _alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
