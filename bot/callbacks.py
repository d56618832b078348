"""Inline-button data: signed, short, and tied to the ticket's state when the button was drawn.

`action:ticket:arg:version:signature` fits Telegram's 64-byte limit. The signature (HMAC keyed
from the bot token) makes a forged press fail; the version (a hash of status, assignee, priority,
impact and line) makes a press on an outdated card fail, so neither changes anything.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import zlib
from dataclasses import dataclass

from storage.models import Ticket

# take, reply prompt, status menu, set status, complete appeal, priority menu, priority chosen,
# impact chosen, escalate, back to the first line, send files, back to the card's own buttons,
# send a failed letter again; read a filtered letter, take it in as a request (MAIL_ACTIONS: about
# an inbound message, not a record).
MAIL_ACTIONS = frozenset({"mail", "acc"})
ACTIONS = frozenset({"take", "rep", "stm", "st", "done", "prm", "pr", "im", "esc", "dsc", "files", "back",
                     "rty"}) | MAIL_ACTIONS
MAX_BYTES = 64


def state_version(ticket: Ticket) -> str:
    """Four characters that change whenever something a button depends on changes."""
    state = f"{ticket.status}|{ticket.assignee}|{ticket.priority}|{ticket.impact}|{ticket.line}"
    return format(zlib.crc32(state.encode()) & 0xFFFF, "04x")


@dataclass(frozen=True)
class Press:
    action: str
    ticket_id: int
    arg: str
    version: str


class CallbackSigner:
    """Encodes and checks button data with a key only this bot knows."""

    def __init__(self, token: str) -> None:
        self.key = hashlib.sha256(b"inboxdesk-callback\0" + token.encode()).digest()

    def _sign(self, body: str) -> str:
        digest = hmac.new(self.key, body.encode(), hashlib.sha256).digest()
        return base64.urlsafe_b64encode(digest[:9]).decode()  # 12 characters, 72 bits

    def encode(self, action: str, ticket: Ticket, arg: str = "") -> str:
        if action not in ACTIONS or ":" in arg:
            raise ValueError(f"bad button {action!r} {arg!r}")
        body = f"{action}:{ticket.id}:{arg}:{state_version(ticket)}"
        data = f"{body}:{self._sign(body)}"
        assert len(data.encode()) <= MAX_BYTES, data
        return data

    def encode_mail(self, action: str, inbound_id: int) -> str:
        """A button about inbound message `inbound_id` (record 0, no state to go stale)."""
        if action not in MAIL_ACTIONS:
            raise ValueError(f"bad mail button {action!r}")
        body = f"{action}:0:{inbound_id}:0000"
        return f"{body}:{self._sign(body)}"

    def decode(self, data: str | None) -> Press | None:
        """The press, or None when the data is malformed or not signed by us."""
        parts = (data or "").split(":")
        if len(parts) != 5:
            return None
        action, ticket_id, arg, version, signature = parts
        if not hmac.compare_digest(self._sign(":".join(parts[:4])), signature):
            return None
        if action not in ACTIONS or not ticket_id.isdigit():
            return None
        return Press(action, int(ticket_id), arg, version)
