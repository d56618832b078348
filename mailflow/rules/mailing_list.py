"""LOOP-1: mailing-list and bulk mail. Lists answer back to lists; a ticket per newsletter is noise."""

from __future__ import annotations

from mailflow.message import ParsedMessage
from mailflow.rules.base import Hit, RuleContext

# RFC 2919 List-Id and the RFC 2369 headers list managers add. List-Unsubscribe also marks
# newsletters sent through mass mailers, which is equally not a request.
_LIST_HEADERS = ("list-id", "list-post", "list-unsubscribe", "x-mailing-list")
_BULK_PRECEDENCE = {"bulk", "list", "junk"}
# Deliberately not used: Feedback-ID (Gmail's sender-reputation tag; transactional mail from real
# organisations carries it too) and X-Mailer names of mass mailers.


class MailingListRule:
    """List-Id/List-Post/List-Unsubscribe/X-Mailing-List, or Precedence bulk|list|junk."""

    name = "mailing-list"
    description = "Рассылка или массовое письмо (List-Id, List-Unsubscribe, Precedence: bulk)."

    def check(self, msg: ParsedMessage, ctx: RuleContext) -> Hit | None:
        for name in _LIST_HEADERS:
            value = msg.header(name)
            if value is not None:
                return Hit(self.name, f"письмо рассылки (заголовок {name}: {value.strip()[:80]})",
                           {name: value.strip()})
        precedence = (msg.header("precedence") or "").strip().lower()
        if precedence in _BULK_PRECEDENCE:
            return Hit(self.name, f"массовая рассылка (Precedence: {precedence})",
                       {"precedence": precedence})
        return None
