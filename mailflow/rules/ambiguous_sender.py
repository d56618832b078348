"""Issue 10 (MAIL-1, MAIL-2): a letter whose sender cannot be told for sure is not a request.

Two From headers, two addresses in one, or an address written into the display name: DMARC
checks one address and a mail client shows another, so any answer could go to the wrong person.
"""

from __future__ import annotations

from mailflow.message import ParsedMessage
from mailflow.rules.base import Hit, RuleContext


class AmbiguousSenderRule:
    """Fires (filters) when From does not name exactly one address unambiguously."""

    name = "ambiguous-sender"
    description = "Отправитель неоднозначен: несколько заголовков From, несколько адресов или адрес в имени."

    def check(self, msg: ParsedMessage, ctx: RuleContext) -> Hit | None:
        if not msg.sender_ambiguity:
            return None
        return Hit(self.name, f"неоднозначный отправитель (ambiguous sender): {msg.sender_ambiguity}",
                   {"from": msg.headers.get("from", [])[:3]})
