"""Turning mail bytes into text: declared charsets first, then a cheap Cyrillic guess, then detection.

Russian mail arrives in utf-8, windows-1251, KOI8-R and (from old DOS-era systems) cp866, often
undeclared or mislabelled. A byte histogram scored against Russian letter frequencies tells these
apart in microseconds; `charset-normalizer` is only asked when that fails, because it is slow.
"""

from __future__ import annotations

import binascii
import codecs
import math
import re
from functools import lru_cache

# Russian letter frequencies (per cent, National Corpus of Russian); used as log-likelihoods.
_RU_FREQ = {
    "о": 10.97, "е": 8.45, "а": 8.01, "и": 7.35, "н": 6.70, "т": 6.26, "с": 5.47, "р": 4.73,
    "в": 4.54, "л": 4.40, "к": 3.49, "м": 3.21, "д": 2.98, "п": 2.81, "у": 2.62, "я": 2.01,
    "ы": 1.90, "ь": 1.74, "г": 1.70, "з": 1.65, "б": 1.59, "ч": 1.44, "й": 1.21, "х": 0.97,
    "ж": 0.94, "ш": 0.73, "ю": 0.64, "ц": 0.48, "щ": 0.36, "э": 0.32, "ф": 0.26, "ъ": 0.04,
    "ё": 0.04,
}
# Capitals are real (sentence starts, "МИАЦ") but rare; a wrong KOI8-R/1251 guess is mostly capitals.
_CAPITAL_PENALTY = math.log(0.06)
# Typographic characters that honest Russian text contains in single-byte charsets.
_PUNCTUATION = set("«»—–№…„“”‘’•·\xa0°§©®™")
_PUNCTUATION_WEIGHT = math.log(0.02)
_UNLIKELY_WEIGHT = math.log(0.00001)  # box drawing, Latin-1 symbols, control characters
# Mean log-likelihood per non-ASCII byte above which a candidate is accepted as Russian text.
_RUSSIAN_THRESHOLD = -4.6
_CONFIDENT = -4.2  # a declared Cyrillic charset scoring this well is not second-guessed

CYRILLIC_CANDIDATES = ("cp1251", "koi8-r", "cp866")
# Declared charsets that Russian mailers wrongly stamp on windows-1251/KOI8-R bytes.
_LATIN_DEFAULTS = {"ascii", "latin-1", "iso8859-1", "cp1252", "iso8859-15"}
_ALIASES = {
    "win-1251": "cp1251", "x-cp1251": "cp1251", "windows1251": "cp1251", "cp-1251": "cp1251",
    "win1251": "cp1251", "x-mac-cyrillic": "mac-cyrillic", "koi8r": "koi8-r", "koi-8r": "koi8-r",
    "ks_c_5601-1987": "cp949", "x-sjis": "shift_jis", "gb2312": "gb18030", "gbk": "gb18030",
    "iso-8859-8-i": "iso8859-8", "utf8mb4": "utf-8", "x-user-defined": "",
    "unknown-8bit": "", "x-unknown": "", "unknown": "", "default": "", "none": "", "us-ascii": "ascii",
}
_SAMPLE = 4096  # bytes; enough to tell the candidates apart, cheap to score
_META_CHARSET = re.compile(rb"""<meta[^>]{0,200}?charset\s*=\s*["']?\s*([\w.:-]+)""", re.IGNORECASE)


def _char_weight(ch: str) -> float:
    low = ch.lower()
    if low in _RU_FREQ:
        weight = math.log(_RU_FREQ[low] / 100)
        return weight if ch == low else weight + _CAPITAL_PENALTY
    if ch in _PUNCTUATION:
        return _PUNCTUATION_WEIGHT
    return _UNLIKELY_WEIGHT


def _score_table(codec: str) -> bytes:
    # Tenths of a nat as one byte per input byte, so scoring is bytes.translate + sum, both in C.
    weights = (_char_weight(bytes([b]).decode(codec, "replace")) for b in range(256))
    return bytes(min(255, round(-weight * 10)) for weight in weights)


_SCORE_TABLES = {codec: _score_table(codec) for codec in CYRILLIC_CANDIDATES}
_ASCII_BYTES = bytes(range(0x80))
_MIXED_WORD = re.compile(rb"[A-Za-z][\x80-\xff]|[\x80-\xff][A-Za-z]")
_ASCII_LETTERS = bytes(range(ord("A"), ord("Z") + 1)) + bytes(range(ord("a"), ord("z") + 1))


@lru_cache(maxsize=256)
def codec_name(charset: str | None) -> str | None:
    """Python's codec name for a MIME charset label, or None when unknown or meaningless."""
    if not charset:
        return None
    label = charset.strip().strip("\"'").lower().partition("*")[0]  # RFC 2231 "utf-8*ru"
    label = _ALIASES.get(label, label)
    if not label:
        return None
    try:
        info = codecs.lookup(label)
    except (LookupError, ValueError):
        return None
    # Codecs that are not text encodings (base64, rot13, zlib) must never be applied to mail.
    return info.name if getattr(info, "_is_text_encoding", True) and info.name != "rot-13" else None


def _high_sample(data: bytes) -> bytes:
    high = data[:_SAMPLE].translate(None, _ASCII_BYTES)
    if len(high) < 256 and len(data) > _SAMPLE:  # mostly-ASCII text (logs, URLs): look further
        high = data[: 8 * _SAMPLE].translate(None, _ASCII_BYTES)
    return high[:1024]


def cyrillic_scores(data: bytes) -> dict[str, float]:
    """Mean log-likelihood of Russian text per non-ASCII byte, for each single-byte candidate."""
    high = _high_sample(data)
    if not high:
        return {codec: 0.0 for codec in CYRILLIC_CANDIDATES}
    return {codec: -sum(high.translate(table)) / (10 * len(high)) for codec, table in _SCORE_TABLES.items()}


def guess_cyrillic(data: bytes, hint: str | None = None) -> str | None:
    """The single-byte Cyrillic charset these bytes are most plausibly Russian text in, or None.

    `hint` (what the rest of the message uses) wins unless another candidate is clearly better:
    short all-capital words ("ТЕСТ") read as Russian in both KOI8-R and windows-1251.
    """
    sample = data[:_SAMPLE]
    # Accented Latin ("Håvard") has high bytes inside ASCII words; Russian words are all high bytes.
    if 2 * len(_MIXED_WORD.findall(sample)) > len(sample.translate(None, _ASCII_BYTES)):
        return None
    scores = cyrillic_scores(data)
    best = max(scores, key=scores.__getitem__)
    if scores[best] < _RUSSIAN_THRESHOLD:
        return None
    if hint in scores and scores[hint] >= scores[best] - 1.5:
        return hint
    return best


def detect_charset(data: bytes, hint: str | None = None) -> str | None:
    """Best guess for undeclared bytes: ASCII, utf-8, a Cyrillic single-byte set, the hint, else a detector.

    `hint` is the charset the rest of the message uses (declared on the body, or guessed from all
    raw headers together); it settles short texts that no detector can judge.
    """
    if data.isascii():
        return "ascii"
    if _is_utf8(data):
        return "utf-8"
    guess = guess_cyrillic(data, hint)
    if guess:
        return guess
    if hint and hint not in CYRILLIC_CANDIDATES:
        try:
            data.decode(hint)
            return hint
        except (UnicodeDecodeError, LookupError):
            pass
    if len(data) < 256:  # charset-normalizer guesses wildly on a name or a subject (cp1006 for "Håvard")
        return "cp1252" if _decodes(data, "cp1252") else "latin-1"
    try:
        from charset_normalizer import from_bytes

        best = from_bytes(data[: 8 * _SAMPLE]).best()
    except Exception:  # a detector bug must not lose the message
        return None
    return codec_name(best.encoding) if best is not None else None


def _decodes(data: bytes, codec: str) -> bool:
    try:
        data.decode(codec)
    except UnicodeDecodeError:
        return False
    return True


def _is_utf8(data: bytes) -> bool:
    return _decodes(data, "utf-8")


def _mislabelled(data: bytes, codec: str) -> str | None:
    """A better charset when bytes decoded fine with `codec` but are plainly another one."""
    high = _high_sample(data)
    if len(high) < 4:
        return None
    table = _SCORE_TABLES.get(codec)
    if table is not None:
        own = -sum(high.translate(table)) / (10 * len(high))
        if own >= _CONFIDENT:  # the usual case: reads as Russian already, nothing to compare
            return None
    elif codec in _LATIN_DEFAULTS:
        sample = data[:_SAMPLE]
        letters = len(sample) - len(sample.translate(None, _ASCII_LETTERS))
        # Western text has a few accented letters among ASCII ones; Russian has mostly high bytes.
        if len(high) / (len(high) + letters) < 0.25:
            return None
    else:
        return None
    if _is_utf8(data):  # valid utf-8 with many high bytes is utf-8: single-byte text almost never is
        return "utf-8"
    scores = cyrillic_scores(data)
    best = max(scores, key=scores.__getitem__)
    if best == codec or scores[best] < _RUSSIAN_THRESHOLD:
        return None
    # A clear margin only: short mixed texts must not flip between KOI8-R and 1251.
    return best if table is None or scores[best] - scores[codec] > 1.5 else None


def _mostly_utf8(data: bytes) -> str | None:
    """utf-8 with a cut-off last character or a rare broken sequence, decoded with replacements."""
    for cut in (1, 2, 3):  # headers and bodies truncated by length limits end mid-character
        head = data[:-cut]
        if not head.isascii() and _is_utf8(head):
            return head.decode("utf-8") + "\ufffd"
    text = data.decode("utf-8", "replace")
    return text if text.count("\ufffd") * 50 < len(_high_sample(data)) else None


def _ascii_compatible(codec: str | None) -> bool:
    # 7-bit encodings that give ASCII bytes another meaning.
    return not codec or not (codec.startswith(("iso2022", "utf-16", "utf-32", "utf-7", "hz", "cp0")))


def decode_bytes(data: bytes, declared: str | None, hint: str | None = None) -> tuple[str, str | None]:
    """Decode `data`, trusting `declared` unless it fails or is plainly wrong.

    Returns the text and a defect note ("charset-detected:koi8-r", "charset-mislabelled:...")
    when the declared charset was not used as is. `hint` is the charset the rest of the message
    appears to use, preferred among close guesses.
    """
    codec = codec_name(declared)
    if data.isascii() and _ascii_compatible(codec):
        return data.decode("ascii"), None
    if codec:
        try:
            text = data.decode(codec)
        except (UnicodeDecodeError, LookupError):
            text = None
        if text is not None:
            better = _mislabelled(data, codec)
            if not better:
                return text, None
            return data.decode(better, "replace"), f"charset-mislabelled:{codec}->{better}"
        if codec == "utf-8":
            text = _mostly_utf8(data)
            if text is not None:
                return text, "charset-errors:utf-8"
    detected = detect_charset(data, hint)
    if detected:
        note = "charset-detected" if not codec else f"charset-invalid:{codec}->detected"
        try:  # detection saw a sample; a stray byte further on costs one character, not the text
            return data.decode(detected, "replace"), f"{note}:{detected}"
        except LookupError:
            pass
    fallback = codec or "utf-8"
    return data.decode(fallback, "replace"), f"charset-undetectable:{fallback}"


def html_meta_charset(data: bytes) -> str | None:
    """The charset an HTML document declares in its own <meta> tag, if any."""
    match = _META_CHARSET.search(data[:4096])
    return match.group(1).decode("ascii", "replace") if match else None


# RFC 2047 encoded-word; tolerant of lower-case, empty text and RFC 2231 "*lang" suffixes.
_ENCODED_WORD = re.compile(r"=\?([^?\s]+)\?([bBqQ])\?([^?]*?)\?=")
_SURROGATES = re.compile("[\udc80-\udcff]")


def raw_to_bytes(value: str) -> bytes:
    """The original bytes of a header or payload string the email package read with surrogateescape."""
    return value.encode("utf-8", "surrogateescape")


def decode_raw(value: str, defects: list[str] | None = None, hint: str | None = None) -> str:
    """Text from a string that may carry undeclared 8-bit bytes (as surrogates)."""
    if value.isascii() or not _SURROGATES.search(value):
        return value
    text, note = decode_bytes(raw_to_bytes(value), None, hint)
    if note and defects is not None:
        defects.append("header-" + note)
    return text


def _word_bytes(encoding: str, payload: str) -> bytes:
    data = raw_to_bytes(payload)
    if encoding in "qQ":
        return binascii.a2b_qp(data, header=True)
    try:  # the lenient decoder skips stray characters; extra "=" makes up for lost padding
        return binascii.a2b_base64(data + b"===")
    except binascii.Error:  # a dangling sextet carries no whole byte: drop it
        data = re.sub(rb"[^A-Za-z0-9+/]", b"", data)
        return binascii.a2b_base64(data[: len(data) - len(data) % 4 or None] + b"===")


def unfold(value: str) -> str:
    """A header value on one line: folding line breaks removed, the whitespace after them kept."""
    if "\n" not in value and "\r" not in value:
        return value
    return value.replace("\r\n", "\n").replace("\r", "\n").replace("\n", "").strip("\n")


def decode_header_value(value: str, defects: list[str] | None = None, hint: str | None = None) -> str:
    """Unfold a raw header value and decode its RFC 2047 words and any undeclared 8-bit bytes."""
    value = unfold(value)
    if "=?" not in value:
        return value if value.isascii() else decode_raw(value, defects, hint)
    out: list[str] = []
    # Adjacent words in one charset are joined before decoding: senders split multi-byte characters.
    pending: list[bytes] = []
    pending_charset = ""
    after_word = False
    pos = 0
    for match in _ENCODED_WORD.finditer(value):
        gap = value[pos : match.start()]
        pos = match.end()
        charset, encoding, payload = match.groups()
        # Whitespace between two encoded words is folding, not content (RFC 2047 section 6.2).
        if gap and not (after_word and gap.isspace()):
            _flush(out, pending, pending_charset, defects)
            out.append(decode_raw(gap, defects, hint))
        try:
            data = _word_bytes(encoding, payload)
        except (ValueError, binascii.Error):
            if defects is not None:
                defects.append("header-bad-encoded-word")
            _flush(out, pending, pending_charset, defects)
            out.append(decode_raw(match.group(0), defects, hint))
            after_word = False
            continue
        if pending and charset.lower() != pending_charset.lower():
            _flush(out, pending, pending_charset, defects)
        pending.append(data)
        pending_charset = charset
        after_word = True
    _flush(out, pending, pending_charset, defects)
    if pos < len(value):
        out.append(decode_raw(value[pos:], defects, hint))
    return "".join(out)


def _flush(out: list[str], pending: list[bytes], charset: str, defects: list[str] | None) -> None:
    if pending:
        text, note = decode_bytes(b"".join(pending), charset)
        if note and defects is not None:
            defects.append("header-" + note)
        out.append(text)
        pending.clear()
