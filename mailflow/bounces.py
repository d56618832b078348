"""Recognising delivery failure reports: RFC 3464 DSNs and the many formats mail servers invent.

Every inbound message passes through `detect_bounce`, so the common case (a person's letter) must
cost a handful of header look-ups. Only a message that *looks* automatic or bounce-like is read
further: its DSN parts are parsed here, and everything else is left to `flufl.bounce`, whose ~20
heuristic detectors are too slow to run on every letter.

A bounce is declared only on evidence beyond the subject: a DSN with failed/delayed recipients, a
mail server's own failure header, a detector that found the failed addresses, a mail-daemon sender
with a bounce subject, or a gateway returning somebody else's letter. A person who writes
"Undelivered mail" in a subject, or forwards the bounce they got asking for help, still reaches the
desk: that is a support request, not a bounce.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator
from email.header import Header, decode_header
from email.message import Message
from email.parser import HeaderParser
from email.utils import getaddresses, parseaddr

from flufl.bounce import all_failures

from mailflow.message import BounceInfo

log = logging.getLogger(__name__)


class _QuietDetectors(logging.Filter):
    """flufl.bounce logs every detector it runs (INFO) and a traceback for every detector that
    trips over odd mail before re-raising; we catch that error ourselves (see _flufl_failures),
    so at production log levels both would only be noise, one burst per bounce."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith(("Running detector", "Exception in detector"))


logging.getLogger("flufl.bounce").addFilter(_QuietDetectors())

# Senders only machines use, inside a header value: `Mail Delivery System <MAILER-DAEMON@host>`,
# `<MAILER-DAEMON>`, Exchange's `MicrosoftExchange329e…@`. The address must follow, so a display
# name ("Postmaster Ivanov <ivanov@…>") does not count. `postmaster` is a person's role too: it
# makes a message a candidate, and a bounce subject or failed addresses must still confirm it.
_DAEMON_ADDRESS = re.compile(
    r"(?:^|[\s<\"(,])(?:mailer[-_.]?daemon|mail[-_.]?daemon|postmaster|mdaemon|mail\.delivery\.system"
    r"|microsoftexchange[0-9a-f]{32})[@>]",
    re.IGNORECASE,
)

# Subjects mail servers give their reports (English and Russian variants of postfix, exim, qmail,
# sendmail, Exchange, Gmail, Yandex, Mail.ru). Searched, not anchored: servers prefix or suffix
# them ("Undeliverable: <subject>", "... : non remis (delivery failed)").
_BOUNCE_SUBJECT = re.compile(
    r"undeliver|non[- ]?deliver|not\s+(?:be\s+)?delivered"
    r"|delivery\s+(?:status\s+notification|failure|failed|has\s+failed|report|notification|problem)"
    r"|failure\s+(?:notice|delivery)|failed\s+mail|returned\s+mail|mail\s+delivery\s+(?:failed|failure)"
    r"|mail\s+(?:system\s+)?error|delayed\s+mail|message\s+delayed|mail\s+delivery\s+warning"
    r"|warning:\s+(?:message|could\s+not\s+send)|has\s+not\s+yet\s+been\s+delivered"
    r"|недоставлен|недоставляем|не\s+удается\s+доставить|не\s+удалось\s+доставить|не\s+доставлен"
    r"|ошибка\s+доставки|доставка\s+задерживается|задержка\s+доставки"
    r"|возвращ[её]нное\s+сообщение|уведомление\s+о\s+(?:состоянии\s+)?доставке",
    re.IGNORECASE,
)

# Subjects that mark a delay warning rather than a final failure, for reports where neither the
# DSN nor a detector says so.
_DELAY_SUBJECT = re.compile(
    r"delay|not\s+yet\s+been\s+delivered|still\s+being\s+retried|warning:\s+could\s+not\s+send"
    r"|задерж",
    re.IGNORECASE,
)

# A person forwarding a bounce to the helpdesk ("why does my mail not arrive?") is asking for help.
_FORWARD_PREFIX = re.compile(r"^\s*(?:fwd?|fw|tr|wg|пересл\w*\.?|переадр\w*\.?)\s*(?:\[\d+\])?\s*:",
                             re.IGNORECASE)

# Original headers quoted in the body of non-DSN bounces (and text/rfc822-headers parts).
_MESSAGE_ID_LINE = re.compile(
    r"^[ \t>]*Message-Id:[ \t]*(?:\r?\n[ \t]+)?(<[^<>\s]+>|[^<>\s]+@[^<>\s]+)", re.IGNORECASE | re.MULTILINE
)

# Recipient lists flufl.bounce's detectors miss: newer exim ("The following address(es) failed:"),
# "Delivery to the following recipients ...", and Russian Exchange/Yandex wording.
_RECIPIENT_BLOCK = re.compile(
    r"(?:following\s+(?:address(?:es|\(es\))?|recipients?)|следующим\s+получателям"
    r"|следующих\s+получателей|следующие\s+адреса)[^\n:]*(?:\n[^\n:]*)?:[ \t]*\n",
    re.IGNORECASE,
)
_ADDRESS = re.compile(r"[\w.!#$%&'*+/=?^`{|}~-]+@[\w-]+(?:\.[\w-]+)+")

_SCAN_LIMIT = 256 * 1024  # bounce texts are short; a huge attachment must not slow intake down


def detect_bounce(msg: Message) -> BounceInfo | None:
    """The delivery failure `msg` reports, or None when it is not a bounce. Never raises."""
    try:
        if not _looks_like_bounce(msg):
            return None
    except Exception:  # a malformed header must not stop intake; treat the message as ordinary mail
        log.debug("bounce pre-check failed", exc_info=True)
        return None
    try:
        return _read_bounce(msg)
    except Exception:
        log.warning("could not read a bounce-like message", exc_info=True)
        # It looked automatic enough to get here; an empty report keeps it away from the desk only
        # when the evidence is strong without reading the body.
        return BounceInfo() if _strong_headers(msg) else None


# -- the cheap pre-check: headers only ---------------------------------------------------------


def _looks_like_bounce(msg: Message) -> bool:
    if msg.get_content_type() == "multipart/report":
        # Read receipts (disposition-notification) and abuse reports (feedback-report) are reports
        # too, but never failures.
        return _report_type(msg) in ("", "delivery-status")
    if _strong_headers(msg) or _automatic_sender(msg):
        return True
    return _bounce_subject(msg)


def _report_type(msg: Message) -> str:
    return str(msg.get_param("report-type", "") or "").strip().lower()


def _strong_headers(msg: Message) -> bool:
    # Headers mail servers put only on their own failure reports (exim, Exchange).
    return "X-Failed-Recipients" in msg or "X-MS-Exchange-Message-Is-Ndr" in msg


def _automatic_sender(msg: Message) -> bool:
    # Plain string tests, not parseaddr: this runs for every inbound letter.
    if "Return-Path" in msg:
        return_path = str(msg["Return-Path"]).strip()
        if return_path in ("<>", ""):
            return True  # the null reverse-path: only DSNs and auto-replies use it (RFC 5321 §4.5.5)
        if _DAEMON_ADDRESS.search(return_path):
            return True
    sender = msg.get("From")
    if sender is None:
        return True
    sender = str(sender).strip()
    return not sender or "<>" in sender or bool(_DAEMON_ADDRESS.search(sender))


def _bounce_subject(msg: Message) -> bool:
    subject = _header_text(msg, "Subject")
    return bool(subject) and not _FORWARD_PREFIX.match(subject) and bool(_BOUNCE_SUBJECT.search(subject))


# -- the full look: DSN parts, flufl.bounce, our fallbacks ---------------------------------------


def _read_bounce(msg: Message) -> BounceInfo | None:
    report = _read_dsn(msg)
    if report is not None:
        failed, delayed, other = report
        if failed or delayed:
            # One address failed, another only delayed: the letter has failed; name the failures.
            return _info(failed or delayed, temporary=not failed, msg=msg)
        if other:
            return None  # a delivery receipt (Action: delivered/relayed/expanded), not a failure

    if not _machine_made(msg) and _attaches_a_bounce(msg):
        return None  # a person sent us the bounce they got, with their own subject: a request

    temporary, permanent = _flufl_failures(msg)
    failed_header = _failed_recipients_header(msg)
    if permanent or temporary:
        return _info(sorted(permanent or temporary) + failed_header, temporary=not permanent, msg=msg)
    if failed_header:
        return _info(failed_header, temporary=_delay_subject(msg), msg=msg)

    # Nothing named the failed addresses; the headers alone must make the case.
    is_report = msg.get_content_type() == "multipart/report" and _report_type(msg) == "delivery-status"
    if (_strong_headers(msg) or (_automatic_sender(msg) and (_bounce_subject(msg) or is_report))
            or (_bounce_subject(msg) and _returns_someone_elses_letter(msg))):
        return _info(_recipients_from_text(msg), temporary=_delay_subject(msg), msg=msg)
    return None


def _machine_made(msg: Message) -> bool:
    return (_strong_headers(msg) or _automatic_sender(msg)
            or msg.get_content_type() == "multipart/report")


def _attaches_a_bounce(msg: Message) -> bool:
    return any(_automatic_sender(letter) or letter.get_content_type() == "multipart/report"
               for letter in _attached_letters(msg))


def _returns_someone_elses_letter(msg: Message) -> bool:
    """A letter is attached that neither a mail daemon nor this message's own sender wrote.

    That is what a gateway's report looks like (InterScan, old Exchange). A person asking for help
    attaches either the bounce they got (written by a daemon) or their own letter.
    """
    sender = parseaddr(str(msg.get("From", "")))[1].lower()
    for letter in _attached_letters(msg):
        author = str(letter.get("From", ""))
        if parseaddr(author)[1].lower() not in ("", sender) and not _DAEMON_ADDRESS.search(author):
            return True
    return False


def _info(recipients: list[str], *, temporary: bool, msg: Message) -> BounceInfo:
    return BounceInfo(recipients=_unique(a.lower() for a in recipients if a),
                      temporary=temporary, original_message_ids=_original_message_ids(msg))


def _read_dsn(msg: Message) -> tuple[list[str], list[str], int] | None:
    """(failed, delayed, other-action count) from every message/delivery-status part; None if none."""
    found = False
    failed: list[str] = []
    delayed: list[str] = []
    other = 0
    for part in _parts(msg):
        if part.get_content_type() != "message/delivery-status":
            continue
        found = True
        for block in _status_blocks(part):
            action = str(block.get("Action", "")).strip().lower()
            status = str(block.get("Status", "")).strip()
            recipient = _dsn_address(block.get("Original-Recipient")) or _dsn_address(
                block.get("Final-Recipient"))
            if action.startswith(("fail", "error")) or (not action and status.startswith("5")):
                failed.append(recipient)
            elif action.startswith("delay") or (not action and status.startswith("4")):
                delayed.append(recipient)
            elif action:
                other += 1
    return (failed, delayed, other) if found else None


def _status_blocks(part: Message) -> list[Message]:
    payload = part.get_payload()
    if isinstance(payload, list):
        return [b for b in payload if isinstance(b, Message)]
    # A delivery-status part the parser kept as text (odd encodings): split the field groups.
    text = _decoded_text(part)
    return [HeaderParser().parsestr(group.strip() + "\n") for group in re.split(r"\n\s*\n", text)
            if group.strip()]


def _dsn_address(value: object) -> str:
    if not value:
        return ""
    text = str(value)
    kind, sep, address = text.partition(";")
    address = (address if sep else kind).strip()
    address = parseaddr(address)[1] or address.strip("<> ")
    return address if "@" in address else ""


def _flufl_failures(msg: Message) -> tuple[set[str], set[str]]:
    try:
        temporary, permanent = all_failures(msg)
    except Exception:  # a detector tripped over an odd message; the headers still decide
        log.debug("flufl.bounce failed", exc_info=True)
        return set(), set()
    return _decode_all(temporary), _decode_all(permanent)


def _decode_all(addresses: frozenset[bytes]) -> set[str]:
    return {a.decode("ascii", "replace") for a in addresses if b"@" in a}


def _failed_recipients_header(msg: Message) -> list[str]:
    values = [str(v) for v in msg.get_all("X-Failed-Recipients", [])]
    return [addr for _, addr in getaddresses(values) if "@" in addr]


def _recipients_from_text(msg: Message) -> list[str]:
    found: list[str] = []
    for text in _body_texts(msg):
        for match in _RECIPIENT_BLOCK.finditer(text):
            block = re.split(r"\n[ \t]*\n", text[match.end():].lstrip("\n"), maxsplit=1)[0]
            found += _ADDRESS.findall(block)
    return found


def _delay_subject(msg: Message) -> bool:
    return bool(_DELAY_SUBJECT.search(_header_text(msg, "Subject")))


def _original_message_ids(msg: Message) -> tuple[str, ...]:
    """Message-IDs of the letter that bounced: from the returned message or its quoted headers."""
    ids: list[str] = []
    for part in _parts(msg):
        ctype = part.get_content_type()
        letter = _letter(part)
        if letter is not None:
            ids += [str(letter["Message-ID"])] if letter.get("Message-ID") else []
        elif ctype in ("message/rfc822", "text/rfc822-headers", "text/plain"):
            # message/rfc822 the parser could not open (a non-compliant transfer encoding) is text.
            ids += _MESSAGE_ID_LINE.findall(_decoded_text(part))
    return _unique(_angle(i) for i in ids)


# -- small helpers ----------------------------------------------------------------------------


def _parts(msg: Message) -> Iterator[Message]:
    """Every part, without descending into a returned message: its own attachments are not ours."""
    yield msg
    if msg.get_content_type() == "message/rfc822":
        return
    payload = msg.get_payload()
    if isinstance(payload, list):
        for sub in payload:
            if isinstance(sub, Message):
                yield from _parts(sub)


def _letter(part: Message) -> Message | None:
    """The returned letter inside a message/rfc822 part, when the parser could open it."""
    if part.get_content_type() != "message/rfc822":
        return None
    inner = part.get_payload()
    return inner[0] if isinstance(inner, list) and inner and isinstance(inner[0], Message) else None


def _attached_letters(msg: Message) -> Iterator[Message]:
    for part in _parts(msg):
        letter = _letter(part)
        if letter is not None:
            yield letter


def _body_texts(msg: Message) -> Iterator[str]:
    for part in _parts(msg):
        if part.get_content_type() == "text/plain":
            yield _decoded_text(part)


def _decoded_text(part: Message) -> str:
    payload = part.get_payload(decode=True)
    if isinstance(payload, bytes):
        return _bytes_text(payload[:_SCAN_LIMIT], part.get_content_charset())
    raw = part.get_payload()
    return raw[:_SCAN_LIMIT] if isinstance(raw, str) else ""


def _bytes_text(data: bytes, charset: str | None = None) -> str:
    for candidate in (charset, "utf-8", "cp1251"):
        if not candidate:
            continue
        try:
            return data.decode(candidate)
        except (LookupError, UnicodeDecodeError):
            continue
    return data.decode("latin-1")


def _header_text(msg: Message, name: str) -> str:
    """A header as readable text: encoded words decoded, raw 8-bit bytes read as UTF-8/cp1251."""
    value = msg.get(name)
    if value is None:
        return ""
    if not isinstance(value, Header) and "=?" not in value:
        return " ".join(value.split())
    try:
        pieces = decode_header(value)  # compat32 wraps raw 8-bit bytes in a Header
    except Exception:  # a broken encoded word; the raw text still shows the usual phrases
        return " ".join(str(value).split())
    chunks: list[str] = []
    for data, charset in pieces:
        if isinstance(data, bytes):
            chunks.append(_bytes_text(data, None if charset in (None, "unknown-8bit") else charset))
        else:
            chunks.append(data)
    return " ".join("".join(chunks).split())


def _angle(message_id: str) -> str:
    message_id = message_id.strip()
    return message_id if message_id.startswith("<") else f"<{message_id.strip('<>')}>"


def _unique(items: Iterator[str] | list[str]) -> tuple[str, ...]:
    return tuple(dict.fromkeys(i for i in items if i))
