"""How long letters built to hurt take (issue 9): parse and the MAIL-8 form check of each input
of `tests/test_hostile_mail.py`, as found and at 10 MB, plus 1,000 nested multiparts.

    .venv/bin/python benchmarks/hostile.py

Prints seconds per stage; every input must also end with a sender (or a recorded lack of one).
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from inboxdesk.form_check import check_request
from mailflow.parsing import parse_message
from tests.test_hostile_mail import MB10, hostile_letters, nested


def main() -> None:
    cases = [(f"{name} (as found)", raw) for name, raw in hostile_letters().items()]
    cases += [(f"{name} (10 MB)", raw) for name, raw in hostile_letters(MB10).items()]
    cases.append(("1,000 nested multiparts", nested(1000)))
    print(f"{'input':32} {'size':>9} {'parse':>8} {'form':>8}  sender / defects")
    for name, raw in cases:
        started = time.perf_counter()
        msg = parse_message(raw)
        parsed = time.perf_counter()
        check_request(msg.subject, msg.text, [(a.filename, a.content_type) for a in msg.attachments])
        checked = time.perf_counter()
        defects = ", ".join(d for d in msg.defects if "unparseable" in d or "from" in d)
        print(f"{name:32} {len(raw) / 1e6:8.1f}M {parsed - started:7.2f}s {checked - parsed:7.2f}s  "
              f"{msg.from_addr or '-'} {defects}")


if __name__ == "__main__":
    main()
