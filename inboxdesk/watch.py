"""Watching the daemon (issue 13): `/healthz`, `/readyz` and `/metrics` over HTTP, served in the
daemon's own event loop (off unless `[http] listen` is set; meant for localhost or a reverse
proxy, it shows counts, never personal data).

- `/healthz`: the process answers (200).
- `/readyz`: `inboxdesk.status.summary` — the database, every mailbox read in time, the outbox
  moving; 200 when ready, else 503; the JSON names each problem.
- `/metrics`: Prometheus text. Counters this process keeps (messages by mailbox and disposition,
  poll durations, failures by part and kind, last successful poll); gauges read from the database
  at each scrape (letters by channel, purpose and status, the oldest due letter, open records by
  status, overdue records).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from datetime import datetime
from typing import TYPE_CHECKING

from aiohttp import web
from prometheus_client import generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from inboxdesk.metrics import Metrics
from inboxdesk.status import summary

if TYPE_CHECKING:
    from inboxdesk.app import App


class _DeskState(Collector):
    """Gauges read from the database when Prometheus scrapes."""

    def __init__(self, app: App) -> None:
        self.app = app

    def collect(self) -> Iterator[GaugeMetricFamily]:
        view = summary(self.app.db, self.app.settings, self.app.zone)
        up = GaugeMetricFamily("inboxdesk_database_up", "The database answers")
        up.add_metric([], 1.0 if view["database"] == "ok" else 0.0)
        yield up
        if view["database"] != "ok":
            return
        letters = GaugeMetricFamily("inboxdesk_outbox_letters", "Outbox rows by channel, purpose and status",
                                    labels=["channel", "purpose", "status"])
        for row in view["outbox"]["by_channel"]:
            letters.add_metric([row["channel"], row["purpose"], row["status"]], row["count"])
        yield letters
        oldest = GaugeMetricFamily("inboxdesk_outbox_oldest_due_seconds", "Age of the oldest due letter")
        oldest.add_metric([], view["outbox"]["oldest_due_seconds"])
        yield oldest
        records = GaugeMetricFamily("inboxdesk_open_records", "Open tickets and appeals by status",
                                    labels=["status"])
        for status, count in view["open_records"].items():
            records.add_metric([status], count)
        yield records
        overdue = GaugeMetricFamily("inboxdesk_overdue_records", "Records past a deadline now")
        overdue.add_metric([], view["overdue"])
        yield overdue


class WatchServer:
    """The HTTP endpoints, on `[http] listen`, in the running event loop."""

    def __init__(self, app: App, metrics: Metrics, started_at: datetime) -> None:
        self.app, self.metrics, self.started_at = app, metrics, started_at
        metrics.registry.register(_DeskState(app))
        self.runner: web.AppRunner | None = None

    async def start(self, listen: str) -> None:
        host, _, port = listen.rpartition(":")
        web_app = web.Application()
        web_app.add_routes([web.get("/healthz", self._healthz), web.get("/readyz", self._readyz),
                            web.get("/metrics", self._metrics)])
        self.runner = web.AppRunner(web_app, access_log=None)
        await self.runner.setup()
        await web.TCPSite(self.runner, host or "127.0.0.1", int(port)).start()

    async def stop(self) -> None:
        if self.runner is not None:
            await self.runner.cleanup()

    async def _healthz(self, _request: web.Request) -> web.Response:
        return web.json_response({"status": "alive"})

    async def _readyz(self, _request: web.Request) -> web.Response:
        view = await asyncio.to_thread(summary, self.app.db, self.app.settings, self.app.zone,
                                       started_at=self.started_at)
        body = {"ready": not view["problems"], "problems": view["problems"],
                "database": view["database"], "mailboxes": view.get("mailboxes", {})}
        return web.Response(text=json.dumps(body, ensure_ascii=False), content_type="application/json",
                            status=200 if body["ready"] else 503)

    async def _metrics(self, _request: web.Request) -> web.Response:
        data = await asyncio.to_thread(generate_latest, self.metrics.registry)
        return web.Response(body=data, headers={"Content-Type": "text/plain; version=0.0.4; charset=utf-8"})
