"""Readable text from HTML-only mail, via inscriptis (keeps tables and lists legible)."""

from __future__ import annotations

import html as html_lib
import re
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from inscriptis.model.config import ParserConfig

_BLANK_RUNS = re.compile(r"\n{3,}")
# The fallback sees hostile text: a tag ends at the next `>` or gives up at the next `<`, so no
# `<` rescans the rest of the document (1,100,000 of them took 12 minutes; issue 9). Scripts,
# styles and comments are cut by `_drop_raw` with `str.find`, also in one pass.
_TAG = re.compile(r"<[^<>]*>")
_BREAKS = re.compile(r"<[ \t]*(br|/p|/div|/tr|/li|/h\d)\b[^<>]*>", re.IGNORECASE)
_RAW_OPEN = re.compile(r"<!--|<(script|style)\b", re.IGNORECASE)
# Bidi and zero-width marks Outlook and Windows Mail sprinkle into dates and names.
_INVISIBLE = re.compile("[\u200b-\u200f\ufeff\x00]")
_INSCRIPTIS_LIMIT = 1 << 20  # characters
_config: ParserConfig | None = None


def _inscriptis_config() -> ParserConfig:
    # Built lazily: importing inscriptis and lxml is noticeable at start-up.
    global _config
    if _config is None:
        from inscriptis.css_profiles import CSS_PROFILES
        from inscriptis.model.config import ParserConfig

        # "strict" adds no decorative indentation, so quote headers stay at the start of lines.
        _config = ParserConfig(css=CSS_PROFILES["strict"])
    return _config


def tidy_text(text: str) -> str:
    """Normalise line ends, drop invisible marks and trailing spaces, squeeze blank-line runs."""
    text = _INVISIBLE.sub("", text.replace("\r\n", "\n").replace("\r", "\n"))
    text = "\n".join(line.rstrip() for line in text.split("\n"))
    return _BLANK_RUNS.sub("\n\n", text).strip("\n")


def html_to_text(html: str) -> str:
    """Readable plain text of an HTML document; never raises (falls back to stripping tags)."""
    if not html.strip():
        return ""
    if len(html) > _INSCRIPTIS_LIMIT:  # inscriptis is pure Python: megabytes would stall intake
        return tidy_text(_strip_tags(html))
    try:
        from inscriptis import get_text

        text = get_text(html, _inscriptis_config())
    except Exception:  # lxml refuses some broken documents; a crude text is better than none
        text = _strip_tags(html)
    return tidy_text(text)


def _strip_tags(html: str) -> str:
    """Crude text of `html` in time linear in its length."""
    return html_lib.unescape(_TAG.sub("", _BREAKS.sub("\n", _drop_raw(html))))


def _drop_raw(html: str) -> str:
    """`html` without comments, scripts and styles; one left open runs to the end, as in a browser."""
    lower = html.lower()
    kept, pos = [], 0
    while match := _RAW_OPEN.search(html, pos):
        kept.append(html[pos:match.start()])
        end_tag = "-->" if match.group(1) is None else f"</{match.group(1).lower()}"
        end = lower.find(end_tag, match.end())
        if end < 0:
            return "".join(kept)
        pos = end + len(end_tag)
        if end_tag != "-->":
            close = html.find(">", pos)
            pos = len(html) if close < 0 else close + 1
    kept.append(html[pos:])
    return "".join(kept)
