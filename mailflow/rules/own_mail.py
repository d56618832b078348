"""LOOP-1: our own letters coming back (a forward rule, a mailing list, a mis-set alias)."""

from __future__ import annotations

from email.utils import parseaddr

from inboxdesk.domain import LOOP_HEADER as LOOP_HEADER  # one name for senders and this rule
from mailflow.message import ParsedMessage
from mailflow.rules.base import Hit, RuleContext

__all__ = ["LOOP_HEADER", "OwnMailRule"]


class OwnMailRule:
    """From one of our mailboxes, or carrying the loop header every letter we send gets."""

    name = "own-mail"
    description = "Письмо отправлено самим inboxdesk (наш адрес или наш заголовок X-Inboxdesk-Loop)."

    def check(self, msg: ParsedMessage, ctx: RuleContext) -> Hit | None:
        own = {a.lower() for a in ctx.own_addresses}
        if msg.from_addr and msg.from_addr.lower() in own:
            return Hit(self.name, f"письмо от нашего собственного адреса {msg.from_addr}",
                       {"from": msg.from_addr})
        loop = msg.header(LOOP_HEADER)
        if loop is not None:
            marked_by = parseaddr(loop)[1].lower()
            # Another inboxdesk installation (a vendor's helpdesk, say) stamps its own address;
            # a person answering from there is not our mail coming back.
            if not own or marked_by in own or marked_by == ctx.mailbox_address.lower():
                return Hit(self.name, f"письмо с нашим заголовком {LOOP_HEADER}: {loop}",
                           {"header": LOOP_HEADER, "value": loop})
        if ctx.own_message_id_domain and _our_message_id(msg.message_id, ctx.own_message_id_domain):
            return Hit(self.name, f"Message-ID {msg.message_id} выдан нами",
                       {"message_id": msg.message_id})
        return None


def _our_message_id(message_id: str | None, domain: str) -> bool:
    # inboxdesk.letters.new_message_id: make_msgid(idstring="inboxdesk", domain=<our domain>).
    return bool(message_id) and message_id.lower().rstrip(">").endswith(f".inboxdesk@{domain.lower()}")
