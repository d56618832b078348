"""Named crash points for the crash-safety tests (issue 2, point 6).

`INBOXDESK_FAILPOINT=after_record` makes the process kill itself with SIGKILL the first time it
reaches `failpoint("after_record")` — a real crash at a chosen line, no mocks. Unset (always, in
production) it costs one dictionary lookup at import time.
"""

from __future__ import annotations

import os
import signal

_ARMED = os.environ.get("INBOXDESK_FAILPOINT", "")


def failpoint(name: str) -> None:
    """Die here, as a power cut would, if this point is armed."""
    if _ARMED and name == _ARMED:
        os.kill(os.getpid(), signal.SIGKILL)
