"""The daemon: scheduled polling, IMAP IDLE watchers and outbox delivery in one event loop.

Blocking work (IMAP, the database) runs in threads; every job is a single step that can also be
run once (`run --once`). Signals only set the stop flag: the batch in hand is finished, then the
loop ends.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import threading
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from apscheduler.schedulers.asyncio import AsyncIOScheduler
from sqlalchemy.exc import DBAPIError

from inboxdesk.app import App
from inboxdesk.failures import failure_text
from inboxdesk.metrics import Metrics
from inboxdesk.settings import MailboxSettings
from mailflow.intake import IntakeStats
from mailflow.sources import MailSource, SourceError

if TYPE_CHECKING:
    from inboxdesk.watch import WatchServer

log = logging.getLogger("inboxdesk.daemon")

DELIVERY_SECONDS = 10.0  # how often the outbox is checked when nothing wakes it earlier
# IDLE is re-issued this often: short enough that a stop request is honoured quickly, and well
# inside the 29 minutes RFC 2177 allows.
IDLE_SECONDS = 5.0
RECONNECT_MAX_SECONDS = 60.0
RETENTION_SECONDS = 3600.0  # retention counts in days: once an hour is on time


class Daemon:
    def __init__(self, app: App) -> None:
        self.app = app
        self.stopping = threading.Event()
        self.inflight: set[asyncio.Task[object]] = set()
        self.scheduler: AsyncIOScheduler | None = None
        self.failing: dict[str, str] = {}
        self.database_down: dict[str, bool] = {}  # the last failure of a part was the database's
        self.metrics = Metrics()
        self.watch: WatchServer | None = None
        self.loop: asyncio.AbstractEventLoop | None = None
        # Delivery jobs woken while already running: the run goes round once more instead of the
        # wake-up being skipped (max_instances=1) until the next tick.
        self.rewoken: set[str] = set()

    # -- single steps ----------------------------------------------------------------------------

    def poll_mailbox(self, box: MailboxSettings, source: MailSource | None = None) -> IntakeStats | None:
        """Open (unless given), read everything new, close; a failure (the mail server, the
        database, anything) is one log line per kind, and the next poll tries again."""
        own = source is None
        src = source or self.app.source(box)
        started = time.monotonic()
        try:
            if own:
                src.open()
            stats = self.app.intake.poll(box, src, should_stop=self.stopping.is_set)
        except Exception as exc:  # one failing mailbox never stops the others or the daemon
            self._failure(box.name, exc)
            return None
        finally:
            if own:
                src.close()
        self.metrics.polled(box.name, stats, time.monotonic() - started)
        self._recovered(box.name)
        if stats.fetched:
            log.info("mailbox %s: %d fetched, %s", box.name, stats.fetched,
                     ", ".join(f"{k} {v}" for k, v in sorted(stats.dispositions.items())) or "none new")
        return stats

    async def deliver(self) -> int:
        """Send every due outbox letter; returns how many were accepted."""
        total = 0
        try:
            while not self.stopping.is_set():
                self.rewoken.discard("deliver")
                sent = await self.app.email_delivery.deliver_due()
                total += sent
                if sent == 0 and "deliver" not in self.rewoken:
                    break
        except Exception as exc:  # the database is away: the next tick tries again
            self._failure("outbox", exc)
            return total
        self._recovered("outbox")
        return total

    def _failure(self, name: str, exc: BaseException) -> None:
        """Log a failure once while it lasts (again only when it changes); the traceback of one
        nobody expected goes to the debug log."""
        message = failure_text(exc)
        self.database_down[name] = isinstance(exc, DBAPIError)
        self.metrics.failed(name, "database" if isinstance(exc, DBAPIError) else
                            "mailbox" if isinstance(exc, SourceError) else type(exc).__name__.lower())
        if self.failing.get(name) != message:
            log.error("%s: %s", name, message)
            if not isinstance(exc, SourceError | DBAPIError):
                log.debug("%s: unexpected failure", name, exc_info=exc)
        self.failing[name] = message

    def _recovered(self, name: str) -> None:
        if self.failing.pop(name, None) is not None:
            log.info("%s: working again", name)

    # -- run modes -------------------------------------------------------------------------------

    def run_timers(self) -> dict[str, int]:
        """Deadline warnings, reminders and closings due now (issue 5); a failure is one log line."""
        try:
            done = self.app.timers.run_due()
        except Exception as exc:  # the database may be away for a moment: the next tick tries again
            self._failure("timers", exc)
            return {}
        self._recovered("timers")
        return done

    def run_retention(self) -> None:
        """Delete and anonymise what `[retention]` says is due now; a failure is one log line."""
        if self.app.settings.retention.keeps_everything:
            return
        try:
            done = self.app.retention.run(self.app.desk.clock())
        except Exception as exc:  # the database may be away: the next run tries again
            self._failure("retention", exc)
            return
        self._recovered("retention")
        if done:
            log.info("retention: %s", done)

    def _count_deliveries(self) -> None:
        self.app.email_delivery.watch = self.metrics.attempted
        if self.app.staff_bot is not None:
            self.app.staff_bot.delivery.watch = self.metrics.attempted

    async def run_once(self) -> None:
        """Poll every mailbox once, do the timed work that is due, deliver the outbox, return."""
        self._count_deliveries()
        for box in self.app.settings.mailboxes:
            await asyncio.to_thread(self.poll_mailbox, box)
        await asyncio.to_thread(self.run_timers)
        await asyncio.to_thread(self.run_retention)
        await self.deliver()
        if self.app.staff_bot is not None:
            await self.app.staff_bot.deliver_once()

    async def run_forever(self) -> None:
        loop = self.loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self.stop)
        self.scheduler = AsyncIOScheduler(event_loop=loop)
        self._count_deliveries()
        now = datetime.now().astimezone()
        for box in self.app.settings.mailboxes:
            if box.idle and box.source == "imap":
                self._track(asyncio.create_task(asyncio.to_thread(self._idle_watch, box)))
            else:
                self.scheduler.add_job(self._job(self._poll_job, box), "interval",
                                       seconds=box.poll_seconds, next_run_time=now,
                                       id=f"poll:{box.name}", max_instances=1, coalesce=True)
        self.scheduler.add_job(self._job(self._deliver_job), "interval", seconds=DELIVERY_SECONDS,
                               next_run_time=now, id="deliver", max_instances=1, coalesce=True)
        self.scheduler.add_job(self._job(self._timers_job), "interval",
                               seconds=self.app.settings.desk.timer_seconds, next_run_time=now, id="timers",
                               max_instances=1, coalesce=True)
        if not self.app.settings.retention.keeps_everything:
            self.scheduler.add_job(self._job(asyncio.to_thread, self.run_retention), "interval",
                                   seconds=RETENTION_SECONDS, next_run_time=now, id="retention",
                                   max_instances=1, coalesce=True)
        self._start_bot(now)
        if self.app.settings.http.listen:
            from inboxdesk.watch import WatchServer  # aiohttp only where the endpoints are on

            self.watch = WatchServer(self.app, self.metrics, datetime.now(UTC))
            await self.watch.start(self.app.settings.http.listen)
            log.info("health and metrics on http://%s/", self.app.settings.http.listen)
        self.scheduler.start()
        log.info("inboxdesk running: %d mailbox(es), outbound via %s", len(self.app.settings.mailboxes),
                 self.app.settings.outbound.transport)
        while not self.stopping.is_set():
            await asyncio.sleep(0.2)
        self.scheduler.shutdown(wait=False)
        if self.inflight:
            await asyncio.gather(*self.inflight, return_exceptions=True)
        if self.watch is not None:
            await self.watch.stop()
        log.info("inboxdesk stopped")

    def stop(self) -> None:
        if not self.stopping.is_set():
            log.info("stopping after the work in hand")
        self.stopping.set()

    # -- jobs ------------------------------------------------------------------------------------

    def _job(self, fn: Callable[..., Awaitable[object]], *args: object) -> Callable[[], Awaitable[None]]:
        async def run() -> None:
            if self.stopping.is_set():
                return
            task = asyncio.ensure_future(fn(*args))
            self._track(task)
            # The scheduler cancels its jobs when it shuts down; the work in hand is finished
            # anyway (run_forever waits for every tracked task), so that is no error.
            with contextlib.suppress(asyncio.CancelledError):
                await asyncio.shield(task)

        return run

    def _track(self, task: asyncio.Task[object]) -> None:
        self.inflight.add(task)
        task.add_done_callback(self.inflight.discard)

    async def _poll_job(self, box: MailboxSettings) -> None:
        stats = await asyncio.to_thread(self.poll_mailbox, box)
        if stats and stats.processed:
            self.wake_delivery()

    async def _deliver_job(self) -> None:
        await self.deliver()

    async def _timers_job(self) -> None:
        if await asyncio.to_thread(self.run_timers):
            self.wake_delivery()

    def _start_bot(self, now: datetime) -> None:
        """The Telegram bot in this loop, and its outbox delivery, when a token is configured."""
        bot = self.app.staff_bot
        if bot is None:
            tg = self.app.settings.telegram
            log.info("Telegram bot off: no token%s", f" (${tg.token_env} is empty)" if tg.token_env else "")
            return
        assert self.scheduler is not None
        self._track(asyncio.create_task(bot.run(self.stopping, self.wake_delivery)))
        self.scheduler.add_job(self._job(self._deliver_telegram_job), "interval", seconds=DELIVERY_SECONDS,
                               next_run_time=now, id="deliver-telegram", max_instances=1, coalesce=True)

    async def _deliver_telegram_job(self) -> None:
        bot = self.app.staff_bot
        while bot is not None and bot.ready and not self.stopping.is_set():
            self.rewoken.discard("deliver-telegram")
            if not await bot.delivery.deliver_due() and "deliver-telegram" not in self.rewoken:
                break

    def wake_delivery(self) -> None:
        """Deliver now instead of at the next tick (a new ticket's acknowledgement)."""
        if self.scheduler is not None and self.scheduler.running:
            for job_id in ("deliver", "deliver-telegram"):
                job = self.scheduler.get_job(job_id)
                if job is not None:
                    self.rewoken.add(job_id)
                    job.modify(next_run_time=datetime.now().astimezone())

    def _idle_watch(self, box: MailboxSettings) -> None:
        """One connection held open: poll, IDLE until the server says there is mail, repeat.

        Supervised: whatever fails (the mail server, the database) is logged once, and the
        watcher connects again with back-off until the mailbox can be read again.
        """
        delay = 1.0
        while not self.stopping.is_set():
            source: MailSource | None = None
            try:
                source = self.app.source(box)
                source.open()
                while not self.stopping.is_set():
                    stats = self.poll_mailbox(box, source)
                    if stats is None:
                        break
                    delay = 1.0
                    if stats.processed and self.loop is not None:
                        self.loop.call_soon_threadsafe(self.wake_delivery)
                    # Poll anyway every poll_seconds, in case a notification was missed.
                    deadline = time.monotonic() + box.poll_seconds
                    while (not self.stopping.is_set() and time.monotonic() < deadline
                           and not source.wait_for_mail(IDLE_SECONDS)):
                        pass
            except Exception as exc:  # the watcher lives on: log, back off, connect again
                self._failure(box.name, exc)
            finally:
                if source is not None:
                    source.close()
            if self.database_down.get(box.name) and box.name in self.failing:
                # The mail server is fine: try again at the pace of polling, not of reconnecting,
                # so the mailbox is read within a poll interval of the database's return.
                delay = min(delay, box.poll_seconds)
            if self.stopping.wait(delay):
                break
            delay = min(delay * 2, RECONNECT_MAX_SECONDS)
