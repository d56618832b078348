"""The composition root: builds every part from settings (the only module that knows them all)."""

from __future__ import annotations

from functools import cached_property
from typing import TYPE_CHECKING
from zoneinfo import ZoneInfo

from sqlalchemy.orm import Session

from inboxdesk.desk import Desk
from inboxdesk.retention import Retention
from inboxdesk.settings import MailboxSettings, Settings
from inboxdesk.timers import Timers
from mailflow.delivery import EmailDelivery, MailTransport, make_transport
from mailflow.intake import Intake
from mailflow.parse_pool import default_workers
from mailflow.sources import MailSource
from mailflow.sources.imap import ImapSource
from mailflow.sources.maildir import MaildirSource
from storage.db import Database

if TYPE_CHECKING:
    from bot.application import StaffBot


class App:
    """Settings → database, desk, intake, sources and delivery, created on first use."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.zone = ZoneInfo(settings.worktime.tz)  # every time shown to a person is in it

    @cached_property
    def db(self) -> Database:
        db = Database(self.settings.database_url)
        db.prepare()  # a first start sets the schema up; an old one waits for `db upgrade`
        return db

    def prepare(self) -> None:
        """Open the database now (set up when empty; SchemaMismatch when its schema is another's)."""
        _ = self.db

    @cached_property
    def desk(self) -> Desk:
        desk = Desk(self.settings)
        if self.settings.telegram.notifies:
            from bot.notifications import CardQueue

            desk.listeners.append(CardQueue(self.settings.telegram.staff_chat_id, desk.clock))
        return desk

    @cached_property
    def intake(self) -> Intake:
        workers = self.settings.intake.workers
        return Intake(self.db, self.settings, self.desk,
                      workers=default_workers() if workers is None else workers)

    @cached_property
    def timers(self) -> Timers:
        """Deadline warnings, reminders and automatic closing (issue 5)."""
        return Timers(self.db, self.desk)

    @cached_property
    def retention(self) -> Retention:
        """Deleting raw letters and files, anonymising finished records, when configured."""
        return Retention(self.db, self.settings.retention)

    @cached_property
    def email_delivery(self) -> EmailDelivery:
        delivery = EmailDelivery(self.db, self.settings.outbound, self.mail_transport)
        delivery.gave_up = self._letter_given_up
        return delivery

    @cached_property
    def staff_bot(self) -> StaffBot | None:
        """The Telegram bot, or None when `[telegram] token_env` holds no token."""
        if not self.settings.telegram.token:
            return None
        from bot.application import StaffBot

        return StaffBot(self.settings, self.db, self.desk)

    def _letter_given_up(self, session: Session, ticket_id: int) -> None:
        ticket = self.desk.ticket_by_id(session, ticket_id)
        if ticket is not None:
            self.desk.on_change(session, ticket, "letter_failed")

    def mail_transport(self) -> MailTransport:
        out = self.settings.outbound
        return make_transport(out, self.settings.resolve(out.path))

    def source(self, box: MailboxSettings) -> MailSource:
        """A fresh, unopened source for `box`."""
        if box.source == "imap":
            return ImapSource(host=box.host, port=box.port, security=box.security,
                              username=box.username, password=box.password, folder=box.folder,
                              processed_folder=box.processed_folder, ssl_verify=box.tls_verify,
                              ca_file=box.tls_ca_file)
        return MaildirSource(self.settings.resolve(box.path), processed_folder=box.processed_folder)

    def close(self) -> None:
        if "intake" in self.__dict__:
            self.intake.close()
        if "db" in self.__dict__:
            self.db.dispose()
