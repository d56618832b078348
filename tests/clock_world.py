"""A desk with a controlled clock for the stories of issue 5 (deadlines, reminders, closing).

Mail comes in with `ingest` (as a mail server's pipe would deliver it), letters leave by SMTP to
aiosmtpd, and the daemon's own single step `run --once` (poll, timers, delivery) is run with the
desk's clock set: no sleeping, no wall clock. `restart()` throws the App and daemon away and
builds new ones on the same database, as a restarted service would.
"""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import select

from inboxdesk.app import App
from inboxdesk.daemon import Daemon
from inboxdesk.settings import load_settings
from storage.models import AuditEvent, DeadlineAlert, OutboxItem, Ticket
from tests.story import cli_json, smtp_out, write_settings

MSK = ZoneInfo("Europe/Moscow")
HELP, APPEALS = "help@miac.test", "appeals@miac.test"
STAFF_CHAT = -1001500
STAFF = """
[[staff]]
name = "ivanova"
role = "operator"
telegram_id = 1001
full_name = "Иванова Мария Петровна"
"""


def msk(y: int, mo: int, d: int, h: int = 0, mi: int = 0) -> datetime:
    """A Moscow wall-clock instant, as UTC (what the desk stores)."""
    return datetime(y, mo, d, h, mi, tzinfo=MSK).astimezone(UTC)


def iso_msk(value: str | None) -> str | None:
    """An ISO timestamp from the CLI, read as Moscow wall-clock time."""
    if value is None:
        return None
    at = datetime.fromisoformat(value)
    return (at if at.tzinfo else at.replace(tzinfo=UTC)).astimezone(MSK).strftime("%Y-%m-%d %H:%M")


class Clock:
    def __init__(self, at: datetime) -> None:
        self.at = at

    def __call__(self) -> datetime:
        return self.at


class World:
    """Settings for a support and an appeals mailbox (Maildir), SMTP out, a staff chat."""

    def __init__(self, tmp_path: Path, db_url: str, smtp: Any, desk: str = "", telegram: str = "",
                 extra: str = "", **help_box: Any) -> None:
        self.tmp, self.smtp = tmp_path, smtp
        boxes = [
            {"name": "help", "kind": "tickets", "address": HELP, "source": "maildir",
             "path": str(tmp_path / "in-help"), "allowed_domains": ["sev.gov.ru"], "id_prefix": "HD",
             **help_box},
            {"name": "appeals", "kind": "appeals", "address": APPEALS, "source": "maildir",
             "path": str(tmp_path / "in-appeals"), "id_prefix": "OBR"},
        ]
        self.config = write_settings(tmp_path, db_url, boxes, smtp_out(smtp))
        telegram = telegram or f"staff_chat_id = {STAFF_CHAT}\n"
        extra = STAFF + "\n[desk]\n" + desk + "\n[telegram]\n" + telegram + "\n" + extra
        self.config.write_text(self.config.read_text(encoding="utf-8") + extra, encoding="utf-8")
        self.clock = Clock(msk(2026, 11, 16, 9))
        self.app = self._new_app()

    def _new_app(self) -> App:
        app = App(load_settings(self.config))
        app.desk.clock = self.clock
        return app

    def restart(self) -> None:
        self.app.close()
        self.app = self._new_app()

    def close(self) -> None:
        self.app.close()

    # -- time and mail -----------------------------------------------------------------------------

    def at(self, when: datetime) -> World:
        self.clock.at = when
        return self

    def ingest(self, raw: bytes, mailbox: str = "help") -> None:
        stats = self.app.intake.ingest(self.app.settings.mailbox(mailbox), [raw])
        assert stats.recorded == 1, stats

    def run_once(self) -> None:
        """`inboxdesk run --once` at the clock's time: poll, timed work, delivery."""
        asyncio.run(Daemon(self.app).run_once())

    # -- the desk as staff use it ------------------------------------------------------------------

    def act(self, public_id: str, op: str, *args: Any, **kwargs: Any) -> None:
        """A desk operation by ivanova, committed."""
        with self.app.db.transaction() as s:
            ticket = self.app.desk.ticket_by_public_id(s, public_id)
            getattr(self.app.desk, op)(s, ticket, self.app.desk.staff(s).get("ivanova"), *args, **kwargs)

    def ticket(self, public_id: str) -> dict[str, Any]:
        """`inboxdesk tickets show ID --json`."""
        return cli_json(self.config, "tickets", "show", public_id)

    def tickets(self) -> list[dict[str, Any]]:
        return cli_json(self.config, "tickets", "list")

    def only_ticket(self, kind: str = "ticket") -> str:
        [record] = [t for t in self.tickets() if t["kind"] == kind]
        return record["id"]

    def record(self, public_id: str) -> Ticket:
        with self.app.db.sessions() as s:
            ticket = self.app.desk.ticket_by_public_id(s, public_id)
            assert ticket is not None
            return ticket

    # -- what happened -----------------------------------------------------------------------------

    def alerts(self) -> list[str]:
        """Texts of the staff-chat alerts in the outbox, oldest first."""
        with self.app.db.sessions() as s:
            rows = s.scalars(select(OutboxItem.payload).where(
                OutboxItem.channel == "telegram", OutboxItem.purpose == "alert").order_by(OutboxItem.id))
            return [json.loads(p)["text"] for p in rows]

    def alert_state(self) -> list[tuple[str, str, bool]]:
        with self.app.db.sessions() as s:
            rows = s.scalars(select(DeadlineAlert).order_by(DeadlineAlert.id))
            return [(a.kind, a.point, a.sent) for a in rows]

    def events(self, public_id: str) -> list[tuple[str, str, str | None, str | None]]:
        with self.app.db.sessions() as s:
            ticket = self.app.desk.ticket_by_public_id(s, public_id)
            rows = s.scalars(select(AuditEvent).where(AuditEvent.ticket_id == ticket.id)
                             .order_by(AuditEvent.id))
            return [(e.actor, e.action, e.from_value, e.to_value) for e in rows]
