"""MAIL-9: at most 10 MB of attachments per message. An annotation, not a filter.

Over-limit mail still becomes a ticket: the attachments that fit are stored, the rest are not,
and the sender is told which ones and why.
"""

from __future__ import annotations

from collections.abc import Iterable

from mailflow.message import MailAttachment, ParsedMessage
from mailflow.rules.base import Hit, RuleContext


def size_split(attachments: Iterable[MailAttachment], limit: int | None,
               ) -> tuple[tuple[MailAttachment, ...], tuple[MailAttachment, ...]]:
    """(kept, refused): attachments in order while the running total stays within `limit` bytes.

    From the first file that would cross the limit on, everything is refused, so "the first N
    files were stored" is true and easy to tell the sender. `limit=None` keeps everything.
    """
    items = tuple(attachments)
    if limit is None:
        return items, ()
    total = 0
    for index, item in enumerate(items):
        total += item.size
        if total > limit:
            return items[:index], items[index:]
    return items, ()


class SizeLimit:
    """Names the attachments MAIL-9 refuses; intake stores the rest and tells the sender."""

    name = "size-limit"
    description = "Вложения сверх лимита на письмо (10 МБ по умолчанию) не сохраняются (MAIL-9)."

    def check(self, msg: ParsedMessage, ctx: RuleContext) -> Hit | None:
        kept, refused = size_split(msg.attachments, ctx.max_attachment_bytes)
        if not refused:
            return None
        limit_mb = ctx.max_attachment_bytes / (1024 * 1024)
        names = ", ".join(a.filename or "(без имени)" for a in refused)
        return Hit(self.name, f"вложения сверх {limit_mb:g} МБ не сохранены: {names}",
                   {"limit": ctx.max_attachment_bytes, "kept": [a.filename for a in kept],
                    "refused": [a.filename for a in refused],
                    "refused_bytes": sum(a.size for a in refused)})
