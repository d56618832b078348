"""Composing outgoing letters as bytes, once, at the moment the effect is decided.

The bytes (with their Message-ID) are stored in the outbox, so a retry sends exactly the same
letter and threading by In-Reply-To works before the letter has even left.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from email.headerregistry import Address
from email.message import EmailMessage
from email.policy import SMTP
from email.utils import formatdate, make_msgid

from inboxdesk.domain import LOOP_HEADER

AUTO_REPLIED = "auto-replied"  # an answer to a message (acknowledgement), RFC 3834
AUTO_GENERATED = "auto-generated"  # caused by something else (status change, department notice)


@dataclass(frozen=True)
class OutgoingFile:
    filename: str
    content_type: str
    content: bytes


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


def compose(mail: OutgoingEmail, message_id: str | None = None) -> tuple[str, bytes]:
    """(Message-ID, RFC 5322 bytes with CRLF line ends) for `mail`."""
    msg = EmailMessage(policy=SMTP)
    message_id = message_id or new_message_id(mail.from_addr)
    msg["From"] = Address(display_name=_one_line(mail.from_name), addr_spec=mail.from_addr)
    msg["To"] = ", ".join(_one_line(a) for a in mail.to)
    msg["Subject"] = _one_line(mail.subject)
    msg["Date"] = formatdate(localtime=False, usegmt=True)
    msg["Message-ID"] = message_id
    if mail.in_reply_to:
        msg["In-Reply-To"] = _one_line(mail.in_reply_to)
    refs = [r for r in mail.references if r]
    if mail.in_reply_to and mail.in_reply_to not in refs:
        refs.append(mail.in_reply_to)
    if refs:
        msg["References"] = " ".join(_one_line(r) for r in refs[-20:])
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
    return message_id, msg.as_bytes()
