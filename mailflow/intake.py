"""Intake: fetch → record → decide → route → act → acknowledge the mailbox (DESIGN §4).

Each inbound row walks `recorded` → `processed` → `acked`, every step committed before the next
begins, so a crash at any line resumes where it stopped:
- fetched but not recorded: the checkpoint did not move, the mail is fetched again;
- recorded but not processed: `process_pending` picks the row up from the stored raw bytes;
- processed but the mailbox not yet flagged/moved: `finish_acks` flags it again.
A message fetched twice is recognised by its source position, and one seen again under a new
UIDVALIDITY by its Message-ID (or content hash), so no crash and no mailbox reset makes a ticket
twice.

Speed (DESIGN §6) comes without changing any of that: a batch is parsed ahead in worker
processes (`mailflow.parse_pool`), which also work out the desk's MAIL-8 form check of each
message (`mailflow.ahead`), while this process works the database; duplicates are looked up
for a group of messages in one query; a message's own row is written with the records it causes
instead of in UPDATEs of its own.
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections.abc import Callable, Generator, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import timedelta
from itertools import islice

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from inboxdesk import domain
from inboxdesk.desk import SYSTEM, Desk, size_text
from inboxdesk.failpoints import failpoint
from inboxdesk.form_check import AHEAD as FORMS_AHEAD
from inboxdesk.form_check import ahead_key
from inboxdesk.settings import MailboxSettings, Settings
from inboxdesk.staff import StaffMember
from inboxdesk.workflow import Refused
from mailflow import ahead
from mailflow.ahead import form_files
from mailflow.authentication import check_sender
from mailflow.chain import FILTERED, Decision, decide
from mailflow.message import ParsedMessage
from mailflow.parse_pool import ParsePool
from mailflow.parsing import parse_message
from mailflow.routing import find_duplicate, known_dedup_keys, route
from mailflow.rules.base import Hit, RuleContext
from mailflow.rules.size_limit import size_split
from mailflow.sources import FetchedMail, MailSource
from storage import leases, outbox
from storage.db import Database
from storage.models import InboundMessage, MailboxCheckpoint, OutboxItem, Ticket

log = logging.getLogger(__name__)

RECORDED, PROCESSED, ACKED = "recorded", "processed", "acked"
# Raw bytes loaded for one processing batch: big attachments must not pile up in memory.
BATCH_BYTES = 32 * 1024 * 1024
# Messages whose duplicates are looked up together; the parse workers keep about twice this ahead.
GROUP = 32
# A mailbox's lease (issue 9): renewed between batches, so a holder that dies is replaced by
# another instance within this time (at once on the same host).
LEASE = timedelta(minutes=2)
# How long `ingest` waits for a daemon's pass before leaving its rows to that daemon.
INGEST_WAIT_SECONDS = 30.0
# Passes a message that fails is tried in before it stays `error` (`inboxdesk inbound retry`).
ERROR_RETRIES = 3
# A processing transaction commits after about this long (whole groups of GROUP messages).
STEP_SECONDS = 1.0


@dataclass
class IntakeStats:
    fetched: int = 0
    recorded: int = 0
    dispositions: dict[str, int] = field(default_factory=dict)
    busy: bool = False  # another instance holds the mailbox's lease: this pass did nothing

    def count(self, disposition: str) -> None:
        self.dispositions[disposition] = self.dispositions.get(disposition, 0) + 1

    @property
    def processed(self) -> int:
        return sum(self.dispositions.values())


class Intake:
    """Turns fetched mail into records; one instance serves every mailbox."""

    def __init__(self, db: Database, settings: Settings, desk: Desk,
                 parse: Callable[[bytes], ParsedMessage] = parse_message,
                 parse_many: Callable[[list[bytes]], Iterable[ParsedMessage]] | None = None,
                 workers: int = 0) -> None:
        """`workers`: processes that parse batches (0: parse here); a custom `parse` runs here."""
        self.db, self.settings, self.desk = db, settings, desk
        self.pool = ParsePool(workers if parse is parse_message else 0, ahead=2 * GROUP)
        self.parse_many = parse_many or (self.pool.parse if parse is parse_message
                                         else lambda raws: (parse(r) for r in raws))
        self.own_addresses = frozenset(b.address for b in settings.mailboxes)

    def close(self) -> None:
        """Stop the parse workers (they are started again if intake runs after this)."""
        self.pool.close()

    # -- the whole cycle ------------------------------------------------------------------------

    def poll(self, box: MailboxSettings, source: MailSource,
             should_stop: Callable[[], bool] = lambda: False) -> IntakeStats:
        """Read everything new in an open `source`; stops between batches when asked.

        Only the holder of the mailbox's lease reads it (issue 9: any number of daemons, cron
        `run --once` and `ingest` may share a database); another instance's pass is skipped
        (`stats.busy`), and the lease is renewed between batches.
        """
        stats = IntakeStats()
        if not self._lease(box):
            stats.busy = True
            return stats
        done = False
        try:
            self._poll(box, source, should_stop, stats)
            done = True
        finally:
            self._release(box, read_to_the_end=done)
        return stats

    def _poll(self, box: MailboxSettings, source: MailSource, should_stop: Callable[[], bool],
              stats: IntakeStats) -> None:
        self.recover(box, source, stats)
        uidvalidity = source.uidvalidity()
        after = self._checkpoint(box, uidvalidity)
        seen: set[str] = set()  # refs fetched in this pass: none is fetched twice (a loop otherwise)
        while not should_stop():
            batch = [m for m in source.fetch_new(after, box.batch_size) if not m.source_ref
                     or m.source_ref not in seen]
            if not batch:
                break
            seen.update(m.source_ref for m in batch)
            failpoint("after_fetch")
            stats.fetched += len(batch)
            recorded, again = self.record(box, batch, uidvalidity)
            stats.recorded += recorded
            if again:  # copies under names already finished: recorded, so they may leave new/
                source.mark_processed(again)
            failpoint("after_record")
            self.process_pending(box, stats)
            failpoint("after_process")
            self.finish_acks(box, source)
            after = max((m.uid or 0 for m in batch), default=after)
            if not self._lease(box):  # it ran out while this instance was stalled: stop here
                log.warning("mailbox %s: lease lost to another instance; it goes on", box.name)
                break

    def recover(self, box: MailboxSettings, source: MailSource | None, stats: IntakeStats) -> None:
        """Finish what a previous run left half done."""
        self.process_pending(box, stats)
        if source is not None:
            self.finish_acks(box, source)

    def ingest(self, box: MailboxSettings, raws: list[bytes]) -> IntakeStats:
        """Feed raw messages as if they had arrived (mail-server pipe, imports).

        Recorded at once; processed here under the mailbox's lease (waiting for a daemon's pass
        to end), or, if the lease stays taken, by its holder, which processes every recorded row.
        """
        stats = IntakeStats(fetched=len(raws))
        stats.recorded, _ = self.record(box, [FetchedMail(source_ref="", raw=r) for r in raws], None)
        if not self._wait_for_lease(box):
            stats.busy = True
            return stats
        try:
            self.process_pending(box, stats)
        finally:
            self._release(box)
        return stats

    def retry(self, box: MailboxSettings, ids: list[int] | None = None) -> IntakeStats:
        """Process `error` rows of `box` again (all of them without `ids`), under its lease."""
        stats = IntakeStats()
        if not self._wait_for_lease(box):
            stats.busy = True
            return stats
        try:
            with self.db.transaction() as s:
                chosen = [InboundMessage.mailbox == box.name, InboundMessage.disposition == "error"]
                if ids is not None:
                    chosen.append(InboundMessage.id.in_(ids))
                s.execute(update(InboundMessage).where(*chosen).values(state=RECORDED, attempts=0))
            self.process_pending(box, stats)
        finally:
            self._release(box)
        return stats

    def _wait_for_lease(self, box: MailboxSettings) -> bool:
        deadline = time.monotonic() + INGEST_WAIT_SECONDS
        while not self._lease(box):
            if time.monotonic() > deadline:
                return False
            time.sleep(0.2)
        return True

    def _lease(self, box: MailboxSettings) -> bool:
        with self.db.transaction() as s:
            return leases.acquire(s, box.name, LEASE)

    def _release(self, box: MailboxSettings, read_to_the_end: bool = False) -> None:
        try:
            with self.db.transaction() as s:
                leases.release(s, box.name, read_to_the_end)
        except Exception:  # the database is away: the lease runs out by itself
            log.warning("mailbox %s: could not give the lease back; it runs out in %s", box.name, LEASE)

    # -- step 2: record -------------------------------------------------------------------------

    def _checkpoint(self, box: MailboxSettings, uidvalidity: int | None) -> int:
        if uidvalidity is None:
            return 0
        with self.db.transaction() as s:
            cp = s.get(MailboxCheckpoint, box.name)
            if cp is None:
                s.add(MailboxCheckpoint(mailbox=box.name, uidvalidity=uidvalidity, last_uid=0))
                return 0
            if cp.uidvalidity != uidvalidity:
                # The folder was recreated: UIDs mean nothing now. Everything is read again and
                # recognised by Message-ID/content (find_duplicate), so nothing is made twice.
                log.warning("mailbox %s: UIDVALIDITY changed %s -> %s; rescanning the folder",
                            box.name, cp.uidvalidity, uidvalidity)
                cp.uidvalidity, cp.last_uid = uidvalidity, 0
            return cp.last_uid

    def record(self, box: MailboxSettings, batch: list[FetchedMail],
               uidvalidity: int | None) -> tuple[int, list[str]]:
        """Store the raw bytes of `batch` and move the checkpoint (see `_record`); idempotent: a
        concurrent writer of the same refs makes this try again, and the second try skips them."""
        try:
            return self._record(box, batch, uidvalidity)
        except IntegrityError:
            log.info("mailbox %s: another instance recorded the same messages; skipping them", box.name)
            return self._record(box, batch, uidvalidity)

    def _record(self, box: MailboxSettings, batch: list[FetchedMail],
                uidvalidity: int | None) -> tuple[int, list[str]]:
        """Store the raw bytes of `batch` and move the checkpoint, in one transaction.

        Returns how many rows were added and the refs the mailbox may be told about at once:
        a message under a ref whose earlier message was already finished (`acked`) is a new copy
        under a reused name (a Maildir file copied in again; IMAP never reuses a UID). It is
        recorded as a message of its own, without the ref (which stays the first one's), and
        processing recognises it as `duplicate` unless its content is new.
        """
        with self.db.transaction() as s:
            refs = [m.source_ref for m in batch if m.source_ref]
            known: dict[str | None, str] = {}
            if refs:
                known = dict(s.execute(select(InboundMessage.source_ref, InboundMessage.state).where(
                    InboundMessage.mailbox == box.name, InboundMessage.source_ref.in_(refs))).all())
            added, again = 0, []
            for m in batch:
                ref = m.source_ref or None
                if ref in known:
                    if known[ref] != ACKED:
                        continue  # fetched again after a crash before the mailbox was flagged
                    again.append(ref)
                    ref = None
                digest = hashlib.sha256(m.raw).hexdigest()
                s.add(InboundMessage(
                    mailbox=box.name, source_ref=ref, uidvalidity=m.uidvalidity,
                    uid=m.uid if ref else None, dedup_key=f"sha256:{digest}", sha256=digest, size=len(m.raw),
                    raw=m.raw, state=RECORDED, received_at=self.desk.clock()))  # the desk's clock: deadlines
                added += 1
            uids = [m.uid for m in batch if m.uid is not None]
            if uidvalidity is not None and uids:
                s.execute(update(MailboxCheckpoint).where(
                    MailboxCheckpoint.mailbox == box.name, MailboxCheckpoint.last_uid < max(uids),
                ).values(last_uid=max(uids)))
        return added, again

    # -- steps 3-6: parse, decide, route, act ----------------------------------------------------

    def process_pending(self, box: MailboxSettings, stats: IntakeStats | None = None) -> int:
        """Process every recorded row of `box`: a bounded batch per transaction, and a transaction
        ends after STEP_SECONDS too, so work is committed however slow the messages or the
        database (issue 9: under a kill every 2-3 s a 200-message batch never committed)."""
        done = 0
        for ids in self._pending_batches(box):
            while ids:
                covered, processed = self._process_step(box, ids, stats)
                done += processed
                ids = ids[covered:]
        return done

    def _process_step(self, box: MailboxSettings, ids: list[int],
                      stats: IntakeStats | None) -> tuple[int, int]:
        """One transaction over the first of `ids`; (how many of `ids` it covered, rows processed)."""
        started = time.monotonic()
        decided: list[InboundMessage] = []  # logged once committed: only what is true
        records: dict[int, str] = {}
        with self.db.transaction() as s:
            # Claimed in the read: rows another instance processed meanwhile are no longer
            # `recorded`, and on PostgreSQL rows it is processing now are locked and skipped.
            claim = (select(InboundMessage)
                     .where(InboundMessage.id.in_(ids), InboundMessage.state == RECORDED)
                     .order_by(InboundMessage.id))
            if self.db.is_postgres:
                claim = claim.with_for_update(skip_locked=True)
            rows = list(s.scalars(claim))
            if not rows:
                return len(ids), 0
            parsed = self._parse(box, [r.raw for r in rows])  # lazily, parsed ahead
            seen: set[str] = set()  # dedup keys this transaction has already turned into records
            checked: list[tuple] = []  # form checks worked out ahead, offered to the desk
            last = 0  # rows processed
            try:
                for start in range(0, len(rows), GROUP):
                    if start and time.monotonic() - started > STEP_SECONDS:
                        break  # commit what is done; the rest goes in the next step
                    group = rows[start:start + GROUP]
                    pairs = list(islice(parsed, len(group)))
                    if len(pairs) != len(group):
                        raise RuntimeError("parser returned fewer messages than it was given")
                    msgs = [msg for msg, _ in pairs]
                    for msg, check in pairs:
                        if check is not None:
                            key = ahead_key(msg.subject, msg.text, form_files(msg))
                            FORMS_AHEAD[key] = check
                            checked.append(key)
                    keys = [_dedup_key(row, msg) for row, msg in zip(group, msgs, strict=True)]
                    known = known_dedup_keys(s, box, keys)
                    for row, msg, key in zip(group, msgs, keys, strict=True):
                        disposition = self._process_one(s, box, row, msg, key in known or key in seen)
                        decided.append(row)
                        if disposition != "error":
                            seen.add(key)
                        if stats is not None:
                            stats.count(disposition)
                    last = start + len(group)
                if decided and log.isEnabledFor(logging.INFO):  # their IDs, in one query
                    made = {r.ticket_id for r in decided if r.ticket_id}
                    records = dict(s.execute(select(Ticket.id, Ticket.public_id).where(
                        Ticket.id.in_(made))).all()) if made else {}
            finally:
                parsed.close()  # a step ended early: messages parsed ahead are dropped
                for key in checked:  # those of filtered mail, follow-ups, duplicates
                    FORMS_AHEAD.pop(key, None)
        for row in decided:
            _log_decided(box, row, records.get(row.ticket_id or 0, ""))
        if last == len(rows):
            return len(ids), last
        return sum(1 for i in ids if i <= rows[last - 1].id), last

    def _parse(self, box: MailboxSettings,
               raws: list[bytes]) -> Generator[tuple[ParsedMessage, object], None, None]:
        """(message, its MAIL-8 form check when a worker worked it out, else None), in order."""
        if (self.parse_many == self.pool.parse and self.pool.workers and box.kind == "tickets"
                and self.settings.desk.form_check):
            return self.pool.parse_with(raws, ahead.form_check)
        return ((msg, None) for msg in self.parse_many(raws))

    def _pending_batches(self, box: MailboxSettings) -> Iterator[list[int]]:
        with self.db.sessions() as s:
            pending = s.execute(select(InboundMessage.id, InboundMessage.size).where(
                InboundMessage.mailbox == box.name, InboundMessage.state == RECORDED,
            ).order_by(InboundMessage.id)).all()
        batch: list[int] = []
        size = 0
        for row_id, row_size in pending:
            if batch and (size + row_size > BATCH_BYTES or len(batch) >= box.batch_size):
                yield batch
                batch, size = [], 0
            batch.append(row_id)
            size += row_size
        if batch:
            yield batch

    def _process_one(self, s: Session, box: MailboxSettings, row: InboundMessage,
                     msg: ParsedMessage, maybe_duplicate: bool = True) -> str:
        """Decide and act on one message inside a savepoint; any failure is an `error` row.

        The row's own fields are set before the desk is called, so they are written with the
        desk's first flush instead of in UPDATEs of their own.
        """
        try:
            with s.begin_nested():
                self._describe(row, msg)
                self._act(s, box, row, msg, maybe_duplicate)
                if broken := [d for d in msg.defects if d.startswith("unparseable")]:
                    row.reasons = [*(row.reasons or ()),
                                   f"письмо разобрано не полностью: {', '.join(broken)}"]
        except Exception as exc:  # one bad message must never stop the mailbox
            log.exception("mailbox %s: inbound #%s failed", box.name, row.id)
            self._describe(row, msg)  # the rollback undid them with the rest
            row.disposition, row.reasons = "error", [f"{type(exc).__name__}: {exc}"[:500]]
            row.ticket_id = None
            row.attempts = (row.attempts or 0) + 1
            if row.attempts < ERROR_RETRIES:  # a passing fault (a deadlock, a lost connection)
                row.state = RECORDED  # is tried again in the next pass; then `inbound retry`
        return row.disposition or "error"

    @staticmethod
    def _describe(row: InboundMessage, msg: ParsedMessage) -> None:
        row.message_id = msg.message_id
        row.from_addr = msg.from_addr[:320]
        row.subject = msg.subject
        row.dedup_key = _dedup_key(row, msg)
        row.state = ACKED if not row.source_ref else PROCESSED

    def _act(self, s: Session, box: MailboxSettings, row: InboundMessage, msg: ParsedMessage,
             maybe_duplicate: bool = True) -> None:
        # `maybe_duplicate` is False when one query for the whole group found no earlier row
        # with this key (and no message of this transaction had it): nothing to look up.
        original = find_duplicate(s, box, row) if maybe_duplicate else None
        if original is not None:
            row.disposition, row.ticket_id = "duplicate", original.ticket_id
            row.reasons = [f"уже получено как входящее #{original.id} (совпадает "
                           f"{'Message-ID' if msg.message_id else 'содержимое'})"]
            return
        decision = decide(msg, self._context(box))
        row.rule_hits = [{"rule": h.rule, "reason": h.reason} for h in decision.hits]
        if decision.disposition is not None:
            self._filter(s, row, msg, decision)
            return
        unconfirmed = self._unconfirmed_sender(box, msg)
        if unconfirmed and box.authentication == "enforce":
            self._filter(s, row, msg, Decision(FILTERED, (Hit(
                "authentication", f"поддельный отправитель (forged): {unconfirmed}", {}), *decision.hits)))
            return
        take_in(s, self.desk, box, row, msg, unconfirmed)

    @staticmethod
    def _unconfirmed_sender(box: MailboxSettings, msg: ParsedMessage) -> str:
        """Why MAIL-2 does not confirm this allowed-domain sender ("" when it does, or is off)."""
        if box.authentication == "off" or not box.allowed_domains:
            return ""
        check = check_sender(msg, box.trusted_authserv_ids)
        return "" if check.confirmed else check.reason

    def _filter(self, s: Session, row: InboundMessage, msg: ParsedMessage, decision: Decision) -> None:
        row.disposition, row.reasons = decision.disposition, decision.reasons
        if decision.disposition == "bounce" and msg.bounce and msg.bounce.original_message_ids:
            item = s.scalar(select(OutboxItem).where(
                OutboxItem.message_id.in_(msg.bounce.original_message_ids)).limit(1))
            if item is not None:  # LOOP-1: our letter came back; staff see it on its record
                row.bounced_outbox_id, row.ticket_id = item.id, item.ticket_id
                if not msg.bounce.temporary:
                    item.status = outbox.BOUNCED
                    item.last_error = f"bounced: {', '.join(msg.bounce.recipients) or 'recipient unknown'}"
                ticket = self.desk.ticket_by_id(s, item.ticket_id) if item.ticket_id else None
                self.desk.audit(s, ticket, SYSTEM, "bounce", None, outbox.BOUNCED, inbound_id=row.id,
                                outbox_id=item.id, temporary=msg.bounce.temporary)
                if ticket is not None and not msg.bounce.temporary:
                    self.desk.on_change(s, ticket, "letter_bounced")  # the card says so
                return
        self.desk.audit(s, None, SYSTEM, "filtered", None, decision.disposition, inbound_id=row.id,
                        reasons=decision.reasons)

    def _context(self, box: MailboxSettings) -> RuleContext:
        return RuleContext(mailbox_address=box.address, mailbox_kind=box.kind,
                           allowed_domains=box.allowed_domains, allow_subdomains=box.allow_subdomains,
                           own_addresses=self.own_addresses,
                           max_attachment_bytes=box.max_attachment_bytes,
                           own_message_id_domain=box.address.rpartition("@")[2])

    # -- step 7: acknowledge the mailbox ---------------------------------------------------------

    def finish_acks(self, box: MailboxSettings, source: MailSource) -> int:
        """Flag/move every processed message in the mailbox, then remember that it was done."""
        with self.db.sessions() as s:
            rows = s.execute(select(InboundMessage.id, InboundMessage.source_ref).where(
                InboundMessage.mailbox == box.name, InboundMessage.state == PROCESSED,
            ).order_by(InboundMessage.id)).all()
        if not rows:
            return 0
        source.mark_processed([ref for _, ref in rows])
        with self.db.transaction() as s:
            s.execute(update(InboundMessage).where(InboundMessage.id.in_([i for i, _ in rows]))
                      .values(state=ACKED))
        return len(rows)


def _dedup_key(row: InboundMessage, msg: ParsedMessage) -> str:
    """What recognises the same mail again: its Message-ID, or its content hash without one."""
    return (msg.message_id or f"sha256:{row.sha256}")[:998]


def _log_decided(box: MailboxSettings, row: InboundMessage, record: str) -> None:
    """One line per message: which mailbox, which inbound record, what it became and why (the
    fields also as `extra`, for `[log] format = "json"`)."""
    why = f": {row.reasons[0]}" if row.reasons and not record else ""
    log.info("mailbox %s: inbound #%s %s%s%s", box.name, row.id, row.disposition,
             f" {record}" if record else "", why,
             extra={"mailbox": box.name, "inbound_id": row.id, "disposition": row.disposition,
                    "record": record or None})


def take_in(s: Session, desk: Desk, box: MailboxSettings, row: InboundMessage, msg: ParsedMessage,
            unconfirmed: str = "") -> Ticket:
    """Route a message the rules let through (or staff accepted): a new record, or a follow-up of
    the one it answers (MAIL-4, MAIL-5); `row` records what it became."""
    kept, refused = size_split(msg.attachments, box.max_attachment_bytes)
    target = route(s, box, msg)
    row.reasons = [target.reason] + [f"вложение сверх лимита {size_text(box.max_attachment_bytes)} "
                                     f"не сохранено: {f.filename}" for f in refused]
    if target.ticket is None:
        row.disposition = "ticket"
        ticket = desk.open_from_mail(s, box, row, msg, kept, refused, linked_to=target.linked_to)
    else:
        row.disposition = "followup"
        # A late reply to a finished ticket opens a new, linked one (MAIL-5).
        ticket = desk.add_sender_mail(s, box, target.ticket, row, msg, kept, refused)
        if ticket is not target.ticket:
            row.disposition = "ticket"
    row.ticket_id = ticket.id
    if unconfirmed:  # MAIL-2 `warn`: accepted, and staff see why they should be careful
        row.reasons = [*row.reasons, f"отправитель не подтверждён: {unconfirmed}"]
        desk.flag_unconfirmed_sender(s, ticket, row, unconfirmed)
    return ticket


def accept_filtered(s: Session, desk: Desk, inbound_id: int, actor: StaffMember) -> Ticket:
    """A filtered message a staff member says is a real request: taken in as if the rules had let
    it through (the sender gets what any sender gets), audited with who decided and what the
    rules had said."""
    desk.may("register", actor)
    row = s.get(InboundMessage, inbound_id, with_for_update=True)
    if row is None:
        raise Refused(f"Входящего письма #{inbound_id} нет")
    if row.disposition not in domain.TAKEABLE or row.ticket_id is not None:
        raise Refused(f"Письмо #{inbound_id} не отфильтровано ({row.disposition or row.state}): "
                      "принять можно только отфильтрованное")
    if row.raw_deleted_at is not None:
        raise Refused(f"Исходное письмо #{inbound_id} удалено по сроку хранения: принять его нельзя")
    box = desk.settings.mailbox(row.mailbox)
    before, why = row.disposition, list(row.reasons or ())
    ticket = take_in(s, desk, box, row, parse_message(row.raw))
    row.reasons = [f"принято вручную ({actor.name}); правила: {'; '.join(why) or before}", *row.reasons]
    desk.audit(s, ticket, actor.name, "filtered_accepted", before, row.disposition, inbound_id=row.id,
               reasons=why)
    return ticket
