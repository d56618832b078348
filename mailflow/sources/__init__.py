"""Where inbound mail comes from: an IMAP folder or a local Maildir."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol


class SourceError(Exception):
    """The mail server or folder cannot be used now (down, wrong password, missing folder)."""


@dataclass(frozen=True)
class FetchedMail:
    """Raw bytes of one message and where they came from."""

    source_ref: str  # "UIDVALIDITY:UID" for IMAP, the file key for Maildir
    raw: bytes
    uidvalidity: int | None = None
    uid: int | None = None


class MailSource(Protocol):
    """A mailbox the intake reads. Fetching never changes the mailbox; `mark_processed` does."""

    def open(self) -> None: ...
    def close(self) -> None: ...

    def uidvalidity(self) -> int | None:
        """The folder's UIDVALIDITY (None for sources without UIDs)."""
        ...

    def fetch_new(self, after_uid: int, limit: int) -> list[FetchedMail]:
        """Up to `limit` messages not yet processed, oldest first (UID > after_uid for IMAP)."""
        ...

    def mark_processed(self, refs: list[str]) -> None:
        """Flag the messages \\Seen and move them to the processed folder when one is set.
        Refs from an older UIDVALIDITY are skipped. Never deletes."""
        ...

    def wait_for_mail(self, timeout: float) -> bool:
        """Block until new mail may be there (IMAP IDLE) or `timeout` passes; True if notified."""
        ...
