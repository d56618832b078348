"""The plain structure a raw email is parsed into; everything after parsing reads only this."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from datetime import datetime


@dataclass(frozen=True)
class MailAttachment:
    """One file carried by a message, with its bytes exactly as sent."""

    filename: str
    content_type: str
    content: bytes
    inline: bool = False

    @property
    def size(self) -> int:
        return len(self.content)

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.content).hexdigest()


@dataclass(frozen=True)
class BounceInfo:
    """A delivery failure report (DSN or a mail server's own format)."""

    recipients: tuple[str, ...] = ()  # the addresses that failed
    temporary: bool = False  # a delay warning rather than a final failure
    original_message_ids: tuple[str, ...] = ()  # Message-IDs of the mail that bounced


@dataclass(frozen=True)
class ParsedMessage:
    """A decoded email. Addresses are lower-cased; text is readable Unicode.

    `text` is the whole readable body (HTML converted when there is no plain part); `new_text` is
    `text` without the quoted history, or `text` itself when that cannot be done reliably.
    `headers` maps lower-cased header names to every decoded value, in order.
    """

    message_id: str | None
    subject: str
    from_addr: str
    from_name: str
    to: tuple[str, ...] = ()
    cc: tuple[str, ...] = ()
    reply_to: tuple[str, ...] = ()
    date: datetime | None = None
    in_reply_to: str | None = None
    references: tuple[str, ...] = ()
    headers: dict[str, list[str]] = field(default_factory=dict)
    content_type: str = "text/plain"
    text: str = ""
    new_text: str = ""
    html: str | None = None
    attachments: tuple[MailAttachment, ...] = ()
    bounce: BounceInfo | None = None
    defects: tuple[str, ...] = ()
    # Why the sender cannot be told for sure (two From headers, two addresses in one, an address
    # in the display name); "" when From names exactly one address (issue 10, MAIL-1/MAIL-2).
    sender_ambiguity: str = ""

    def header(self, name: str) -> str | None:
        """The first value of header `name` (case-insensitive), or None."""
        values = self.headers.get(name.lower())
        return values[0] if values else None

    @property
    def from_domain(self) -> str:
        return self.from_addr.rpartition("@")[2]

    @property
    def thread_ids(self) -> tuple[str, ...]:
        """Message-IDs this message answers: In-Reply-To first, then References newest first."""
        ids = [self.in_reply_to] if self.in_reply_to else []
        ids += [r for r in reversed(self.references) if r not in ids]
        return tuple(ids)
