"""A fast path to the same compat32 `Message` tree `email.message_from_bytes` builds.

The stdlib FeedParser walks a message line by line in Python (~0.9 ms for a 24 KiB letter with
a base64 attachment, most of the parsing budget). Well-formed MIME can be cut at its boundaries
with C-speed searches instead. Anything unusual (missing separators or close boundaries, malformed
header lines, digests, bare CR line ends) falls back to the stdlib parser, so the result is
always the tree the email package would have produced; tests compare the two.
"""

from __future__ import annotations

import email
import re
from collections.abc import Iterator
from email.message import Message

_HEADER_LINE = re.compile(rb"[\041-\071\073-\176]+:|[ \t]")
_END_OF_HEAD = re.compile(rb"\n(?:\r\n|\n)")
_DELIMITER_TAIL = re.compile(rb"(--)?[ \t]*(?:\r\n|\n|\Z)")
_MAX_DEPTH = 20


class Part(Message):
    """A message or body part built by the fast path.

    `raw_body` holds the exact bytes of an attached letter (message/* parts), so it can be stored
    byte for byte; re-serialising the parsed letter would change whitespace in its headers.
    """

    raw_body: bytes | None = None


class _Unusual(Exception):
    """The input needs the stdlib parser's handling of malformed or rare structure."""


def message_from_bytes(raw: bytes) -> Message:
    """Parse `raw` into the compat32 tree `email.message_from_bytes` builds (of `Part`s when fast)."""
    if raw.count(b"\r") == raw.count(b"\r\n"):  # bare CR line ends are the FeedParser's business
        try:
            return _build(raw, (), 0)
        except Exception:  # _Unusual, or any surprise: the stdlib parser has the last word
            pass
    return email.message_from_bytes(raw)


def _text(data: bytes) -> str:
    return data.decode("ascii", "surrogateescape")


def _split_head(data: bytes) -> tuple[list[bytes], bytes]:
    """Header lines (with their line ends) and the body after the first empty line."""
    for eol in (b"\r\n", b"\n"):
        if data.startswith(eol):
            return [], data[len(eol) :]
    match = _END_OF_HEAD.search(data)
    if match is None:
        raise _Unusual("no header/body separator")
    return data[: match.start() + 1].splitlines(keepends=True), data[match.end() :]


def _headers(msg: Message, lines: list[bytes]) -> None:
    if lines and lines[0].startswith(b"From "):  # mbox envelope line
        msg.set_unixfrom(_strip_eol(_text(lines[0])))
        lines = lines[1:]
    current: list[str] = []
    for line in lines:
        if not _HEADER_LINE.match(line):
            raise _Unusual("not a header line")
        if line[:1] in b" \t":
            if not current:
                raise _Unusual("continuation without a header")
            current.append(_text(line))
            continue
        if current:
            msg.set_raw(*msg.policy.header_source_parse(current))
        current = [_text(line)]
    if current:
        msg.set_raw(*msg.policy.header_source_parse(current))


def _strip_eol(text: str) -> str:
    # RFC 2046: the line end before a boundary belongs to the boundary.
    if text.endswith("\r\n"):
        return text[:-2]
    return text[:-1] if text.endswith("\n") else text


def _strip_eol_bytes(data: bytes) -> bytes:
    if data.endswith(b"\r\n"):
        return data[:-2]
    return data[:-1] if data.endswith(b"\n") else data


def _delimiters(body: bytes, separator: bytes) -> Iterator[tuple[int, int, bool]]:
    """(start, end, is_close) of each "--boundary" line; bytes.find keeps the scan in C."""
    needle = b"--" + separator
    start = 0 if body.startswith(needle) else body.find(b"\n" + needle) + 1
    while start >= 0 and (start > 0 or body.startswith(needle)):
        tail = _DELIMITER_TAIL.match(body, start + len(needle))
        if tail:
            yield start, tail.end(), bool(tail.group(1))
        found = body.find(b"\n" + needle, start)
        start = found + 1 if found >= 0 else -1


def _delivery_status(msg: Part, body: bytes) -> None:
    """A DSN's status fields: blocks of header lines separated by blank lines, one part per block."""
    lines = body.splitlines(keepends=True)
    i = 0
    while True:
        start = i
        while i < len(lines) and lines[i] not in (b"\r\n", b"\n"):
            i += 1
        block = Part()
        _headers(block, lines[start:i])
        if block.get_content_maintype() in ("multipart", "message"):
            raise _Unusual("a status block that claims to be a container")
        block.set_payload("")
        msg.attach(block)
        i += 1  # the blank line that ended the block
        if i >= len(lines):
            return


def _build(data: bytes, boundaries: tuple[bytes, ...], depth: int) -> Part:
    """One message or body part; a part (inside `boundaries`) leaves its last line end to the boundary."""
    if depth > _MAX_DEPTH:
        raise _Unusual("nested too deep")
    lines, body = _split_head(data)
    msg = Part()
    _headers(msg, lines)
    maintype = msg.get_content_maintype()
    if maintype == "message":
        if msg.get_content_type() == "message/delivery-status":
            _delivery_status(msg, body)
            return msg
        # An attached letter; like the FeedParser, its own last line end goes to the boundary.
        msg.attach(_build(body, boundaries, depth + 1))
        msg.raw_body = _strip_eol_bytes(body) if boundaries else body
        return msg
    if maintype != "multipart":
        msg.set_payload(_strip_eol(_text(body)) if boundaries else _text(body))
        return msg
    boundary = msg.get_boundary()
    cte = str(msg.get("content-transfer-encoding", "8bit")).lower()
    if not boundary or cte not in ("7bit", "8bit", "binary") or msg.get_content_subtype() == "digest":
        raise _Unusual("multipart the FeedParser marks defective or treats specially")
    separator = boundary.encode("ascii", "surrogateescape")
    if separator in boundaries:
        raise _Unusual("boundary reused by a nested part")
    starts: list[tuple[int, int, bool]] = []
    close = None
    for delimiter in _delimiters(body, separator):
        if delimiter[2]:
            close = delimiter
            break
        starts.append(delimiter)
    if close is None or not starts:
        raise _Unusual("missing start or close boundary")
    if starts[0][0]:
        msg.preamble = _strip_eol(_text(body[: starts[0][0]]))
    inner = (*boundaries, separator)
    for (_, end, _), (following, _, _) in zip(starts, [*starts[1:], close], strict=True):
        if end == following:
            raise _Unusual("empty body part")  # consecutive boundaries: FeedParser-specific handling
        msg.attach(_build(body[end:following], inner, depth + 1))
    epilogue = _text(body[close[1] :])
    if boundaries:
        msg.epilogue = _strip_eol(epilogue) if epilogue else None
    else:
        msg.epilogue = epilogue
    return msg
