"""What every inbound rule is: a name, a description and one `check`."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

from mailflow.message import ParsedMessage


@dataclass(frozen=True)
class RuleContext:
    """What a rule may know besides the message: the mailbox it came to and our own addresses."""

    mailbox_address: str
    mailbox_kind: str = "tickets"
    allowed_domains: tuple[str, ...] = ()
    allow_subdomains: bool = False
    own_addresses: frozenset[str] = frozenset()
    max_attachment_bytes: int = 10 * 1024 * 1024
    # Message-IDs we sent (filled by intake for bounce/own-mail checks); empty when unknown.
    own_message_id_domain: str = ""


@dataclass(frozen=True)
class Hit:
    """A rule fired; `reason` is one short sentence that tells staff why (kept on the record)."""

    rule: str
    reason: str
    details: dict[str, object] = field(default_factory=dict)


class Rule(Protocol):
    name: str
    description: str

    def check(self, msg: ParsedMessage, ctx: RuleContext) -> Hit | None:
        """A Hit when the rule applies to `msg`, else None."""
        ...
