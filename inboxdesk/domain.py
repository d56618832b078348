"""Domain vocabulary in one place: record kinds, statuses, public IDs and subject tags."""

from __future__ import annotations

import re

TICKET = "ticket"
APPEAL = "appeal"

# MAIL-5 (regulation 4.8). Transitions live in the desk service (issue 3).
TICKET_NEW = "Новая"
TICKET_ASSIGNED = "Назначена"
TICKET_IN_WORK = "Рассматривается"
TICKET_FEEDBACK = "Обратная связь"
TICKET_RESOLVED = "Решена"
TICKET_CLOSED = "Закрыта"
TICKET_STATUSES = (TICKET_NEW, TICKET_ASSIGNED, TICKET_IN_WORK, TICKET_FEEDBACK, TICKET_RESOLVED,
                   TICKET_CLOSED)

# APL-4
APPEAL_NEW = "Новое"
APPEAL_IN_REVIEW = "На рассмотрении"
APPEAL_DONE = "Выполнено"
APPEAL_STATUSES = (APPEAL_NEW, APPEAL_IN_REVIEW, APPEAL_DONE)

KIND_BY_MAILBOX = {"tickets": TICKET, "appeals": APPEAL}
INITIAL_STATUS = {TICKET: TICKET_NEW, APPEAL: APPEAL_NEW}

# Added to every letter we send, so our own mail is recognised if it ever comes back (LOOP-1).
LOOP_HEADER = "X-Inboxdesk-Loop"

# Inbound dispositions (issue 2): what became of each fetched message.
DISPOSITIONS = ("ticket", "followup", "filtered", "autoreply", "bounce", "duplicate", "error")
# Filtered mail staff may take in by hand (the rules were wrong), and see in the daily digest;
# not bounces (they belong to our letters) nor duplicates.
TAKEABLE = ("filtered", "autoreply")

_TAG = re.compile(r"\[([A-Z][A-Z0-9_]{0,19}-\d{4}-\d{6,})\]")


def normal_domain(name: str) -> str:
    """`sev.gov.ru` for "Sev.Gov.Ru." or "@sev.gov.ru"; an IDN domain in its ASCII form."""
    name = name.strip().strip(".").lower().lstrip("@")
    try:
        return name.encode("idna").decode("ascii")
    except UnicodeError:
        return name


def domain_allowed(name: str, allowed: tuple[str, ...], subdomains: bool) -> bool:
    """Is the domain `name` one of `allowed` (MAIL-1; a subdomain of one only with `subdomains`)?"""
    name = normal_domain(name)
    listed = [normal_domain(d) for d in allowed]
    return name in listed or (subdomains and any(name.endswith("." + d) for d in listed))


def mail_key(address: str) -> str:
    """One key per mailbox for the OUT-1 caps: case folded and the `+tag` dropped, so
    `Boss+1@Sev.gov.ru` and `boss+2@sev.gov.ru` count as `boss@sev.gov.ru`."""
    local, _, host = address.strip().lower().rpartition("@")
    return f"{local.split('+', 1)[0]}@{host}" if local else address.strip().lower()


def public_id(prefix: str, year: int, number: int) -> str:
    """`HD-2026-000123` (MAIL-3, APL-2)."""
    return f"{prefix}-{year}-{number:06d}"


def tag(public: str) -> str:
    """The subject tag that threads replies: `[HD-2026-000123]`."""
    return f"[{public}]"


def tags_in(subject: str) -> list[str]:
    """Public IDs tagged in a subject, first one first."""
    return _TAG.findall(subject or "")


def tagged_subject(public: str, subject: str) -> str:
    """`subject` with the record's tag in front, unless it already carries it."""
    subject = " ".join((subject or "").split())  # folds CR/LF: no header injection via subjects
    return subject if tag(public) in subject else f"{tag(public)} {subject}".strip()
