"""MAIL-7 (regulation 4.6): the acceptance clock of a support ticket, read from its status history.

"1 ЛТП должна принять заявку в работу в течение 8-ми рабочих часов с момента поступления".
Regulation 4.8 names the statuses: `Назначена` is "distributed to a specialist", `Рассматривается`
is "принята в работу". So a ticket is *accepted* when it first reaches `Рассматривается` — or is
finished outright (`Решена`/`Закрыта` straight from `Новая`: it was dealt with, nothing is late),
or escalated to the second line (first line has dealt with it; 4.6 leaves the second line's
terms to the contracts). Assigning alone is not acceptance.

The clock starts at arrival and is paused while the ticket waits in `Обратная связь` before it
was accepted (a request missing its form, or a question asked before taking it). Once accepted
it is stopped for good — handing the ticket to a colleague, escalating it or asking the sender
questions later do not restart it. One exception: when the sender's answer reopens a finished
ticket that nobody owns (`Решена`/`Закрыта` → `Новая`), first line has new work to accept and a
fresh clock starts at that moment.

The history is the audit trail (`created` and `status` events, AUD-1), which the desk writes
for every change: no second record of pauses to keep in step with it.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from inboxdesk import domain as d

ACCEPTED = frozenset({d.TICKET_IN_WORK, d.TICKET_RESOLVED, d.TICKET_CLOSED})
WAITING_FOR_ACCEPTANCE = frozenset({d.TICKET_NEW, d.TICKET_ASSIGNED})
_FINISHED = frozenset({d.TICKET_RESOLVED, d.TICKET_CLOSED})
ESCALATED = "escalated"  # a history entry that is not a status: the ticket went to the second line

Pause = tuple[datetime, datetime | None]


@dataclass(frozen=True)
class AcceptanceClock:
    started_at: datetime  # arrival, or the reopening that started a fresh clock
    accepted_at: datetime | None
    pauses: tuple[Pause, ...]  # time spent in `Обратная связь` before acceptance; the last may be open

    @property
    def paused(self) -> bool:
        return self.accepted_at is None and bool(self.pauses) and self.pauses[-1][1] is None


def acceptance_clock(history: Iterable[tuple[datetime, str]]) -> AcceptanceClock | None:
    """The clock after `history`: (when, the status entered — or `ESCALATED`) in order, the first
    being creation. None for an empty history."""
    started: datetime | None = None
    accepted: datetime | None = None
    pauses: list[Pause] = []
    status = ""
    for at, new in history:
        if started is None:
            started, status = at, new
            if new in ACCEPTED:
                accepted = at
            elif new == d.TICKET_FEEDBACK:
                pauses.append((at, None))
            continue
        if new == ESCALATED:
            if accepted is None:
                accepted = at
                _close(pauses, at)
            continue
        if accepted is not None:
            if status in _FINISHED and new in WAITING_FOR_ACCEPTANCE:
                started, accepted, pauses = at, None, []  # reopened into nobody's hands
        elif new in ACCEPTED:
            accepted = at
            _close(pauses, at)
        elif new == d.TICKET_FEEDBACK:
            if not pauses or pauses[-1][1] is not None:
                pauses.append((at, None))
        else:
            _close(pauses, at)
        status = new
    if started is None:
        return None
    return AcceptanceClock(started, accepted, tuple(pauses))


def _close(pauses: list[Pause], at: datetime) -> None:
    if pauses and pauses[-1][1] is None:
        pauses[-1] = (pauses[-1][0], at)
