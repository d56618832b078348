"""The rules of the desk as data: status transitions (MAIL-5, APL-4), priority/impact pairs
(MAIL-6) and the letters a status change sends. Functions here only read these tables.
"""

from __future__ import annotations

from inboxdesk import domain as d


class Refused(Exception):
    """An operation that is not allowed; the message is one Russian line for the person."""


class HeldByOther(Refused):
    """`take` of a record someone else holds: allowed only when asked for explicitly."""


# Where a status may go by a staff member's hand. A change not listed here is refused.
TRANSITIONS: dict[str, dict[str, tuple[str, ...]]] = {
    d.TICKET: {
        d.TICKET_NEW: (d.TICKET_ASSIGNED, d.TICKET_IN_WORK, d.TICKET_FEEDBACK, d.TICKET_RESOLVED,
                       d.TICKET_CLOSED),
        d.TICKET_ASSIGNED: (d.TICKET_IN_WORK, d.TICKET_FEEDBACK, d.TICKET_RESOLVED, d.TICKET_CLOSED),
        d.TICKET_IN_WORK: (d.TICKET_ASSIGNED, d.TICKET_FEEDBACK, d.TICKET_RESOLVED, d.TICKET_CLOSED),
        d.TICKET_FEEDBACK: (d.TICKET_IN_WORK, d.TICKET_RESOLVED, d.TICKET_CLOSED),
        d.TICKET_RESOLVED: (d.TICKET_IN_WORK, d.TICKET_CLOSED),
        d.TICKET_CLOSED: (d.TICKET_IN_WORK,),
    },
    d.APPEAL: {
        # Completing a new appeal records `На рассмотрении` on the way (APL-5).
        d.APPEAL_NEW: (d.APPEAL_IN_REVIEW, d.APPEAL_DONE),
        d.APPEAL_IN_REVIEW: (d.APPEAL_DONE,),
        d.APPEAL_DONE: (),
    },
}

# "Taken into work" per kind: where `take` moves a record.
IN_WORK = {d.TICKET: d.TICKET_IN_WORK, d.APPEAL: d.APPEAL_IN_REVIEW}
# Statuses that mean "someone owns it": entering one without an assignee assigns the actor.
OWNED = frozenset({d.TICKET_ASSIGNED, d.TICKET_IN_WORK})
# Handing a ticket to someone else puts it back to "assigned, not yet taken".
ON_ASSIGN = {d.TICKET_NEW: d.TICKET_ASSIGNED, d.TICKET_IN_WORK: d.TICKET_ASSIGNED}
# Escalation leaves the first-line owner behind; "assigned" without an owner is "new" again.
ON_ESCALATE = {d.TICKET_ASSIGNED: d.TICKET_NEW}
# A sender's mail to a ticket in these statuses changes it (MAIL-5).
WAITING_FOR_SENDER = frozenset({d.TICKET_FEEDBACK})
FINISHED = frozenset({d.TICKET_RESOLVED, d.TICKET_CLOSED})
# No work left on it: a finished ticket or a completed appeal (not "open" in lists and counts).
DONE = FINISHED | {d.APPEAL_DONE}

# Told to the sender once per round of work (from arrival or a reopening until it is finished):
# a ticket handed between staff, or back from `Обратная связь`, was already "taken into work".
ONCE_PER_ROUND = frozenset({d.TICKET_IN_WORK, d.APPEAL_IN_REVIEW})

# Letters to the sender on a status change (templates/email/<name>.*); which of them are sent is
# `[desk] notify_statuses`.
SENDER_NOTICES = {
    d.TICKET_IN_WORK: "status_in_work",
    d.TICKET_FEEDBACK: "status_feedback",
    d.TICKET_RESOLVED: "status_resolved",
    d.TICKET_CLOSED: "status_closed",
    d.APPEAL_IN_REVIEW: "appeal_in_review",
}
DEFAULT_NOTIFY = (d.TICKET_IN_WORK, d.TICKET_FEEDBACK, d.TICKET_RESOLVED)

# MAIL-6 (regulation 4.9, 4.10).
IMPACTS = ("Нововведение", "Текст/опечатка", "Настройка", "Малое", "Большое", "Критический",
           "Блокирующий")
PRIORITIES = {1: "Неотложный", 2: "Высокий", 3: "Обычный", 4: "Низкий"}
PAIRS: dict[int, tuple[str, ...]] = {
    1: ("Критический", "Блокирующий"),
    2: ("Малое", "Большое"),
    3: ("Настройка", "Малое"),
    4: ("Текст/опечатка", "Нововведение", "Настройка"),
}

ROLES = ("operator", "engineer", "admin")
ROLE_NAMES = {"operator": "оператор (1-я линия)", "engineer": "инженер (2-я линия)", "admin": "администратор"}
# The support lines a role works (003 §2.6, §2.7, MAIL-10): first line registers, answers,
# sets priority and escalates; the second line works what was escalated; an admin both.
LINES_OF_ROLE = {"operator": frozenset({1}), "engineer": frozenset({2}), "admin": frozenset({1, 2})}
ALL_ROLES = frozenset(ROLES)
FIRST_LINE = frozenset({"operator", "admin"})
SECOND_LINE = frozenset({"engineer", "admin"})


class May:
    """Who may do one thing: the roles, and whether the ticket must be on the actor's own line."""

    def __init__(self, roles: frozenset[str], own_line: bool = True) -> None:
        self.roles, self.own_line = roles, own_line


# Who may do what: the one table every staff action is checked against (BOT-1, MAIL-10, 003 §2.7,
# §4.5). "Own line" applies to support tickets; appeals have no lines.
MAY: dict[str, May] = {
    "register": May(FIRST_LINE, own_line=False),  # §2.7: registering requests (a phone call)
    "take": May(ALL_ROLES),
    "assign": May(ALL_ROLES, own_line=False),  # to someone who works the record's line (works_line)
    "reply": May(ALL_ROLES),
    "status": May(ALL_ROLES),
    "note": May(ALL_ROLES, own_line=False),  # anyone may leave a word for colleagues
    "organisation": May(ALL_ROLES, own_line=False),
    "priority": May(FIRST_LINE),  # §4.5: first line sets and changes the priority
    "escalate": May(FIRST_LINE),  # §2.7: first line escalates to the second
    "deescalate": May(SECOND_LINE),  # the second line hands back what is first line's to solve
    "extend": May(FIRST_LINE, own_line=False),  # APL-6: the appeal's one extension
    "staff": May(frozenset({"admin"}), own_line=False),
    "retry": May(frozenset({"admin"}), own_line=False),  # sending a failed letter again
}
ACTION_NAMES = {"register": "регистрировать заявки", "take": "брать в работу", "assign": "назначать",
                "reply": "отвечать заявителю", "status": "менять статус", "note": "писать заметки",
                "organisation": "исправлять организацию", "priority": "менять приоритет и влияние",
                "escalate": "эскалировать на вторую линию", "deescalate": "возвращать на первую линию",
                "extend": "продлевать срок обращения", "staff": "вести справочник сотрудников",
                "retry": "отправлять письма повторно"}


def works_line(role: str, kind: str, line: int) -> bool:
    """Does `role` work records of `kind` on `line`? (Appeals have no lines.)"""
    return kind != d.TICKET or line in LINES_OF_ROLE[role]


def check_may(action: str, role: str, kind: str | None = None, line: int | None = None,
              public_id: str = "") -> None:
    """Refuse (one Russian line) unless `role` may do `action` to a record of `kind` on `line`."""
    rule = MAY[action]
    if role not in rule.roles:
        who = " или ".join(ROLE_NAMES[r] for r in ROLES if r in rule.roles)
        raise Refused(f"{ACTION_NAMES[action].capitalize()} может только {who}; "
                      f"ваша роль: {ROLE_NAMES.get(role, role)}")
    if rule.own_line and kind is not None and line is not None and not works_line(role, kind, line):
        owner = ROLE_NAMES["engineer" if line == 2 else "operator"]
        raise Refused(f"{public_id} на {line}-й линии: {ACTION_NAMES[action]} по ней может {owner} "
                      f"или администратор; ваша роль: {ROLE_NAMES.get(role, role)}")


def allowed_statuses(kind: str, status: str) -> list[str]:
    """Statuses a staff member may move a record of `kind` to from `status`."""
    return list(TRANSITIONS[kind].get(status, ()))


def check_transition(kind: str, status: str, new: str) -> None:
    """Refuse a change the table does not list, naming what is allowed."""
    known = d.TICKET_STATUSES if kind == d.TICKET else d.APPEAL_STATUSES
    if new not in known:
        raise Refused(f"Неизвестный статус «{new}»; статусы: {', '.join(known)}")
    if new == status:
        raise Refused(f"Статус уже «{status}»")
    allowed = allowed_statuses(kind, status)
    if new not in allowed:
        where = ", ".join(f"«{s}»" for s in allowed) or "никуда (статус окончательный)"
        raise Refused(f"Из статуса «{status}» нельзя перейти в «{new}»; можно: {where}")


def priority_label(priority: int | None) -> str | None:
    return f"{priority} {PRIORITIES[priority]}" if priority in PRIORITIES else None


def allowed_impacts(priority: int) -> list[str]:
    """Impacts that fit `priority` (MAIL-6); empty for an unknown priority."""
    return list(PAIRS.get(priority, ()))


def check_pair(priority: int, impact: str) -> str:
    """The impact as the regulation spells it (typed in any case), if the pair is in its table;
    else refuse, naming the allowed values."""
    if priority not in PRIORITIES:
        names = ", ".join(f"{n} ({name})" for n, name in PRIORITIES.items())
        raise Refused(f"Приоритет {priority} не существует; допустимы: {names}")
    typed = " ".join(impact.split()).casefold()
    for allowed in PAIRS[priority]:
        if allowed.casefold() == typed:
            return allowed
    raise Refused(f"Влияние «{impact}» не подходит к приоритету {priority} «{PRIORITIES[priority]}»; "
                  f"допустимо: {', '.join(PAIRS[priority])}")


def pairs_text() -> str:
    """The MAIL-6 table in one line, for help texts."""
    return "; ".join(f"{n} {PRIORITIES[n]}: {', '.join(impacts)}" for n, impacts in PAIRS.items())
