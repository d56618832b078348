"""MAIL-1: support requests are accepted only from addresses of the allowed domains."""

from __future__ import annotations

import re

from inboxdesk.domain import domain_allowed, normal_domain
from mailflow.message import ParsedMessage
from mailflow.rules.base import Hit, RuleContext

# Syntax only: the address came from a header we parsed; deliverability is not our question here.
_ADDRESS = re.compile(r"^[^@\s]+@(?:[^@\s.]+\.)+[^@\s.]+$")
# RFC 5321 4.5.3.1.3: a path holds at most 256 octets, so an address of 254 characters at most;
# a longer one cannot be answered (and would not fit the requester's column whole).
MAX_ADDRESS = 254


class AllowedDomainRule:
    """Fires (filters) when the sender's domain is not allowed, or the sender address is unusable."""

    name = "allowed-domain"
    description = "Отправитель не из разрешённого домена (MAIL-1) или адрес отправителя некорректен."

    def check(self, msg: ParsedMessage, ctx: RuleContext) -> Hit | None:
        address = (msg.from_addr or "").strip().lower()
        if len(address) > MAX_ADDRESS:
            return Hit(self.name, f"адрес отправителя длиннее {MAX_ADDRESS} символов ({len(address)})",
                       {"from": address[:MAX_ADDRESS]})
        if not _ADDRESS.match(address):
            return Hit(self.name, f"адрес отправителя отсутствует или некорректен: «{msg.from_addr}»",
                       {"from": msg.from_addr})
        if not ctx.allowed_domains:  # an open mailbox (citizens' appeals): everyone is accepted
            return None
        domain = normal_domain(address.rpartition("@")[2])
        if domain_allowed(domain, ctx.allowed_domains, ctx.allow_subdomains):
            return None
        allowed = [normal_domain(d) for d in ctx.allowed_domains]
        return Hit(self.name, f"домен отправителя {domain} не входит в разрешённые: {', '.join(allowed)}",
                   {"domain": domain, "allowed": allowed, "subdomains": ctx.allow_subdomains})
