"""Separating a reply's new text from the quoted history below (or, rarely, above) it.

Conservative by design: a user's new words lost is worse than a quote kept, so text is cut only at
a recognised quote header with something written before it. English and other European headers
come from `mail-parser-reply`; Russian clients (Outlook-ru, Thunderbird-ru, Yandex, Mail.ru,
Gmail-ru, Apple Mail-ru) are recognised here.
"""

from __future__ import annotations

import re
from re import Pattern

_FORWARD_SUBJECT = re.compile(r"^\s*(?:fwd?|пересл|переслано|tr|wg|rv)\s*(?:\[\d+\])?\s*:", re.IGNORECASE)

# "-----Original Message-----", "-------- Пересылаемое сообщение --------",
# Apple's "Begin forwarded message:".
_SEPARATOR = re.compile(
    r"^[ \t>]*(?:[-_=*]{2,}[ \t]*(?:original message|исходное сообщение|оригинальное сообщение|"
    r"пересылаемое сообщение|начало пересылаемого сообщения|перенаправленное сообщение|"
    r"переадресованное сообщение|forwarded message|ursprüngliche nachricht|message d'origine)"
    r"[ \t]*[-_=*]*|(?:begin forwarded message|начало переадресованного сообщения)[ \t]*:)[ \t]*$",
    re.IGNORECASE | re.MULTILINE,
)
# Attribution lines: "On …, Ivan wrote:", "22.11.2026 10:15, Иванов И.И. пишет:", Apple-ru "… написал(а):",
# Yandex "22.11.2026, 10:15, "Иванов И.И." <ivanov@sev.gov.ru>:", Gmail-ru "пн, 22 нояб. 2026 г. в
# 10:15, Иван <ivanov@sev.gov.ru>:", Mail.ru "Понедельник, 22 ноября 2026, 10:15 +03:00 от Иван <…>:".
# Only lines ending in a colon are candidates, so the scan stays cheap on long bodies.
_COLON_AT_END = re.compile(r":[ \t]*$", re.MULTILINE)
_WROTE = re.compile(
    r"[^>].{0,250}?(?:wrote|пишет|написал(?:\(а\)|а)?|schrieb|a écrit|escribió|ha scritto)\s*:\s*$",
    re.IGNORECASE,
)
_DATED_ADDRESS = re.compile(r"[^>].{0,200}?\d{1,2}[:.]\d{2}.{0,200}?<\s*[^<>@\s]+@[^<>\s]+\s*>\)?\s*:\s*$")
_DATE_OR_ADDRESS = re.compile(r"\d|@")
_TIME = re.compile(r"\d{1,2}:\d{2}")
# Outlook-style header blocks: "От: … / Отправлено: … / Кому: … / Тема: …" (also bold "*From:*").
_HEADER_LINE = re.compile(
    r"^[ \t>*]*(from|от|von|de|sent|отправлено|date|дата|gesendet|datum|envoyé|to|кому|an|à|subject|тема|"
    r"betreff|objet|cc|копия)[ \t*]*:",
    re.IGNORECASE | re.MULTILINE,
)
_HEADER_KIND = {
    "from": "from", "от": "from", "von": "from", "de": "from",
    "sent": "date", "отправлено": "date", "date": "date", "дата": "date", "gesendet": "date", "datum": "date",
    "envoyé": "date",
    "to": "to", "кому": "to", "an": "to", "à": "to", "subject": "to", "тема": "to", "betreff": "to",
    "objet": "to", "cc": "cc", "копия": "cc",
}
_QUOTE_ATTRIBUTION_HINT = re.compile(r"\d|@|wrote|пишет|написал", re.IGNORECASE)
_LIBRARY_LANGUAGES = ("en", "de", "fr", "es", "it", "nl", "pl", "cs")
_library_patterns: list[Pattern[str]] | None = None


def is_forward(subject: str) -> bool:
    """True when the subject marks a forward (Fwd:, Fw:, Пересл:), whose quoted part is the content."""
    return bool(_FORWARD_SUBJECT.match(subject or ""))


def _library_attributions() -> list[Pattern[str]]:
    # mail-parser-reply's per-language "wrote" headers; its whole-body regex is too slow for 24 KiB
    # bodies (milliseconds), so only its line patterns are reused, on candidate lines.
    global _library_patterns
    if _library_patterns is None:
        try:
            from mailparser_reply.constants import MAIL_LANGUAGES

            _library_patterns = [
                re.compile(MAIL_LANGUAGES[lang]["wrote_header"], re.IGNORECASE | re.MULTILINE)
                for lang in _LIBRARY_LANGUAGES
                if "wrote_header" in MAIL_LANGUAGES.get(lang, {})
            ]
        except Exception:  # the library is an aid, not a dependency of correctness
            _library_patterns = []
    return _library_patterns


def _is_attribution(line: str) -> bool:
    # Attributions are short; the length cap also keeps the library's nested patterns linear.
    if len(line) > 400 or line.lstrip().startswith(">") or not _DATE_OR_ADDRESS.search(line):
        return False
    if _WROTE.match(line) or _DATED_ADDRESS.match(line):
        return True
    return any(pattern.search(line) for pattern in _library_attributions())


def _line_of(text: str, pos: int) -> int:
    return text.count("\n", 0, pos)


def _outlook_block(text: str, lines: list[str]) -> int | None:
    """Line index where the first From/Sent/To header block starts, if there is one."""
    for match in _HEADER_LINE.finditer(text):
        first = _line_of(text, match.start())
        kinds: set[str] = set()
        for line in lines[first : first + 8]:
            found = _HEADER_LINE.match(line)
            if found:
                kinds.add(_HEADER_KIND[found.group(1).lower()])
            elif line.strip() and len(kinds) < 3:
                break  # a header block is contiguous (blank lines aside)
        if {"from", "date", "to"} <= kinds or ({"from", "to"} <= kinds and len(kinds) >= 3):
            return first
    return None


def _line_bounds(text: str, pos: int) -> tuple[int, str]:
    start = text.rfind("\n", 0, pos) + 1
    end = text.find("\n", pos)
    return start, text[start : end if end >= 0 else len(text)]


def _attribution(text: str) -> int | None:
    """Line index of the first attribution line ("…wrote:", "…<address>:") with a date or address."""
    for match in _COLON_AT_END.finditer(text):
        start, line = _line_bounds(text, match.start())
        previous_start, previous = _line_bounds(text, start - 1) if start else (0, "")
        # Gmail wraps long attributions: "…, Иван Иванов <\nivanov@sev.gov.ru>:" spans two lines.
        wrapped = bool(previous.strip()) and not previous.rstrip().endswith((".", "!", "?", ":"))
        if _is_attribution(line):
            return _line_of(text, previous_start if wrapped and _TIME.search(previous) else start)
        if wrapped and _is_attribution(previous.rstrip() + " " + line.strip()):
            return _line_of(text, previous_start)
    return None


def _first_header(text: str, lines: list[str]) -> int | None:
    """Line index of the earliest recognised quote header, or None."""
    found: list[int] = []
    match = _SEPARATOR.search(text)
    if match:
        found.append(_line_of(text, match.start()))
    for index in (_attribution(text), _outlook_block(text, lines)):
        if index is not None:
            found.append(index)
    return min(found) if found else None


def _is_quoted(line: str) -> bool:
    return line.lstrip().startswith(">")


def _drop_trailing_quote(lines: list[str]) -> list[str]:
    """Without the final block of "> " lines and the attribution line just above it."""
    end = len(lines)
    while end and not lines[end - 1].strip():
        end -= 1
    start = end
    while start and (_is_quoted(lines[start - 1]) or not lines[start - 1].strip()):
        start -= 1
    if start == end or not any(_is_quoted(line) for line in lines[start:end]):
        return lines[:end]
    head = start
    if head and lines[head - 1].rstrip().endswith(":") and _QUOTE_ATTRIBUTION_HINT.search(lines[head - 1]):
        head -= 1
    return lines[:head] if any(line.strip() for line in lines[:head]) else lines[:end]


def _drop_leading_quote(lines: list[str]) -> list[str]:
    """Bottom-posting (quote first, answer below): drop the quote when it is the only one."""
    i = 0
    while i < len(lines) and not lines[i].strip():
        i += 1
    if i < len(lines) and not _is_quoted(lines[i]) and i + 1 < len(lines) and _is_quoted(lines[i + 1]):
        if not (lines[i].rstrip().endswith(":") and _QUOTE_ATTRIBUTION_HINT.search(lines[i])):
            return lines
        i += 1
    if i >= len(lines) or not _is_quoted(lines[i]):
        return lines
    while i < len(lines) and (_is_quoted(lines[i]) or not lines[i].strip()):
        i += 1
    rest = lines[i:]
    # Interleaved answers keep their quotes: without them the answers lose their questions.
    if any(_is_quoted(line) for line in rest) or not any(line.strip() for line in rest):
        return lines
    return rest


def extract_new_text(text: str, subject: str = "") -> str:
    """The reply's own text without quoted history; the whole text for forwards or when unsure."""
    if not text.strip() or is_forward(subject):
        return text
    lines = text.split("\n")
    cut = _first_header(text, lines)
    if cut is not None and any(line.strip() for line in lines[:cut]):
        lines = lines[:cut]
        # An Outlook rule line ("_____") or a lone "--" right above the header belongs to the quote.
        while lines and (not lines[-1].strip() or set(lines[-1].strip()) <= set("_-=")):
            lines.pop()
    kept = _drop_leading_quote(_drop_trailing_quote(lines))
    result = "\n".join(kept).strip("\n")
    if not result.strip() or result == text.strip("\n"):  # nothing (sure) to remove: the text as it came
        return text
    return result
