"""Log records that cannot be forged (issue 10): every message is one line.

Log calls pass senders' and strangers' text as arguments (subjects, addresses, what a stranger
typed to the bot). A newline in such text followed by a fake timestamp would read as a second,
forged record; the formatter escapes line breaks and other control characters in the message,
so whatever the text, a record stays one line. Tracebacks are added after the message, as usual.
"""

from __future__ import annotations

import json
import logging
import os
import re
from datetime import UTC, datetime

# What an event's log record may carry besides its message (`extra=`), as JSON fields.
EVENT_FIELDS = ("mailbox", "inbound_id", "disposition", "record", "outbox_id")
_HANDLER = "inboxdesk"  # the name of the one handler `configure` installs
_CONTROL = re.compile(r"[\x00-\x1f\x7f\u2028\u2029\x85]")


def one_line(text: str) -> str:
    """`text` with every control character written as an escape (`\\n`, `\\x1b`, ...)."""
    return _CONTROL.sub(lambda m: m.group(0).encode("unicode_escape").decode("ascii"), text)


class OneLineFormatter(logging.Formatter):
    def formatMessage(self, record: logging.LogRecord) -> str:
        record.message = one_line(record.message)
        return super().formatMessage(record)


class JsonFormatter(logging.Formatter):
    """One JSON object per line (`[log] format = "json"`) for log collectors."""

    def format(self, record: logging.LogRecord) -> str:
        entry = {"at": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
                 "level": record.levelname, "logger": record.name, "message": record.getMessage()}
        fields = ((key, getattr(record, key, None)) for key in EVENT_FIELDS)
        entry.update({key: value for key, value in fields if value is not None})
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, ensure_ascii=False)


def configure(verbose: bool, fmt: str = "text") -> None:
    """The process's logging: one line per record, to standard error. Under systemd (which sets
    JOURNAL_STREAM) text lines carry no time stamp: the journal adds its own."""
    root = logging.getLogger()
    ours = [h for h in root.handlers if h.get_name() == _HANDLER]
    for noisy in ("apscheduler", "aiosmtplib", "httpx", "imapclient", "alembic"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    if root.handlers and not ours:
        return  # someone else (a test runner, an embedding program) owns the process's logging
    for handler in ours:  # called again once the settings are read: replace, never add a second
        root.removeHandler(handler)
    handler = logging.StreamHandler()
    handler.set_name(_HANDLER)
    if fmt == "json":
        handler.setFormatter(JsonFormatter())
    elif os.environ.get("JOURNAL_STREAM"):
        handler.setFormatter(OneLineFormatter("%(levelname)s %(name)s: %(message)s"))
    else:
        handler.setFormatter(OneLineFormatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root.addHandler(handler)
    root.setLevel(logging.DEBUG if verbose else logging.INFO)
