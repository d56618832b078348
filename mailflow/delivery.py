"""Delivering the outbox: claim due letters, send them, record each outcome at once.

A letter is marked sent in its own commit right after the server accepted it, so a crash can
repeat at most the one letter in flight. Transports say whether a failure is permanent.
"""

from __future__ import annotations

import asyncio
import logging
import mailbox
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from functools import partial
from pathlib import Path
from typing import Protocol

import aiosmtplib
from sqlalchemy import select
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session

from inboxdesk.failpoints import failpoint
from inboxdesk.settings import OutboundSettings
from mailflow.sources.maildir import make_maildir
from mailflow.tls import client_context
from storage import outbox
from storage.db import Database
from storage.models import OutboxItem

log = logging.getLogger(__name__)

LEASE = timedelta(minutes=5)


class DeliveryError(Exception):
    """A letter could not be handed over; `permanent` ones are not retried."""

    def __init__(self, message: str, permanent: bool = False) -> None:
        super().__init__(message)
        self.permanent = permanent


class ServerUnavailable(DeliveryError):
    """The server could not be reached or dropped the connection: no letter's fault."""


@dataclass(frozen=True)
class Letter:
    """What a transport needs of an outbox row (plain data, safe outside the session)."""

    id: int
    mail_from: str
    recipients: tuple[str, ...]
    payload: bytes


class MailTransport(Protocol):
    async def __aenter__(self) -> MailTransport: ...
    async def __aexit__(self, *exc: object) -> None: ...
    async def send(self, letter: Letter) -> None:
        """Hand `letter` over or raise DeliveryError."""
        ...


class SmtpTransport:
    """One SMTP connection for a run of letters (aiosmtplib)."""

    def __init__(self, cfg: OutboundSettings) -> None:
        self.cfg = cfg
        self.client: aiosmtplib.SMTP | None = None

    async def __aenter__(self) -> SmtpTransport:
        cfg = self.cfg
        context = client_context(cfg.tls_verify, cfg.tls_ca_file)
        self.client = aiosmtplib.SMTP(
            hostname=cfg.host, port=cfg.port, timeout=cfg.timeout_seconds,
            use_tls=cfg.security == "ssl", start_tls=cfg.security == "starttls",
            tls_context=context if cfg.security != "none" else None)
        try:
            await self.client.connect()
            if cfg.username:
                await self.client.login(cfg.username, cfg.password)
        except aiosmtplib.SMTPAuthenticationError as exc:
            raise ServerUnavailable(f"SMTP {cfg.host}:{cfg.port}: login failed for {cfg.username} "
                                    f"({exc.code})") from None
        except (aiosmtplib.SMTPException, OSError) as exc:
            raise ServerUnavailable(f"SMTP {cfg.host}:{cfg.port}: {_describe(exc)}") from None
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self.client is not None and self.client.is_connected:
            try:
                await self.client.quit()
            except (aiosmtplib.SMTPException, OSError):
                self.client.close()

    async def send(self, letter: Letter) -> None:
        assert self.client is not None
        try:
            errors, _ = await self.client.sendmail(letter.mail_from, list(letter.recipients), letter.payload)
        except aiosmtplib.SMTPRecipientsRefused as exc:
            raise DeliveryError(f"all recipients refused: {_describe(exc)}",
                                permanent=all(r.code >= 500 for r in exc.recipients)) from None
        except aiosmtplib.SMTPResponseException as exc:
            raise DeliveryError(f"SMTP {exc.code} {exc.message}", permanent=exc.code >= 500) from None
        except (aiosmtplib.SMTPServerDisconnected, aiosmtplib.SMTPConnectError, OSError) as exc:
            raise ServerUnavailable(f"SMTP {self.cfg.host}:{self.cfg.port}: {_describe(exc)}") from None
        except aiosmtplib.SMTPException as exc:
            raise DeliveryError(f"SMTP {self.cfg.host}:{self.cfg.port}: {_describe(exc)}") from None
        if errors:
            log.warning("outbox #%s: some recipients refused: %s", letter.id, errors)


class MaildirTransport:
    """The embedded alternative: letters land as files in a local Maildir."""

    def __init__(self, path: Path) -> None:
        # mailbox.Maildir(create=True) makes the subfolders only when `path` itself is new: an
        # existing empty folder would refuse every letter, for good.
        make_maildir(path)
        self.box = mailbox.Maildir(path, factory=None, create=False)

    async def __aenter__(self) -> MaildirTransport:
        return self

    async def __aexit__(self, *exc: object) -> None:
        return None

    async def send(self, letter: Letter) -> None:
        try:
            await asyncio.to_thread(self.box.add, letter.payload)
        except OSError as exc:
            raise ServerUnavailable(f"Maildir outbound: {exc}") from None


def make_transport(cfg: OutboundSettings, maildir_path: Path) -> MailTransport:
    """The transport `[outbound] transport` names."""
    return SmtpTransport(cfg) if cfg.transport == "smtp" else MaildirTransport(maildir_path)


def _describe(exc: BaseException) -> str:
    text = str(exc).strip() or type(exc).__name__
    return text.splitlines()[0][:300]


class EmailDelivery:
    """Sends due email rows of the outbox through one transport."""

    def __init__(self, db: Database, cfg: OutboundSettings,
                 transport_factory: Callable[[], MailTransport]) -> None:
        self.db, self.cfg, self.transport_factory = db, cfg, transport_factory
        self.outages = 0  # consecutive failures to reach the server at all
        self.recovered = False
        # Outcomes the database could not take when they happened (it went away mid-batch): a
        # letter the server accepted must be marked sent, not sent again when its lease ends,
        # and the rest of the batch must be due again at once. Written first when it is back.
        self.unrecorded: list[Callable[[], None]] = []
        self.watch: outbox.AttemptWatcher = outbox.unwatched
        # Told when a record's letter is given up on (the App shows it on the record's card).
        self.gave_up: Callable[[Session, int], None] = lambda _session, _ticket_id: None

    async def deliver_due(self, limit: int = 100) -> int:
        """Send what is due now; returns how many letters were accepted by the server."""
        await asyncio.to_thread(self._catch_up)
        letters = await asyncio.to_thread(self._claim, limit)
        if not letters:
            return 0
        sent = 0
        try:
            async with self.transport_factory() as transport:
                for i, letter in enumerate(letters):
                    try:
                        await transport.send(letter)
                    except ServerUnavailable:
                        raise
                    except DeliveryError as exc:
                        await self._record(partial(self._failed, letter, exc), letters[i + 1:])
                        continue
                    failpoint("after_send")
                    self.watch("email", outbox.SENT)
                    await self._record(partial(self._sent, letter), letters[i + 1:])
                    sent += 1
        except ServerUnavailable as exc:
            self.watch("email", outbox.UNAVAILABLE)
            # The server as a whole is unreachable: that is not the letters' fault, so it does not
            # use up their attempts (an outage of a day must not turn mail into `failed`).
            self.outages += 1
            delay = min(self.cfg.retry_base_seconds * 2 ** (self.outages - 1), 300.0)
            log.warning("outbox: %s; %d letter(s) wait, next try in %.0f s", exc,
                        len(letters) - sent, delay)
            await asyncio.to_thread(self._release, letters[sent:], timedelta(seconds=delay))
            return sent
        self.outages = 0
        return sent

    async def _record(self, write: Callable[[], None], rest: list[Letter]) -> None:
        try:
            await asyncio.to_thread(write)
        except DBAPIError:
            self.unrecorded.append(write)
            if rest:
                self.unrecorded.append(partial(self._release, rest, timedelta(0)))
            raise

    def _catch_up(self) -> None:
        while self.unrecorded:
            self.unrecorded[0]()
            self.unrecorded.pop(0)

    def _claim(self, limit: int) -> list[Letter]:
        with self.db.transaction() as s:
            if not self.recovered:
                released = outbox.release_dead_claims(s, "email")
                if released:
                    log.info("outbox: %d letter(s) left claimed by a stopped process are due again", released)
                self.recovered = True
            items: list[OutboxItem] = outbox.claim_due(s, "email", limit, LEASE)
            return [Letter(i.id, i.mail_from, tuple(i.recipients), i.payload) for i in items]

    def _release(self, letters: list[Letter], delay: timedelta) -> None:
        with self.db.transaction() as s:
            outbox.release(s, [letter.id for letter in letters], delay)

    def _sent(self, letter: Letter) -> None:
        with self.db.transaction() as s:
            outbox.mark_sent(s, letter.id)
        log.info("outbox #%s sent to %s", letter.id, ", ".join(letter.recipients),
                 extra={"outbox_id": letter.id})

    def _failed(self, letter: Letter, exc: DeliveryError) -> None:
        with self.db.transaction() as s:
            status = outbox.mark_attempt_failed(
                s, letter.id, str(exc), exc.permanent, self.cfg.max_attempts,
                timedelta(seconds=self.cfg.retry_base_seconds))
            ticket_id = s.scalar(select(OutboxItem.ticket_id).where(OutboxItem.id == letter.id))
            if status == outbox.FAILED and ticket_id is not None:
                self.gave_up(s, ticket_id)  # in the same transaction: staff hear of it for sure
        self.watch("email", status if status == outbox.FAILED else outbox.RETRY)
        log.warning("outbox #%s: %s (%s)", letter.id, exc, "gave up" if status == outbox.FAILED
                    else "will retry", extra={"outbox_id": letter.id})
