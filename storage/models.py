"""Typed SQLAlchemy models: every table inboxdesk keeps.

Times are stored as timezone-aware UTC. Raw mail and attachment bytes live in the database so a
record is complete on its own (a mailbox can be wiped without losing anything).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, ClassVar

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Text,
    UniqueConstraint,
    event,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship


def utcnow() -> datetime:
    return datetime.now(UTC)


class Base(DeclarativeBase):
    # Stable constraint names so Alembic migrations work the same on SQLite and PostgreSQL.
    metadata = MetaData(
        naming_convention={
            "ix": "ix_%(column_0_label)s",
            "uq": "uq_%(table_name)s_%(column_0_name)s",
            "ck": "ck_%(table_name)s_%(constraint_name)s",
            "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
            "pk": "pk_%(table_name)s",
        }
    )
    type_annotation_map: ClassVar = {datetime: DateTime(timezone=True), dict[str, Any]: JSON, list[Any]: JSON}


class MailboxCheckpoint(Base):
    """Where intake stopped in one IMAP folder: new mail is every UID above `last_uid`."""

    __tablename__ = "mailbox_checkpoints"

    mailbox: Mapped[str] = mapped_column(String(100), primary_key=True)
    uidvalidity: Mapped[int] = mapped_column(BigInteger)
    last_uid: Mapped[int] = mapped_column(BigInteger, default=0)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class MailboxLease(Base):
    """Who reads a mailbox now (issue 9): one holder (`host:pid`) at a time, until `expires_at`;
    the holder renews it while it works, and another instance takes over once it runs out."""

    __tablename__ = "mailbox_leases"

    mailbox: Mapped[str] = mapped_column(String(100), primary_key=True)
    holder: Mapped[str | None] = mapped_column(String(200))
    expires_at: Mapped[datetime | None] = mapped_column()
    # When some instance last read the mailbox to the end (health checks, `inboxdesk status`).
    last_read_at: Mapped[datetime | None] = mapped_column()


class InboundMessage(Base):
    """One fetched message, recorded with its raw bytes before the mailbox is touched.

    `source_ref` identifies the message in its source (``"UIDVALIDITY:UID"`` for IMAP, the file key
    for Maildir, empty for `ingest`); `dedup_key` is the Message-ID, or a content hash without one,
    and recognises the same mail fetched again under a new UIDVALIDITY.
    """

    __tablename__ = "inbound_messages"
    __table_args__ = (
        UniqueConstraint("mailbox", "source_ref", name="uq_inbound_source"),
        Index("ix_inbound_dedup", "mailbox", "dedup_key"),
        Index("ix_inbound_pending", "state"),
        Index("ix_inbound_ticket", "ticket_id"),
        Index("ix_inbound_received", "received_at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    mailbox: Mapped[str] = mapped_column(String(100))
    source_ref: Mapped[str | None] = mapped_column(String(300))
    uidvalidity: Mapped[int | None] = mapped_column(BigInteger)
    uid: Mapped[int | None] = mapped_column(BigInteger)
    message_id: Mapped[str | None] = mapped_column(String(998))
    dedup_key: Mapped[str] = mapped_column(String(998))
    sha256: Mapped[str] = mapped_column(String(64))
    size: Mapped[int] = mapped_column(Integer)
    raw: Mapped[bytes] = mapped_column(LargeBinary)
    from_addr: Mapped[str] = mapped_column(String(320), default="")
    subject: Mapped[str] = mapped_column(Text, default="")
    received_at: Mapped[datetime] = mapped_column(default=utcnow)
    # recorded -> processed -> acked (the mailbox was flagged/moved); see mailflow.intake.
    state: Mapped[str] = mapped_column(String(20), default="recorded")
    disposition: Mapped[str | None] = mapped_column(String(20))
    reasons: Mapped[list[Any]] = mapped_column(default=list)
    rule_hits: Mapped[list[Any]] = mapped_column(default=list)
    ticket_id: Mapped[int | None] = mapped_column(ForeignKey("tickets.id"))
    bounced_outbox_id: Mapped[int | None] = mapped_column(ForeignKey("outbox_items.id"))
    # How often processing failed (`error`): retried up to a bound, then left for `inbound retry`.
    attempts: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    # Retention (issue 13): when `raw` was emptied; the parsed text stays with the record.
    raw_deleted_at: Mapped[datetime | None] = mapped_column()


class Ticket(Base):
    """A support ticket or a citizen's appeal (`kind`), with its human-readable `public_id`."""

    __tablename__ = "tickets"

    id: Mapped[int] = mapped_column(primary_key=True)
    public_id: Mapped[str] = mapped_column(String(40), unique=True)
    kind: Mapped[str] = mapped_column(String(20))  # ticket | appeal
    mailbox: Mapped[str] = mapped_column(String(100))
    status: Mapped[str] = mapped_column(String(40))
    subject: Mapped[str] = mapped_column(Text, default="")
    requester_email: Mapped[str] = mapped_column(String(320), default="")
    requester_name: Mapped[str] = mapped_column(String(300), default="")
    organisation: Mapped[str] = mapped_column(String(300), default="")
    priority: Mapped[int | None] = mapped_column(Integer)
    impact: Mapped[str | None] = mapped_column(String(40))
    assignee: Mapped[str | None] = mapped_column(String(100))
    line: Mapped[int] = mapped_column(Integer, default=1)
    linked_ticket_id: Mapped[int | None] = mapped_column(ForeignKey("tickets.id"))
    fields: Mapped[dict[str, Any]] = mapped_column(default=dict)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)
    # Issue 3: how the request came (email | phone), what a form left out (APL-1), and when the
    # status last changed (the reopen window of MAIL-5 counts from it).
    channel: Mapped[str] = mapped_column(String(20), default="email")
    missing_fields: Mapped[list[Any]] = mapped_column(default=list)
    # MAIL-2 in `warn` mode (issue 10): why a sender's mail on this record was not confirmed.
    sender_check: Mapped[str] = mapped_column(String(300), default="", server_default="")
    status_changed_at: Mapped[datetime | None] = mapped_column()
    # APL-6 (59-FZ): appeal deadlines; one extension at most, with its reason.
    registered_at: Mapped[datetime | None] = mapped_column()
    registration_due_at: Mapped[datetime | None] = mapped_column()
    answer_due_at: Mapped[datetime | None] = mapped_column()
    extension_days: Mapped[int | None] = mapped_column(Integer)
    extension_reason: Mapped[str | None] = mapped_column(Text)
    # MAIL-7 (issue 5): the acceptance clock. It starts at arrival (or when the sender reopens a
    # finished ticket nobody owns), stops for good when the ticket is taken into work
    # (`accepted_at`), and is paused while the ticket waits in `Обратная связь`, when
    # `accept_due_at` is None. Recomputed from the status history on every status change.
    accept_started_at: Mapped[datetime | None] = mapped_column()
    accept_due_at: Mapped[datetime | None] = mapped_column()
    accepted_at: Mapped[datetime | None] = mapped_column()
    # Retention (issue 13): when the requester's personal data was removed from the record.
    anonymised_at: Mapped[datetime | None] = mapped_column()

    messages: Mapped[list[TicketMessage]] = relationship(
        back_populates="ticket", order_by="TicketMessage.id", foreign_keys="TicketMessage.ticket_id"
    )
    events: Mapped[list[AuditEvent]] = relationship(order_by="AuditEvent.id")
    letters: Mapped[list[OutboxItem]] = relationship(order_by="OutboxItem.id", viewonly=True)


class TicketMessage(Base):
    """An email in or out of a ticket, or an internal note (`direction` in/out/note)."""

    __tablename__ = "ticket_messages"
    __table_args__ = (Index("ix_ticket_messages_message_id", "message_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    ticket_id: Mapped[int] = mapped_column(ForeignKey("tickets.id"))
    direction: Mapped[str] = mapped_column(String(10))
    from_addr: Mapped[str] = mapped_column(String(320), default="")
    to_addrs: Mapped[list[Any]] = mapped_column(default=list)
    subject: Mapped[str] = mapped_column(Text, default="")
    body: Mapped[str] = mapped_column(Text, default="")
    message_id: Mapped[str | None] = mapped_column(String(998))
    author: Mapped[str | None] = mapped_column(String(100))
    inbound_id: Mapped[int | None] = mapped_column(ForeignKey("inbound_messages.id"))
    outbox_id: Mapped[int | None] = mapped_column(ForeignKey("outbox_items.id"))
    at: Mapped[datetime] = mapped_column(default=utcnow)

    ticket: Mapped[Ticket] = relationship(back_populates="messages", foreign_keys=[ticket_id])
    attachments: Mapped[list[Attachment]] = relationship(order_by="Attachment.id")


class Attachment(Base):
    """A file of a ticket message; `content` is None when it was refused (size limit, MAIL-9)."""

    __tablename__ = "attachments"

    id: Mapped[int] = mapped_column(primary_key=True)
    ticket_message_id: Mapped[int] = mapped_column(ForeignKey("ticket_messages.id"))
    filename: Mapped[str] = mapped_column(String(500))
    content_type: Mapped[str] = mapped_column(String(200))
    size: Mapped[int] = mapped_column(Integer)
    sha256: Mapped[str] = mapped_column(String(64))
    content: Mapped[bytes | None] = mapped_column(LargeBinary)
    # Retention (issue 13): when the bytes were deleted (None with `content` None: refused).
    deleted_at: Mapped[datetime | None] = mapped_column()


class AuditEvent(Base):
    """Who changed what, when, from -> to (AUD-1)."""

    __tablename__ = "audit_events"
    __table_args__ = (Index("ix_audit_ticket", "ticket_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    ticket_id: Mapped[int | None] = mapped_column(ForeignKey("tickets.id"))
    inbound_id: Mapped[int | None] = mapped_column(ForeignKey("inbound_messages.id"))
    actor: Mapped[str] = mapped_column(String(100))
    action: Mapped[str] = mapped_column(String(50))
    from_value: Mapped[str | None] = mapped_column(Text)
    to_value: Mapped[str | None] = mapped_column(Text)
    detail: Mapped[dict[str, Any]] = mapped_column(default=dict)
    at: Mapped[datetime] = mapped_column(default=utcnow)


class OutboxItem(Base):
    """An effect waiting to leave: a fully rendered email (`payload` = RFC 5322 bytes) or a chat
    message (`payload` = JSON). Rows are written in the transaction that caused them."""

    __tablename__ = "outbox_items"
    __table_args__ = (
        Index("ix_outbox_due", "status", "next_attempt_at"),
        Index("ix_outbox_message_id", "message_id"),
        Index("ix_outbox_auto_to", "to_addr", "auto", "created_at"),
        # The OUT-1 caps per record and in total (issue 10).
        Index("ix_outbox_ticket_auto", "ticket_id", "auto", "created_at"),
        Index("ix_outbox_auto_created", "auto", "created_at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    channel: Mapped[str] = mapped_column(String(20))  # email | telegram
    purpose: Mapped[str] = mapped_column(String(40))  # ack, reply, department, notice, ...
    ticket_id: Mapped[int | None] = mapped_column(ForeignKey("tickets.id"))
    mail_from: Mapped[str] = mapped_column(String(320), default="")
    recipients: Mapped[list[Any]] = mapped_column(default=list)
    to_addr: Mapped[str] = mapped_column(String(320), default="")  # first recipient, for rate caps
    subject: Mapped[str] = mapped_column(Text, default="")
    message_id: Mapped[str | None] = mapped_column(String(998))
    payload: Mapped[bytes] = mapped_column(LargeBinary)
    # pending -> sent | failed; an email that came back is `bounced` (LOOP-1).
    status: Mapped[str] = mapped_column(String(20), default="pending")
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime] = mapped_column(default=utcnow)
    claimed_until: Mapped[datetime | None] = mapped_column()
    claimed_by: Mapped[str | None] = mapped_column(String(200))  # "host:pid" of the claiming daemon
    last_error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    sent_at: Mapped[datetime | None] = mapped_column()
    auto: Mapped[bool] = mapped_column(Boolean, default=False)
    # Retention (issue 13): when the sent letter's bytes were emptied.
    payload_deleted_at: Mapped[datetime | None] = mapped_column()


class DeadlineAlert(Base):
    """A timed action done once (issue 5): a staff-chat warning or overdue alert, a reminder to the
    sender, an automatic closing. The unique key is the lock: a second daemon (or a restart)
    inserting the same (ticket, kind, point) fails and does nothing. `point` names the moment
    and the period it belongs to, e.g. ``2h@20261116T0900Z`` (two hours before the acceptance
    deadline of the clock started then); a point passed over because a later one was due at
    the same time is recorded with `sent` false."""

    __tablename__ = "deadline_alerts"
    __table_args__ = (UniqueConstraint("ticket_id", "kind", "point", name="uq_deadline_alerts_point"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    ticket_id: Mapped[int] = mapped_column(ForeignKey("tickets.id"))
    kind: Mapped[str] = mapped_column(String(40))  # accept | appeal_registration | appeal_answer | ...
    point: Mapped[str] = mapped_column(String(80))
    due_at: Mapped[datetime | None] = mapped_column()  # the deadline it was about
    sent: Mapped[bool] = mapped_column(Boolean, default=True)
    outbox_id: Mapped[int | None] = mapped_column(ForeignKey("outbox_items.id"))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class Counter(Base):
    """Sequence behind public IDs, one row per prefix and year (`HD-2026`)."""

    __tablename__ = "counters"

    name: Mapped[str] = mapped_column(String(60), primary_key=True)
    value: Mapped[int] = mapped_column(BigInteger, default=0)


class ChatCard(Base):
    """A ticket's card posted to a Telegram chat: later changes edit it in place, and a staff
    member's Telegram reply to it answers the ticket (issue 4)."""

    __tablename__ = "chat_cards"
    __table_args__ = (
        UniqueConstraint("chat_id", "message_id", name="uq_chat_cards_message"),
        Index("ix_chat_cards_ticket", "ticket_id", "chat_id"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    ticket_id: Mapped[int] = mapped_column(ForeignKey("tickets.id"))
    chat_id: Mapped[int] = mapped_column(BigInteger)
    message_id: Mapped[int] = mapped_column(BigInteger)
    # The ticket message the card quotes (the new mail it announced), kept when it is edited.
    ticket_message_id: Mapped[int | None] = mapped_column(ForeignKey("ticket_messages.id"))
    live: Mapped[bool] = mapped_column(Boolean, default=True)  # edited when the ticket changes
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class StaffRecord(Base):
    """A staff member added with `inboxdesk staff add` (settings.toml `[[staff]]` ones are not here)."""

    __tablename__ = "staff"

    name: Mapped[str] = mapped_column(String(100), primary_key=True)
    role: Mapped[str] = mapped_column(String(20))  # operator | engineer | admin
    telegram_id: Mapped[int | None] = mapped_column(BigInteger, unique=True)
    email: Mapped[str] = mapped_column(String(320), default="")
    full_name: Mapped[str] = mapped_column(String(300), default="")
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


# -- every value fits its column ---------------------------------------------------------------

def _fit(length: int) -> Any:
    def fit(_target: object, value: Any, _old: object, _initiator: object) -> Any:
        return value[:length] if isinstance(value, str) and len(value) > length else value

    return fit


def _fit_every_bounded_column() -> None:
    """Issue 9: a value longer than its column (a 2,000-character Message-ID, a 400-character
    display name) is cut to fit when it is set on a model, on SQLite and PostgreSQL alike.
    PostgreSQL refuses an over-long value and SQLite would keep it, so without this one database
    turned ordinary mail into `error` records, and a value written again by the error handler
    blocked the mailbox. Text columns have no bound and are left alone."""
    for mapper in Base.registry.mappers:
        for prop in mapper.column_attrs:
            column_type = prop.columns[0].type
            if isinstance(column_type, String) and not isinstance(column_type, Text) and column_type.length:
                event.listen(getattr(mapper.class_, prop.key), "set", _fit(column_type.length), retval=True)


_fit_every_bounded_column()
