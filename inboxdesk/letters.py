"""Composing outgoing letters as bytes, once, at the moment the effect is decided.

The bytes (with their Message-ID) are stored in the outbox, so a retry sends exactly the same
letter and threading by In-Reply-To works before the letter has even left.
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.headerregistry import Address
from email.message import EmailMessage
from email.policy import SMTP
from email.utils import format_datetime, formataddr, formatdate, make_msgid
from functools import lru_cache

from inboxdesk.domain import LOOP_HEADER
from inboxdesk.filenames import clean_filename

AUTO_REPLIED = "auto-replied"  # an answer to a message (acknowledgement), RFC 3834
AUTO_GENERATED = "auto-generated"  # caused by something else (status change, department notice)


@dataclass(frozen=True)
class OutgoingFile:
    filename: str
    content_type: str
    content: bytes

    def __post_init__(self) -> None:  # names from the CLI and the bot follow the same rule as mail's
        object.__setattr__(self, "filename", clean_filename(self.filename) or "file")


@dataclass(frozen=True)
class OutgoingEmail:
    """A letter ready to compose; `auto` is None for a person's letter (a staff reply)."""

    from_addr: str
    from_name: str
    to: tuple[str, ...]
    subject: str
    body: str
    in_reply_to: str | None = None
    references: tuple[str, ...] = ()
    auto: str | None = None
    files: tuple[OutgoingFile, ...] = field(default=())


def new_message_id(from_addr: str) -> str:
    """A Message-ID in our own domain, so replies to it can be recognised as ours."""
    return make_msgid(idstring="inboxdesk", domain=from_addr.rpartition("@")[2] or "inboxdesk.local")


def _one_line(value: str) -> str:
    # Header values come from senders and staff: CR/LF would start a new header (injection).
    return " ".join(value.split())


class _EncodedSubject(str):
    """A non-ASCII subject encoded by `_phrase` and emitted as is.

    Python 3.11's own folding (policy.SMTP) can split a long Cyrillic subject at a space into two
    encoded-words and drop that space (RFC 2047 ignores whitespace between encoded-words), so
    "принята в работу" arrived as "принята вработу". `_phrase` keeps spaces inside the words.
    """

    name = "Subject"

    def fold(self, *, policy: object) -> str:
        return f"Subject: {_phrase(str(self), 'Subject')}\r\n"


def compose(mail: OutgoingEmail, message_id: str | None = None) -> tuple[str, bytes]:
    """(Message-ID, RFC 5322 bytes with CRLF line ends) for `mail`."""
    message_id = message_id or new_message_id(mail.from_addr)
    payload = None if mail.files else _compose_text(mail, message_id)
    return message_id, payload if payload is not None else _compose_mime(mail, message_id)


# -- the common letter, written directly --------------------------------------------------------
# An acknowledgement is composed for every new ticket, inside the intake transaction. Building it
# with EmailMessage/policy.SMTP costs ~4 ms (header parsing and refolding); a single text/plain
# part needs none of that. The bytes are those `_compose_mime` gives, up to folding and
# quoted-printable line lengths (tests/test_letters.py compares the two as parsed mail).

_MAX_LINE = 78
_HARD_LIMIT = 998  # RFC 5322 2.1.1


def _fold(name: str, value: str) -> str:
    """`Name: value`, folded at spaces into lines of at most 78 characters where possible."""
    line, lines = f"{name}:", []
    for word in value.split(" "):
        if len(line) + 1 + len(word) > _MAX_LINE and line.strip() and not line.endswith(":"):
            lines.append(line)
            line = ""
        line += " " + word
    lines.append(line)
    return "\r\n".join(lines)


def _phrase(text: str, name: str, plain_prefix: bool = True) -> str:
    """A display name or subject: as is when ASCII, else RFC 2047 words that keep every space.

    Leading ASCII words stay plain, so the record's tag `[HD-2026-000123]` is readable in the raw
    header (mail filters and people reading raw mail look for it). The rest is cut into base64
    words at character boundaries, every space inside a word (RFC 2047 ignores the whitespace
    between words); lines are folded before 78 characters. Written out rather than left to
    `email.header.Header`, which costs ~0.5 ms a subject.
    """
    if text.isascii():
        return text
    words = text.split(" ")
    plain = next((i for i, w in enumerate(words) if not w.isascii()), len(words)) if plain_prefix else 0
    pieces = words[:plain] + _encoded_words(" ".join(words[plain:]))
    out, used = pieces[0], len(name) + 2 + len(pieces[0])
    for piece in pieces[1:]:
        if used + 1 + len(piece) > _MAX_LINE:
            out += "\r\n " + piece
            used = 1 + len(piece)
        else:
            out += " " + piece
            used += 1 + len(piece)
    return out


_WORD_BYTES = 45  # 60 base64 characters: a 72-character encoded-word (RFC 2047 allows 75)


def _encoded_words(text: str) -> list[str]:
    data = text.encode("utf-8")
    words, start = [], 0
    while start < len(data):
        end = min(start + _WORD_BYTES, len(data))
        while end < len(data) and data[end] & 0xC0 == 0x80:  # never split a character
            end -= 1
        words.append(f"=?utf-8?b?{base64.b64encode(data[start:end]).decode('ascii')}?=")
        start = end
    return words


@lru_cache(maxsize=64)
def _sender(name: str, address: str) -> str:
    """The From value: the same few (institution, mailbox) pairs sign every letter."""
    name = _one_line(name)
    if not name:
        return address
    if name.isascii():
        return formataddr((name, address))  # quotes names with specials
    return f"{_phrase(name, 'From', plain_prefix=False)} <{address}>"  # plain words could hold specials


def _compose_text(mail: OutgoingEmail, message_id: str) -> bytes | None:
    """The letter's bytes; None when an address or id is not ASCII (IDN, SMTPUTF8) or a header
    would not fit a line: the email package handles those."""
    subject = _one_line(mail.subject)
    head = [f"From: {_sender(mail.from_name, mail.from_addr)}",
            _fold("To", ", ".join(_one_line(a) for a in mail.to)),
            f"Subject: {_phrase(subject, 'Subject')}" if not subject.isascii() else _fold("Subject", subject),
            f"Date: {format_datetime(datetime.now(UTC))}", f"Message-ID: {message_id}"]
    if mail.in_reply_to:
        head.append(f"In-Reply-To: {_one_line(mail.in_reply_to)}")
    refs = _references(mail)
    if refs:
        head.append(_fold("References", " ".join(_one_line(r) for r in refs)))
    if mail.auto:
        head += [f"Auto-Submitted: {_one_line(mail.auto)}", "X-Auto-Response-Suppress: All"]
    head += [f"{LOOP_HEADER}: {mail.from_addr}", 'Content-Type: text/plain; charset="utf-8"',
             "Content-Transfer-Encoding: quoted-printable", "MIME-Version: 1.0"]
    header = "\r\n".join(head)
    if not header.isascii() or any(len(line) > _HARD_LIMIT for line in header.split("\r\n")):
        return None
    # As EmailMessage.set_content: line ends normalised, one at the end; then quoted-printable.
    text = b"\n".join(mail.body.encode("utf-8").splitlines()) + b"\n"
    body = binascii.b2a_qp(text, istext=True).replace(b"\n", b"\r\n")
    return (header + "\r\n\r\n").encode("ascii") + body


def _references(mail: OutgoingEmail) -> list[str]:
    refs = [r for r in mail.references if r]
    if mail.in_reply_to and mail.in_reply_to not in refs:
        refs.append(mail.in_reply_to)
    return refs[-20:]


# -- everything else: the email package --------------------------------------------------------

def _compose_mime(mail: OutgoingEmail, message_id: str) -> bytes:
    msg = EmailMessage(policy=SMTP)
    msg["From"] = Address(display_name=_one_line(mail.from_name), addr_spec=mail.from_addr)
    msg["To"] = ", ".join(_one_line(a) for a in mail.to)
    subject = _one_line(mail.subject)
    msg["Subject"] = subject if subject.isascii() else _EncodedSubject(subject)
    msg["Date"] = formatdate(localtime=False, usegmt=True)
    msg["Message-ID"] = message_id
    if mail.in_reply_to:
        msg["In-Reply-To"] = _one_line(mail.in_reply_to)
    refs = _references(mail)
    if refs:
        msg["References"] = " ".join(_one_line(r) for r in refs)
    if mail.auto:
        msg["Auto-Submitted"] = mail.auto
        # Ask Exchange and friends not to answer our automatic mail with their own (LOOP-1).
        msg["X-Auto-Response-Suppress"] = "All"
    msg[LOOP_HEADER] = mail.from_addr
    msg.set_content(mail.body, subtype="plain", charset="utf-8", cte="quoted-printable")
    for f in mail.files:
        maintype, _, subtype = (f.content_type or "application/octet-stream").partition("/")
        msg.add_attachment(f.content, maintype=maintype, subtype=subtype or "octet-stream",
                           filename=f.filename)
    return msg.as_bytes()
