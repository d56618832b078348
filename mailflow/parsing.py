"""Raw email bytes to `ParsedMessage`: one pure function that never raises.

The email package's compat32 policy parses about four times faster than `policy.default` (DESIGN 6),
so headers are decoded here: RFC 2047 words, undeclared 8-bit bytes, addresses, ids and dates.
"""

from __future__ import annotations

import binascii
import mimetypes
import re
from collections.abc import Callable
from datetime import UTC, datetime
from email.generator import BytesGenerator
from email.message import Message
from email.parser import BytesParser
from email.utils import getaddresses, parsedate_to_datetime
from io import BytesIO

from inboxdesk.filenames import clean_filename
from mailflow.charsets import (
    codec_name,
    decode_bytes,
    decode_header_value,
    decode_raw,
    guess_cyrillic,
    html_meta_charset,
    raw_to_bytes,
)
from mailflow.html_text import html_to_text, tidy_text
from mailflow.message import BounceInfo, MailAttachment, ParsedMessage
from mailflow.mime import Part, message_from_bytes
from mailflow.quotes import extract_new_text

_SUBJECT_PREFIX = re.compile(
    r"^\s*(?:(?:re|fwd?|aw|wg|sv|vs|tr|rv|rif|ответ|отв|пересл|переслано)\s*(?:\[\d+\]|\(\d+\)|\^\d+)?"
    r"\s*[:：]\s*)+",
    re.IGNORECASE,
)
_SIMPLE_ADDRESS = re.compile(
    r'\s*(?:([^<>",;:()\\@\[\]]*?)\s*<([^<>",;:()\\\s@]+@[^<>",;:()\\\s@]+)>|([^<>",;:()\\\s@]+@[^<>",;:()\\\s@]+))\s*$'
)
# The lazy name and the spaces around it can split a run of blanks in n ways at n places: fine
# for a header line (998 characters at most), quadratic for a megabyte of spaces (issue 9).
_SIMPLE_MAX = 998
_MESSAGE_ID = re.compile(r"<([^<>]*)>")
_FROM_MAX = 4096
_ADDRESS_LIKE = re.compile(r'[^\s<>"@,;:()\[\]]+@[^\s<>"@,;:()\[\]]+')
_UNQUOTED = re.compile(r'"(?:[^"\\]|\\.)*"|\([^()]*\)')  # quoted strings and comments of a header
_MIME_HEADER_LINE = re.compile(r"(?:content-[\w-]+|mime-version):", re.IGNORECASE)
_WHITESPACE = re.compile(r"\s+")
_CONTROL = re.compile(r"[\x01-\x1f\x7f]")
_ADDRESS_HEADERS = ("from", "to", "cc", "reply-to")
_UUENCODE = {"x-uuencode", "uuencode", "uue", "x-uue"}
_MAX_DEPTH = 30  # nested multiparts deeper than this are hostile, not mail
# Stable extensions for names we make up: the system mime.types differs from machine to machine.
_EXTENSIONS = {
    "text/plain": ".txt", "text/html": ".html", "image/jpeg": ".jpg", "image/png": ".png",
    "image/gif": ".gif", "application/pdf": ".pdf", "application/octet-stream": ".bin",
    "message/rfc822": ".eml", "message/delivery-status": ".txt", "text/rfc822-headers": ".txt",
    "message/disposition-notification": ".txt", "application/pgp-signature": ".asc",
    "application/pkcs7-signature": ".p7s", "application/zip": ".zip", "application/msword": ".doc",
    "application/x-7z-compressed": ".7z", "application/x-rar-compressed": ".rar",
    "application/vnd.openxmlformats-officedocument.wordprocessingml.document": ".docx",
    "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet": ".xlsx",
    "application/vnd.ms-excel": ".xls", "text/calendar": ".ics", "text/csv": ".csv",
}
_mime_types = mimetypes.MimeTypes()


# The parse stage's budget per message (issue 9): time and memory grow linearly with the size,
# so bounding the size bounds both. A bigger letter is recorded whole and read for its headers
# only, with the reason on its record; staff find the raw bytes there.
MAX_PARSE_BYTES = 64 * 1024 * 1024


class MessageTooBig(Exception):
    """A letter over MAX_PARSE_BYTES."""


def clean_subject(subject: str) -> str:
    """The subject without leading reply/forward prefixes (Re:, Fwd:, AW:, Ответ:, RE[2]:, Пересл:)."""
    return _SUBJECT_PREFIX.sub("", subject or "").strip()


def parse_message(raw: bytes) -> ParsedMessage:
    """Parse raw RFC 5322 bytes; malformed input gives a best-effort result listing `defects`.

    A body the parser cannot take apart (1,000 nested parts, an attached letter that breaks the
    email package) still leaves its headers and a crude text: the sender and subject are read,
    and the defect is recorded (issue 9).
    """
    if len(raw) > MAX_PARSE_BYTES:  # the parse stage's budget: beyond it, the headers only
        return _parse(raw, broken=MessageTooBig(f"{len(raw) // (1024 * 1024)} MB"))
    try:
        return _parse(raw)
    except Exception as exc:  # the pipeline must survive any input; record why and keep the text
        try:
            return _parse(raw, broken=exc)
        except Exception:
            return _unparseable(raw, exc)


def _unparseable(raw: object, exc: Exception) -> ParsedMessage:
    data = raw if isinstance(raw, bytes) else b""
    text, _ = decode_bytes(data, None) if data else ("", None)
    text = text.replace("\x00", "")
    return ParsedMessage(
        message_id=None, subject="", from_addr="", from_name="", text=text, new_text=text,
        defects=(f"unparseable:{type(exc).__name__}",),
    )


def _parse(raw: bytes, broken: Exception | None = None) -> ParsedMessage:
    if isinstance(raw, str):
        raw = raw.encode("utf-8", "surrogateescape")
    raw = bytes(raw)
    msg = message_from_bytes(raw) if broken is None else BytesParser().parsebytes(raw, headersonly=True)
    defects: list[str] = []
    raw_headers: dict[str, list[str]] = {}
    for name, value in msg.raw_items():
        raw_headers.setdefault(name.strip().lower(), []).append(value)
    hint = _charset_hint(msg, raw_headers)
    headers = {
        name: [_clean(decode_header_value(value, defects, hint)) for value in values]
        for name, values in raw_headers.items()
    }
    subject = _WHITESPACE.sub(" ", headers.get("subject", [""])[0]).strip()
    addresses = {name: _addresses(raw_headers.get(name, ()), defects, hint) for name in _ADDRESS_HEADERS}
    from_name, from_addr = addresses["from"][0] if addresses["from"] else ("", "")
    if not from_addr:
        defects.append("no-from-address")
    ambiguity = _sender_ambiguity(raw_headers.get("from", []), addresses["from"])

    body = _Body("\r\n" if b"\r\n" in raw[:4096] else "\n", hint)
    if broken is None:
        body.walk(msg, defects, 0)
    else:
        defects.append(f"unparseable-body:{type(broken).__name__}"
                       + (f" {broken}" if isinstance(broken, MessageTooBig) else ""))
        if not isinstance(broken, MessageTooBig):
            body.texts.append(_crude_text(raw, defects, hint))
    text = "\n".join(body.texts)
    html = "\n".join(body.htmls) if body.htmls else None
    if html is not None and not text.strip():
        text = html_to_text(html)
    new_text = extract_new_text(text, subject)

    return ParsedMessage(
        message_id=_first_id(raw_headers.get("message-id")),
        subject=subject,
        from_addr=from_addr,
        from_name=from_name,
        to=tuple(addr for _, addr in addresses["to"]),
        cc=tuple(addr for _, addr in addresses["cc"]),
        reply_to=tuple(addr for _, addr in addresses["reply-to"]),
        date=_date(headers.get("date"), defects),
        in_reply_to=_first_id(raw_headers.get("in-reply-to")),
        references=_ids(" ".join(raw_headers.get("references", ()))),
        headers=headers,
        content_type=msg.get_content_type(),
        text=text,
        new_text=new_text,
        html=html,
        attachments=tuple(body.attachments),
        bounce=_bounce(msg, defects),
        defects=tuple(dict.fromkeys(defects)),
        sender_ambiguity=ambiguity,
    )


def _sender_ambiguity(values: list[str], pairs: list[tuple[str, str]]) -> str:
    """Read From as DMARC and mail clients do: one header, one address, no second address hidden
    in the display name (`boss@sev.gov.ru <x@evil.example>` shows the first, mails the second)."""
    if len(values) > 1:
        return f"{len(values)} заголовка From"
    addresses = {addr.lower() for _, addr in pairs if addr}
    if len(addresses) > 1:
        return f"{len(addresses)} адреса в заголовке From"
    if values and len(values[0]) > _FROM_MAX:  # no mail client writes one; and the scans below stay short
        return f"заголовок From длиннее {_FROM_MAX} символов"
    # `ivanov@mail.ru <ivanov@mail.ru>` names one sender twice: that is no ambiguity.
    written = {a.lower() for a in _ADDRESS_LIKE.findall(_UNQUOTED.sub("", values[0]))} if values else set()
    if written - addresses:
        return "в имени отправителя записан другой адрес"
    return ""


def _crude_text(raw: bytes, defects: list[str], hint: str | None) -> str:
    """The readable lines of a body that could not be taken apart: MIME headers and boundary
    lines left out, everything else as text."""
    _, _, body = raw.replace(b"\r\n", b"\n").partition(b"\n\n")
    text, _ = decode_bytes(body, None, hint)
    kept = [line for line in text.split("\n")
            if not line.startswith("--") and not _MIME_HEADER_LINE.match(line)]
    return tidy_text("\n".join(kept).replace("\x00", ""))


def _clean(value: str) -> str:
    # NUL and control characters break databases and Telegram; folding leftovers become spaces.
    return value if value.isprintable() else _CONTROL.sub(" ", value.replace("\x00", ""))


def _split_addresses(values: list[str] | tuple[()]) -> list[tuple[str, str]]:
    unfolded = [value.replace("\r", "").replace("\n", "") for value in values]
    if len(unfolded) == 1 and len(unfolded[0]) <= _SIMPLE_MAX:
        # The common "Name <addr>" / bare address forms; getaddresses costs ~70 µs a header.
        match = _SIMPLE_ADDRESS.match(unfolded[0])
        if match:
            return [(match.group(1) or "", match.group(2) or match.group(3))]
    return getaddresses(unfolded)


def _addresses(values: list[str] | tuple[()], defects: list[str], hint: str | None) -> list[tuple[str, str]]:
    """(decoded display name, lower-cased address) pairs of address headers, empty ones dropped."""
    pairs = []
    for name, addr in _split_addresses(values):
        addr = decode_raw(addr, defects, hint).strip().lower()
        if addr:
            pairs.append((_clean(decode_header_value(name, defects, hint)).strip(), addr))
    return pairs


def _charset_hint(msg: Message, raw_headers: dict[str, list[str]]) -> str | None:
    """The charset undeclared 8-bit text in this message most likely uses, when it has raw 8-bit headers.

    All raw 8-bit header bytes together say more than one short header; failing that, Russian
    mailers that send raw headers (Outlook Express, The Bat!) use the body's declared charset.
    """
    raw8 = b" ".join(raw_to_bytes(v) for values in raw_headers.values() for v in values if not v.isascii())
    if not raw8:
        return None
    guess = guess_cyrillic(raw8)
    if guess:
        return guess
    for part in msg.walk():
        if part.get_content_maintype() == "text":
            charset = codec_name(part.get_content_charset())
            return None if charset in (None, "ascii", "utf-8") else charset
    return None


def _ids(value: str) -> tuple[str, ...]:
    """Message-IDs in canonical `<id@host>` form (whitespace from folding removed), in order, once each."""
    found = [_WHITESPACE.sub("", match) for match in _MESSAGE_ID.findall(value)]
    if not found:  # some mailers omit the brackets
        found = [token.strip("<>,;") for token in value.split() if "@" in token]
    return tuple(dict.fromkeys(f"<{mid}>" for mid in found if mid))


def _first_id(values: list[str] | None) -> str | None:
    ids = _ids(decode_raw(values[0])) if values else ()
    return ids[0] if ids else None


def _date(values: list[str] | None, defects: list[str]) -> datetime | None:
    if not values:
        return None
    try:
        parsed = parsedate_to_datetime(values[0])
    except (TypeError, ValueError, IndexError, OverflowError):
        defects.append("bad-date")
        return None
    # "-0000" means "time zone unknown"; UTC keeps every date comparable.
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


_detect_bounce: Callable[[Message], BounceInfo | None] | None = None


def _bounce(msg: Message, defects: list[str]) -> BounceInfo | None:
    global _detect_bounce
    if _detect_bounce is None:
        try:  # written alongside this module; parsing must not depend on it being importable
            from mailflow.bounces import detect_bounce
        except ImportError:
            return None
        _detect_bounce = detect_bounce
    try:
        return _detect_bounce(msg)
    except Exception as exc:  # a detector bug must not lose the message
        defects.append(f"bounce-detection-failed:{type(exc).__name__}")
        return None


class _Body:
    """Collects body text, HTML and attachments while walking the MIME tree."""

    def __init__(self, linesep: str, hint: str | None) -> None:
        self.texts: list[str] = []
        self.htmls: list[str] = []
        self.attachments: list[MailAttachment] = []
        self.linesep = linesep
        self.hint = hint

    def walk(self, part: Message, defects: list[str], depth: int) -> None:
        defects.extend(type(defect).__name__ for defect in part.defects)
        ctype = part.get_content_type()
        maintype = ctype.partition("/")[0]
        if maintype == "message":
            self._attach(part, ctype, defects)
        elif part.is_multipart():
            if depth >= _MAX_DEPTH:
                defects.append("too-deeply-nested")
                return
            for sub in part.get_payload():
                self.walk(sub, defects, depth + 1)
        elif maintype == "multipart":  # no usable boundary: the payload is all we have, read it as text
            self.texts.append(_part_text(part, "text/plain", defects, self.hint))
        elif ctype in ("text/plain", "text/html") and not _is_attachment(part):
            text = _part_text(part, ctype, defects, self.hint)
            (self.texts if ctype == "text/plain" else self.htmls).append(text)
        else:
            self._attach(part, ctype, defects)

    def _attach(self, part: Message, ctype: str, defects: list[str]) -> None:
        message = ctype.startswith("message/")
        content = _message_bytes(part, self.linesep) if message else _payload_bytes(part)
        name = _filename(part, defects, self.hint)
        if ctype == "message/rfc822":
            name = _eml_name(part, name, self.hint)
        if not name:
            extension = _EXTENSIONS.get(ctype) or _mime_types.guess_extension(ctype) or ".bin"
            name = f"attachment-{len(self.attachments) + 1}{extension}"
        disposition = part.get_content_disposition()
        inline = disposition == "inline" or (disposition is None and "content-id" in part)
        self.attachments.append(MailAttachment(name, ctype, content, inline))


def _payload_bytes(part: Message) -> bytes:
    """The part's decoded bytes; uuencoded data without its "begin" line too (Lotus Notes, Mac mail)."""
    data = part.get_payload(decode=True)
    if not isinstance(data, bytes):
        return b""
    if str(part.get("content-transfer-encoding", "")).strip().lower() in _UUENCODE:
        raw = part.get_payload(decode=False)
        if isinstance(raw, str) and data == raw_to_bytes(raw):  # the email package gave up
            lines = [line for line in data.splitlines() if line.strip() not in (b"", b"end", b"`")]
            try:
                return b"".join(binascii.a2b_uu(line) for line in lines if not line.startswith(b"begin "))
            except binascii.Error:
                pass
    return data


def _is_attachment(part: Message) -> bool:
    disposition = str(part.get("content-disposition") or "")  # a Header object when raw 8-bit
    if "name" not in disposition and "name" not in str(part.get("content-type") or ""):
        return "attachment" in disposition.lower()  # skips parameter parsing for ordinary body parts
    if part.get_content_disposition() == "attachment":
        return True
    try:
        return bool(part.get_param("filename", None, "content-disposition") or part.get_param("name"))
    except Exception:  # malformed parameter lists: treat as body text rather than lose it
        return False


def _part_text(part: Message, ctype: str, defects: list[str], hint: str | None) -> str:
    """Decoded text of a leaf part: declared charset, then detection (see charsets.decode_bytes)."""
    data = _payload_bytes(part)
    charset = part.get_content_charset()
    if not charset and ctype == "text/html":
        charset = html_meta_charset(data)
    text, note = decode_bytes(data, charset, hint)
    if note:
        defects.append(note)
    return text.replace("\r\n", "\n").replace("\r", "\n").replace("\x00", "")


def _filename(part: Message, defects: list[str], hint: str | None) -> str | None:
    """The part's file name: Content-Disposition filename, else Content-Type name; RFC 2231 or 2047."""
    for header, param in (("content-disposition", "filename"), ("content-type", "name")):
        try:
            value = part.get_param(param, None, header)
        except Exception:  # malformed parameter lists
            defects.append("bad-filename-parameter")
            continue
        if not value:
            continue
        if isinstance(value, tuple):  # RFC 2231: (charset, language, text whose code points are bytes)
            charset, _, encoded = value
            data = encoded.encode("latin-1", "surrogateescape")
            text, note = decode_bytes(data, charset or None, hint)
            if note:
                defects.append("filename-" + note)
        else:
            text = decode_header_value(value.strip('"'), defects, hint)  # Outlook quotes RFC 2047 words
        name = _safe_name(text)
        if name:
            return name
    return None


def _safe_name(name: str) -> str:
    return clean_filename(name)


def _eml_name(part: Message, name: str | None, hint: str | None) -> str:
    """An attached letter's file name: its own, else its subject (as RT and Outlook do), with .eml."""
    if not name:
        inner = part.get_payload()
        subject = ""
        if isinstance(inner, list) and inner and isinstance(inner[0], Message):
            raw = [value for key, value in inner[0].raw_items() if key.lower() == "subject"]
            subject = decode_header_value(raw[0], None, hint) if raw else ""
        name = _safe_name(subject)[:120]
        if not name:
            return ""
    return name if name.lower().endswith(".eml") else name + ".eml"


def _message_bytes(part: Message, linesep: str) -> bytes:
    """The bytes of an attached message (or delivery-status) part: as sent, or re-serialised."""
    if isinstance(part, Part) and part.raw_body is not None:
        return part.raw_body
    payload = part.get_payload()
    if not isinstance(payload, list):  # not parsed as a message: bytes as they are
        return _payload_bytes(part)
    buffer = BytesIO()
    generator = BytesGenerator(buffer, mangle_from_=False, maxheaderlen=0)
    if part.get_content_type() == "message/rfc822" and len(payload) == 1:
        generator.flatten(payload[0], linesep=linesep)
        return buffer.getvalue()
    generator.flatten(part, linesep=linesep)  # delivery-status: header blocks; keep the body only
    return buffer.getvalue().partition((linesep * 2).encode("ascii"))[2]
