"""What a Telegram client shows for a text in HTML parse mode, checked the way Telegram checks it:
unknown tags, unbalanced tags and a bare `&` are refused ("can't parse entities"), and lengths are
counted in UTF-16 units after the markup is gone."""

from __future__ import annotations

import re
from html.parser import HTMLParser

_TAGS = {"b", "strong", "i", "em", "u", "ins", "s", "strike", "del", "a", "code", "pre", "blockquote",
         "tg-spoiler", "span", "tg-emoji"}
_ENTITY = re.compile(r"&(?!(?:lt|gt|amp|quot|#\d+|#x[0-9a-fA-F]+);)")


class EntityError(ValueError):
    pass


class _Visible(HTMLParser):
    """What a Telegram client shows for an HTML-mode text; raises EntityError where Telegram would."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self.open: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag not in _TAGS:
            raise EntityError(f'Unsupported start tag "{tag}"')
        self.open.append(tag)

    def handle_endtag(self, tag: str) -> None:
        if not self.open or self.open.pop() != tag:
            raise EntityError(f'Unexpected end tag "{tag}"')

    def handle_data(self, data: str) -> None:
        self.parts.append(data)


def visible_text(text: str, parse_mode: str | None) -> str:
    """The text as a reader sees it (tags gone, entities decoded)."""
    if (parse_mode or "").upper() != "HTML":
        return text
    if _ENTITY.search(text):
        raise EntityError("unescaped & (use &amp;)")
    parser = _Visible()
    parser.feed(text)
    parser.close()
    if parser.open:
        raise EntityError(f'Can\'t find end tag corresponding to start tag "{parser.open[-1]}"')
    return "".join(parser.parts)


def utf16_len(text: str) -> int:
    return len(text.encode("utf-16-le")) // 2
