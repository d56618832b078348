"""Work the parse workers do besides parsing (`mailflow.parse_pool`), so the intake process
does not: pure functions of a parsed message, sent to the workers by name."""

from __future__ import annotations

from inboxdesk.form_check import FormCheck, check_request
from mailflow.message import ParsedMessage


def form_files(msg: ParsedMessage) -> list[tuple[str, str]]:
    """(file name, type) of every attachment, in order: what the desk checks a new request with."""
    return [(f.filename, f.content_type) for f in msg.attachments]


def form_check(msg: ParsedMessage) -> FormCheck:
    """The MAIL-8 check the desk runs on a new emailed request (`Desk._check_new_request`)."""
    return check_request(msg.subject, msg.text, form_files(msg))
