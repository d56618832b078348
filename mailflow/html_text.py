"""Readable text from HTML-only mail, via inscriptis (keeps tables and lists legible)."""

from __future__ import annotations

import html as html_lib
import re
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from inscriptis.model.config import ParserConfig

_BLANK_RUNS = re.compile(r"\n{3,}")
_TAGS = re.compile(r"<(script|style)\b.*?</\1\s*>|<!--.*?-->|<[^>]*>", re.IGNORECASE | re.DOTALL)
_BREAKS = re.compile(r"<\s*(br|/p|/div|/tr|/li|/h\d)\b[^>]*>", re.IGNORECASE)
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
        return tidy_text(html_lib.unescape(_TAGS.sub("", _BREAKS.sub("\n", html))))
    try:
        from inscriptis import get_text

        text = get_text(html, _inscriptis_config())
    except Exception:  # lxml refuses some broken documents; a crude text is better than none
        text = html_lib.unescape(_TAGS.sub("", _BREAKS.sub("\n", html)))
    return tidy_text(text)
