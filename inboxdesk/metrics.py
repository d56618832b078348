"""What the daemon counts for `/metrics` (issue 13): messages, poll durations, failures."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

if TYPE_CHECKING:
    from mailflow.intake import IntakeStats


class Metrics:
    """What this process counts; the database's state is added at scrape time."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.fetched = Counter("inboxdesk_messages_fetched", "Messages fetched from a mailbox",
                               ["mailbox"], registry=self.registry)
        self.processed = Counter("inboxdesk_messages", "Messages recorded and decided, by disposition",
                                 ["mailbox", "disposition"], registry=self.registry)
        self.poll_seconds = Histogram("inboxdesk_poll_seconds", "Duration of a mailbox pass that read mail",
                                      ["mailbox"], registry=self.registry)
        self.last_poll = Gauge("inboxdesk_last_poll_timestamp_seconds", "Last successful pass over a mailbox",
                               ["mailbox"], registry=self.registry)
        self.deliveries = Counter("inboxdesk_delivery_attempts", "Delivery attempts by channel and outcome "
                                  "(sent, retry, failed, unavailable)", ["channel", "outcome"],
                                  registry=self.registry)
        self.failures = Counter("inboxdesk_failures", "Failures by part and kind (database, imap, smtp, ...)",
                                ["part", "kind"], registry=self.registry)

    def polled(self, mailbox: str, stats: IntakeStats, seconds: float) -> None:
        self.last_poll.labels(mailbox).set(time.time())
        if stats.fetched or stats.processed:
            self.fetched.labels(mailbox).inc(stats.fetched)
            self.poll_seconds.labels(mailbox).observe(seconds)
            for disposition, count in stats.dispositions.items():
                self.processed.labels(mailbox, disposition).inc(count)

    def failed(self, part: str, kind: str) -> None:
        self.failures.labels(part, kind).inc()

    def attempted(self, channel: str, outcome: str) -> None:
        """One delivery attempt (storage.outbox.AttemptWatcher); every outcome but `sent` is also
        a failure of that channel's server, by kind."""
        self.deliveries.labels(channel, outcome).inc()
        if outcome != "sent":
            self.failures.labels("smtp" if channel == "email" else channel, outcome).inc()
