"""The inbound rule chain: which rules run, in which order, and what a hit means (DESIGN §4 step 4).

The order is data, not a cascade of ifs. Every rule is evaluated (each is a few header look-ups),
so the record tells staff not only why a message was filtered but what else was true of it; the
first rule in order that fires decides.
"""

from __future__ import annotations

from dataclasses import dataclass

from mailflow.message import ParsedMessage
from mailflow.rules.allowed_domain import AllowedDomainRule
from mailflow.rules.ambiguous_sender import AmbiguousSenderRule
from mailflow.rules.auto_reply import AutoReplyRule
from mailflow.rules.base import Hit, Rule, RuleContext
from mailflow.rules.bounce import BounceRule
from mailflow.rules.mailing_list import MailingListRule
from mailflow.rules.own_mail import OwnMailRule
from mailflow.rules.size_limit import size_split

__all__ = ["AUTOREPLY", "BOUNCE", "CHAIN", "FILTERED", "Decision", "decide", "size_split"]

# Values of InboundMessage.disposition (inboxdesk.domain.DISPOSITIONS).
FILTERED = "filtered"
BOUNCE = "bounce"
AUTOREPLY = "autoreply"

# Loop protection first: our own mail and bounces must never reach a rule that could answer them,
# and a bounce is worth linking to its record even when it also looks like list mail. MAIL-1 last:
# "not an allowed sender" is only the reason when nothing more specific is true.
CHAIN: tuple[tuple[Rule, str], ...] = (
    (OwnMailRule(), FILTERED),
    (BounceRule(), BOUNCE),
    (AutoReplyRule(), AUTOREPLY),
    (MailingListRule(), FILTERED),
    (AmbiguousSenderRule(), FILTERED),
    (AllowedDomainRule(), FILTERED),
)


@dataclass(frozen=True)
class Decision:
    """What the chain decided: `disposition` None means accepted (a ticket or a follow-up)."""

    disposition: str | None
    hits: tuple[Hit, ...] = ()  # the deciding hit first, then the others that fired, in chain order
    misses: tuple[str, ...] = ()  # names of the rules that did not fire

    @property
    def accepted(self) -> bool:
        return self.disposition is None

    @property
    def reasons(self) -> list[str]:
        """Human-readable reasons, the deciding one first (stored on the inbound record)."""
        return [hit.reason for hit in self.hits]


def decide(msg: ParsedMessage, ctx: RuleContext,
           chain: tuple[tuple[Rule, str], ...] = CHAIN) -> Decision:
    """Run every rule of `chain` on `msg`; the first that fires decides the disposition."""
    hits: list[Hit] = []
    misses: list[str] = []
    disposition: str | None = None
    for rule, outcome in chain:
        hit = rule.check(msg, ctx)
        if hit is None:
            misses.append(rule.name)
            continue
        if not hits:
            disposition = outcome
        hits.append(hit)
    return Decision(disposition=disposition, hits=tuple(hits), misses=tuple(misses))
