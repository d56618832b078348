"""What every handler gets: the desk's services and the staff member who sent the update."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar
from zoneinfo import ZoneInfo

from sqlalchemy.orm import Session
from telegram.ext import Application, CallbackContext, ExtBot

from bot.callbacks import CallbackSigner
from bot.cards import display_zone
from inboxdesk.desk import Desk
from inboxdesk.settings import Settings
from inboxdesk.staff import StaffMember
from storage.db import Database

T = TypeVar("T")


@dataclass
class BotServices:
    """The desk, the database and the button signer; `wake` starts outbox delivery at once."""

    settings: Settings
    db: Database
    desk: Desk
    signer: CallbackSigner
    wake: Callable[[], None] = field(default=lambda: None)

    @property
    def zone(self) -> ZoneInfo:
        return display_zone(self.settings)

    async def read(self, fn: Callable[[Session], T]) -> T:
        """Run `fn` with a read-only session, in a thread (the database is blocking)."""
        def run() -> T:
            with self.db.sessions() as session:
                return fn(session)
        return await asyncio.to_thread(run)

    async def act(self, fn: Callable[[Session], T]) -> T:
        """Run `fn` as one unit of work (committed, or rolled back on any error), then deliver."""
        def run() -> T:
            with self.db.transaction() as session:
                return fn(session)
        result = await asyncio.to_thread(run)
        self.wake()
        return result


class DeskContext(CallbackContext[ExtBot[None], dict[Any, Any], dict[Any, Any], dict[Any, Any]]):
    """PTB's context with the services and the member the access gate found (BOT-1)."""

    def __init__(self, application: Application[Any, Any, Any, Any, Any, Any], chat_id: int | None = None,
                 user_id: int | None = None) -> None:
        super().__init__(application, chat_id, user_id)
        self._member: StaffMember | None = None

    @property
    def services(self) -> BotServices:
        return self.application.bot_data["services"]

    @property
    def member(self) -> StaffMember:
        """The staff member acting; the gate stops every update from anyone else."""
        if self._member is None:
            raise RuntimeError("handler reached without a staff member (access gate missing)")
        return self._member

    @member.setter
    def member(self, value: StaffMember) -> None:
        self._member = value
