"""The staff directory: who may act on tickets, with which role (`operator` = first line,
`engineer` = second line, `admin`) and which Telegram account.

Members come from `[[staff]]` in settings.toml and from the `staff` table the CLI manages; a
name in both is taken from the settings file, which the administrator controls.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from email_validator import EmailNotValidError, validate_email
from sqlalchemy import select
from sqlalchemy.orm import Session

from inboxdesk.workflow import ROLES, Refused
from storage.models import AuditEvent, StaffRecord, utcnow


@dataclass(frozen=True)
class StaffMember:
    name: str
    role: str  # operator | engineer | admin
    telegram_id: int | None = None
    email: str = ""
    full_name: str = ""

    @property
    def display(self) -> str:
        return self.full_name or self.name


class StaffDirectory:
    """Every staff member, by name and by Telegram user ID."""

    def __init__(self, members: Iterable[StaffMember]) -> None:
        self._by_name: dict[str, StaffMember] = {}
        for m in members:
            self._by_name.setdefault(m.name, m)  # the first source given wins

    def get(self, name: str) -> StaffMember:
        """The member called `name`, or Refused naming who exists."""
        member = self._by_name.get(name)
        if member is None:
            known = ", ".join(sorted(self._by_name)) or "список пуст"
            raise Refused(f"Сотрудник «{name}» не найден; сотрудники: {known}")
        return member

    def by_telegram(self, user_id: int) -> StaffMember | None:
        return next((m for m in self._by_name.values() if m.telegram_id == user_id), None)

    def all(self) -> list[StaffMember]:
        return sorted(self._by_name.values(), key=lambda m: m.name)


def directory(session: Session, configured: Iterable[StaffMember]) -> StaffDirectory:
    """Settings entries first (they win), then the members added with the CLI."""
    stored = [StaffMember(r.name, r.role, r.telegram_id, r.email, r.full_name)
              for r in session.scalars(select(StaffRecord).order_by(StaffRecord.name))]
    return StaffDirectory([*configured, *stored])


STAFF_ACTIONS = ("staff_added", "staff_changed", "staff_removed")  # their audit events


def add_member(session: Session, member: StaffMember, configured: Iterable[StaffMember],
               actor: str) -> StaffMember:
    """Add or update a member in the `staff` table; audited (AUD-1) with who did it."""
    check_member(member)
    if any(m.name == member.name for m in configured):
        raise Refused(f"Сотрудник «{member.name}» задан в settings.toml; измените его там")
    clash = directory(session, configured)
    if member.telegram_id is not None:
        other = clash.by_telegram(member.telegram_id)
        if other is not None and other.name != member.name:
            raise Refused(f"Telegram ID {member.telegram_id} уже принадлежит сотруднику «{other.name}»")
    row = session.get(StaffRecord, member.name)
    before = _described(row) if row is not None else None
    if row is None:
        row = StaffRecord(name=member.name, created_at=utcnow())
        session.add(row)
    row.role, row.telegram_id = member.role, member.telegram_id
    row.email, row.full_name = member.email, member.full_name
    if before != (after := _described(row)):
        session.add(AuditEvent(actor=actor, action="staff_changed" if before else "staff_added",
                               from_value=before, to_value=after, detail={"member": member.name}))
    return member


def remove_member(session: Session, name: str, configured: Iterable[StaffMember], actor: str) -> None:
    if any(m.name == name for m in configured):
        raise Refused(f"Сотрудник «{name}» задан в settings.toml; удалите его там")
    row = session.get(StaffRecord, name)
    if row is None:
        raise Refused(f"Сотрудник «{name}» не найден среди добавленных командой staff add")
    session.add(AuditEvent(actor=actor, action="staff_removed", from_value=_described(row), to_value=None,
                           detail={"member": name}))
    session.delete(row)


def _described(row: StaffRecord) -> str:
    """A member as the audit shows it: name, role, Telegram ID, address, full name."""
    return " · ".join(str(v) for v in (row.name, row.role, row.telegram_id or "—", row.email or "—",
                                       row.full_name or "—"))


def check_member(member: StaffMember) -> None:
    """Refuse a malformed member: an empty or spaced name, an unknown role, a bad address."""
    if not member.name or any(c.isspace() for c in member.name) or len(member.name) > 100:
        raise Refused(f"Имя сотрудника «{member.name}» должно быть одним словом до 100 символов")
    if member.role not in ROLES:
        raise Refused(f"Роль «{member.role}» неизвестна; роли: {', '.join(ROLES)}")
    if member.email:
        try:
            validate_email(member.email, check_deliverability=False, test_environment=True)
        except EmailNotValidError:
            raise Refused(f"Адрес «{member.email}» некорректен") from None
