"""LOOP-1: delivery failure reports. Never a ticket; a bounce of our letter is linked by intake."""

from __future__ import annotations

from mailflow.message import ParsedMessage
from mailflow.rules.base import Hit, RuleContext


class BounceRule:
    """The parser recognised a bounce (mailflow.bounces.detect_bounce)."""

    name = "bounce"
    description = "Отчёт почтового сервера о недоставке письма (DSN или его аналог)."

    def check(self, msg: ParsedMessage, ctx: RuleContext) -> Hit | None:
        bounce = msg.bounce
        if bounce is None:
            return None
        kind = "задержка доставки" if bounce.temporary else "письмо не доставлено"
        who = ", ".join(bounce.recipients) or "адрес не указан"
        return Hit(self.name, f"отчёт о недоставке ({kind}): {who}",
                   {"recipients": list(bounce.recipients), "temporary": bounce.temporary,
                    "original_message_ids": list(bounce.original_message_ids)})
