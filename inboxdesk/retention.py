"""Keeping personal data no longer than needed (issue 13; 152-FZ art. 5 part 7 and art. 21).

Four steps, each off unless `[retention]` gives it a number of days (the operator decides; the
README says what the law and the regulation leave to them):

- the raw bytes of filtered mail (no record was made of it: spam, foreign domains, auto-replies,
  bounces, duplicates) after `filtered_raw_days` from arrival;
- the raw bytes of a finished record's letters in, and of its letters sent, after `closed_raw_days`
  (the parsed text stays with the record);
- the bytes of a finished record's attachments after `closed_files_days` (name and size stay);
- the requester's personal data on a finished record after `anonymise_days`, which also deletes
  everything the two steps above would.

"Finished" is workflow.DONE and counts from the last status change, so a reopened record starts
over. Every record is changed in a transaction of its own that locks it and checks again that it is
still due, so a follow-up arriving at the same moment, or another instance doing the same work,
is never overtaken. Every step is audited (actor `retention`).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, fields
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, Select, and_, exists, func, or_, select, update
from sqlalchemy.orm import Session

from inboxdesk import appeal_fields, workflow
from inboxdesk.settings import RetentionSettings
from mailflow.intake import ACKED
from storage import outbox
from storage.db import Database
from storage.models import Attachment, AuditEvent, InboundMessage, OutboxItem, Ticket, TicketMessage

ACTOR = "retention"
# Dispositions of mail that made no record (mailflow.chain); `error` waits for `inbound retry`.
FILTERED = ("filtered", "autoreply", "bounce", "duplicate")
BATCH = 200  # rows per transaction: short locks, and a long backlog still moves
REMOVED = "[удалено]"
REMOVED_TEXT = "[текст удалён при обезличивании]"
# Fields of a record that say what it is about, not who asked; every other field is personal.
IMPERSONAL_FIELDS = frozenset({appeal_fields.TOPIC})
SHORTEST_VALUE = 3  # shorter known values ("Ан") are not searched for in texts


@dataclass
class Done:
    """What one run changed (or, from `due`, what a run would change now)."""

    filtered_raw: int = 0  # letters
    closed_raw: int = 0  # records
    closed_files: int = 0  # records
    anonymised: int = 0  # records

    def as_dict(self) -> dict[str, int]:
        return {f.name: getattr(self, f.name) for f in fields(self)}

    def __str__(self) -> str:  # for the log
        return ", ".join(f"{k} {v}" for k, v in self.as_dict().items())

    def text(self) -> str:
        """For a person: what was (or would be) done."""
        return (f"исходных писем отфильтрованной почты {self.filtered_raw}; записей: без исходных писем "
                f"{self.closed_raw}, без вложений {self.closed_files}, обезличено {self.anonymised}")

    def __bool__(self) -> bool:
        return any(self.as_dict().values())


class Retention:
    def __init__(self, db: Database, settings: RetentionSettings) -> None:
        self.db, self.settings = db, settings

    def run(self, now: datetime) -> Done:
        """Everything due at `now`, in batches, until nothing is left."""
        done = Done()
        cfg = self.settings
        if cfg.filtered_raw_days is not None:
            done.filtered_raw = self._filtered_raw(now - timedelta(days=cfg.filtered_raw_days), now)
        for step, days, work in (("anonymised", cfg.anonymise_days, self._anonymise),
                                 ("closed_raw", cfg.closed_raw_days, self._delete_raw),
                                 ("closed_files", cfg.closed_files_days, self._delete_files)):
            if days is not None:
                setattr(done, step, self._each_record(_due_records(step, now - timedelta(days=days)),
                                                      now - timedelta(days=days), now, work))
        return done

    def due(self, session: Session, now: datetime) -> Done:
        """How much a run at `now` would change (`inboxdesk status`)."""
        done = Done()
        cfg = self.settings
        if cfg.filtered_raw_days is not None:
            done.filtered_raw = _count(session, _filtered(now - timedelta(days=cfg.filtered_raw_days)))
        for step, days in (("anonymised", cfg.anonymise_days), ("closed_raw", cfg.closed_raw_days),
                           ("closed_files", cfg.closed_files_days)):
            if days is not None:
                setattr(done, step, _count(session, _due_records(step, now - timedelta(days=days))))
        return done

    # -- filtered mail -----------------------------------------------------------------------------

    def _filtered_raw(self, cutoff: datetime, now: datetime) -> int:
        total = 0
        while True:
            with self.db.transaction() as s:
                ids = list(s.scalars(_filtered(cutoff).order_by(InboundMessage.id).limit(BATCH)))
                if not ids:
                    return total
                # Checked again in the UPDATE: another instance may have emptied some already.
                emptied = s.scalars(update(InboundMessage).where(
                    InboundMessage.id.in_(ids), InboundMessage.raw_deleted_at.is_(None))
                    .values(raw=b"", raw_deleted_at=now).returning(InboundMessage.id)).all()
                if emptied:
                    s.add(AuditEvent(actor=ACTOR, action="filtered_raw_deleted", at=now,
                                     detail={"inbound_ids": sorted(emptied)}))
                total += len(emptied)

    # -- finished records --------------------------------------------------------------------------

    def _each_record(self, due: Select[tuple[int]], cutoff: datetime, now: datetime,
                     work: Any) -> int:
        total, skipped = 0, set[int]()
        while True:
            with self.db.sessions() as s:
                batch = [i for i in s.scalars(due.where(Ticket.id.not_in(skipped) if skipped else True)
                                              .order_by(Ticket.id).limit(BATCH)) if i not in skipped]
            if not batch:
                return total
            for ticket_id in batch:
                with self.db.transaction() as s:
                    ticket = s.get(Ticket, ticket_id, with_for_update=True)
                    if ticket is None or not _finished_before(ticket, cutoff) or not work(s, ticket, now):
                        skipped.add(ticket_id)  # reopened meanwhile, or a letter still in flight
                        continue
                total += 1

    def _delete_raw(self, s: Session, ticket: Ticket, now: datetime) -> bool:
        letters_in = s.execute(update(InboundMessage).where(
            InboundMessage.ticket_id == ticket.id, InboundMessage.raw_deleted_at.is_(None))
            .values(raw=b"", raw_deleted_at=now)).rowcount
        letters_out = s.execute(update(OutboxItem).where(
            OutboxItem.ticket_id == ticket.id, OutboxItem.channel == "email", _left(),
            OutboxItem.payload_deleted_at.is_(None)).values(payload=b"", payload_deleted_at=now)).rowcount
        if not letters_in and not letters_out:
            return False
        _audit(s, ticket, "raw_deleted", now, letters_in=letters_in, letters_out=letters_out)
        return True

    def _delete_files(self, s: Session, ticket: Ticket, now: datetime) -> bool:
        files = s.execute(update(Attachment).where(
            Attachment.ticket_message_id.in_(_messages_of(ticket.id)), Attachment.content.is_not(None))
            .values(content=None, deleted_at=now)).rowcount
        if files:
            _audit(s, ticket, "files_deleted", now, files=files)
        return bool(files)

    def _anonymise(self, s: Session, ticket: Ticket, now: datetime) -> bool:
        """The record keeps its shape (kind, statuses, dates, staff, organisation, topic) and loses
        who asked: name and address, personal fields, the text of letters exchanged with them,
        every raw letter and file, and every trace of the known values in notes and history."""
        if s.scalar(select(exists().where(OutboxItem.ticket_id == ticket.id, ~_left()))):
            return False  # a letter to them is still to be sent: next run
        scrub = _Scrubber(ticket)
        address = ticket.requester_email.strip().lower()
        ticket.requester_email, ticket.requester_name = "", ""
        ticket.fields = {k: (scrub(v) if k in IMPERSONAL_FIELDS else REMOVED) if v else v
                         for k, v in ticket.fields.items()}
        ticket.subject = scrub(ticket.subject)
        for message in s.scalars(select(TicketMessage).where(TicketMessage.ticket_id == ticket.id)):
            theirs = message.direction == "in" or address in (a.lower() for a in message.to_addrs)
            message.subject = scrub(message.subject)
            message.body = REMOVED_TEXT if theirs and message.direction != "note" else scrub(message.body)
            if message.direction == "in":
                message.from_addr = ""
            message.to_addrs = [a for a in message.to_addrs if a.lower() != address]
        for inbound in s.scalars(select(InboundMessage).where(InboundMessage.ticket_id == ticket.id)):
            inbound.from_addr, inbound.subject = "", scrub(inbound.subject)
        for item in s.scalars(select(OutboxItem).where(OutboxItem.ticket_id == ticket.id)):
            item.recipients = [a for a in item.recipients if a.lower() != address]
            item.to_addr = "" if item.to_addr.lower() == address else item.to_addr
            item.subject = scrub(item.subject)
            if item.payload_deleted_at is None:
                item.payload, item.payload_deleted_at = b"", now
        for event in s.scalars(select(AuditEvent).where(AuditEvent.ticket_id == ticket.id)):
            event.from_value = scrub(event.from_value) if event.from_value else event.from_value
            event.to_value = scrub(event.to_value) if event.to_value else event.to_value
            event.detail = scrub.within(event.detail)
        self._delete_raw(s, ticket, now)
        self._delete_files(s, ticket, now)
        ticket.anonymised_at = now
        _audit(s, ticket, "anonymised", now)
        return True


class _Scrubber:
    """Replaces the requester's known values (address, name and its parts, personal fields) in a
    text. Plain substring search, case-insensitive: linear in the text, whatever it holds."""

    def __init__(self, ticket: Ticket) -> None:
        values = {ticket.requester_email, ticket.requester_name, *ticket.requester_name.split()}
        values |= {str(v) for k, v in ticket.fields.items() if k not in IMPERSONAL_FIELDS and v}
        self.values = sorted((v.strip().lower() for v in values if len(v.strip()) >= SHORTEST_VALUE),
                             key=len, reverse=True)

    def __call__(self, text: str) -> str:
        for value in self.values:
            text = _replace_folded(text, value)
        return text

    def within(self, data: Any) -> Any:
        """The same for every string inside a JSON value (audit details)."""
        if isinstance(data, str):
            return self(data)
        if isinstance(data, list):
            return [self.within(v) for v in data]
        if isinstance(data, dict):
            return {k: self.within(v) for k, v in data.items()}
        return data


def _replace_folded(text: str, value: str) -> str:
    """`text` with every case-insensitive, whole-word occurrence of `value` (lower case) replaced:
    "Иванов" goes, "Иванова" (another person) stays."""
    folded = text.lower()
    if len(folded) != len(text):  # a character whose lower case has another length: rare, exact
        folded, value = text, value
    start, parts = 0, []
    for at in _occurrences(folded, value):
        parts += [text[start:at], REMOVED]
        start = at + len(value)
    return "".join(parts) + text[start:] if parts else text


def _occurrences(text: str, value: str) -> Iterator[int]:
    """Where `value` stands as a word of its own in `text`: not inside a longer word."""
    at = text.find(value)
    while at >= 0:
        end = at + len(value)
        if (at == 0 or not text[at - 1].isalnum()) and (end == len(text) or not text[end].isalnum()):
            yield at
            at = text.find(value, end)
        else:
            at = text.find(value, at + 1)


def _left() -> ColumnElement[bool]:
    """Outbox rows that will not be sent (again) by themselves."""
    return OutboxItem.status != outbox.PENDING


def _filtered(cutoff: datetime) -> Select[tuple[int]]:
    return select(InboundMessage.id).where(
        InboundMessage.raw_deleted_at.is_(None), InboundMessage.ticket_id.is_(None),
        InboundMessage.disposition.in_(FILTERED), InboundMessage.state == ACKED,
        InboundMessage.received_at < cutoff)


def _finished_at() -> ColumnElement[datetime]:
    return func.coalesce(Ticket.status_changed_at, Ticket.created_at)


def _finished_before(ticket: Ticket, cutoff: datetime) -> bool:
    from inboxdesk.localtime import as_utc

    return ticket.status in workflow.DONE and as_utc(ticket.status_changed_at or ticket.created_at) < cutoff


def _messages_of(ticket_id: int) -> Select[tuple[int]]:
    return select(TicketMessage.id).where(TicketMessage.ticket_id == ticket_id)


def _due_records(step: str, cutoff: datetime) -> Select[tuple[int]]:
    """Finished records before `cutoff` on which `step` still has something to do."""
    finished = and_(Ticket.status.in_(workflow.DONE), _finished_at() < cutoff)
    if step == "anonymised":
        left = Ticket.anonymised_at.is_(None)
    elif step == "closed_raw":
        left = or_(
            exists().where(InboundMessage.ticket_id == Ticket.id, InboundMessage.raw_deleted_at.is_(None)),
            exists().where(OutboxItem.ticket_id == Ticket.id, OutboxItem.channel == "email", _left(),
                           OutboxItem.payload_deleted_at.is_(None)))
    else:
        left = exists().where(Attachment.content.is_not(None), Attachment.ticket_message_id.in_(
            select(TicketMessage.id).where(TicketMessage.ticket_id == Ticket.id)))
    return select(Ticket.id).where(finished, left)


def _count(session: Session, query: Select[tuple[int]]) -> int:
    return session.scalar(select(func.count()).select_from(query.subquery())) or 0


def _audit(s: Session, ticket: Ticket, action: str, now: datetime, **detail: int) -> None:
    s.add(AuditEvent(ticket_id=ticket.id, actor=ACTOR, action=action, at=now, detail=detail))
