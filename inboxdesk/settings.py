"""Settings from `settings.toml`: strict, typed, and loud about mistakes.

Every problem names its key (``mailbox[1].port: expected an integer``) and stops start-up.
Secrets never live in the file: a `*_env` key names the environment variable that holds them.
"""

from __future__ import annotations

import os
import re
import tomllib
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from datetime import date, time, timedelta
from pathlib import Path
from typing import Any, TypeVar
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from inboxdesk.staff import StaffMember
from inboxdesk.workflow import DEFAULT_NOTIFY, ROLES, SENDER_NOTICES

DEFAULT_PORTS = {("imap", "ssl"): 993, ("imap", "starttls"): 143, ("imap", "none"): 143,
                 ("smtp", "ssl"): 465, ("smtp", "starttls"): 587, ("smtp", "none"): 25}


class SettingsError(ValueError):
    """The settings file is wrong; the message names the key, one line per problem."""

    @property
    def problems(self) -> list[str]:
        return str(self).splitlines()


class _Problems:
    """Every problem of one settings file: a section that cannot go on stops itself, not the rest."""

    def __init__(self) -> None:
        self.lines: list[str] = []

    @contextmanager
    def section(self) -> Iterator[None]:
        try:
            yield
        except SettingsError as exc:
            self.lines += exc.problems


@dataclass(frozen=True)
class MailboxSettings:
    name: str
    kind: str  # tickets | appeals
    address: str
    source: str  # imap | maildir
    host: str = ""
    port: int = 0
    security: str = "ssl"
    username: str = ""
    password_env: str = ""
    folder: str = "INBOX"
    processed_folder: str = ""
    path: str = ""
    allowed_domains: tuple[str, ...] = ()
    allow_subdomains: bool = False
    idle: bool = False
    poll_seconds: float = 60.0
    id_prefix: str = "HD"
    max_attachment_bytes: int = 10 * 1024 * 1024
    acknowledge: bool = True
    batch_size: int = 200
    tls_verify: bool = True
    # MAIL-2 (issue 10): off | warn | enforce, judged by the Authentication-Results header our own
    # receiving server adds (its authserv-id must be listed in trusted_authserv_ids).
    authentication: str = "off"
    trusted_authserv_ids: tuple[str, ...] = ()
    tls_ca_file: str = ""  # a private CA's certificates (PEM) to trust instead of the system's

    @property
    def password(self) -> str:
        return os.environ.get(self.password_env, "") if self.password_env else ""


@dataclass(frozen=True)
class OutboundSettings:
    transport: str = "maildir"  # smtp | maildir
    host: str = ""
    port: int = 0
    security: str = "starttls"
    username: str = ""
    password_env: str = ""
    path: str = "var/outbound"
    timeout_seconds: float = 30.0
    max_attempts: int = 10
    retry_base_seconds: float = 30.0
    auto_mail_per_hour: int = 20  # OUT-1: cap automatic mail to one address (case and +tag folded)
    auto_mail_per_record_hour: int = 6  # ... about one record (an auto-responder answering each letter)
    auto_mail_per_domain_hour: int = 0  # ... to one domain (0: no cap; the allowed domain sends all)
    auto_mail_total_hour: int = 0  # ... in all (0: no cap)
    tls_verify: bool = True
    tls_ca_file: str = ""  # a private CA's certificates (PEM) to trust instead of the system's

    @property
    def password(self) -> str:
        return os.environ.get(self.password_env, "") if self.password_env else ""


@dataclass(frozen=True)
class InstitutionSettings:
    name: str = "ГБУЗС «МИАЦ»"
    id: str = ""


@dataclass(frozen=True)
class TelegramSettings:
    """The staff bot (issue 4); it runs only when the `token_env` variable holds a token."""

    token_env: str = ""
    base_url: str = "https://api.telegram.org/bot"
    base_file_url: str = "https://api.telegram.org/file/bot"
    staff_chat_id: int = 0  # where cards of new tickets and sender replies are posted
    # Other group chats where staff may use the bot; elsewhere it only refuses (private chats
    # with staff members are always allowed). Records hold personal data (issue 10).
    staff_chats: tuple[int, ...] = ()
    poll_timeout_seconds: float = 30.0  # getUpdates long poll
    request_timeout_seconds: float = 20.0
    max_attempts: int = 10
    retry_base_seconds: float = 5.0

    @property
    def token(self) -> str:
        return os.environ.get(self.token_env, "").strip() if self.token_env else ""

    def allows_chat(self, chat_id: int, private: bool) -> bool:
        """May staff work with the bot in this chat?"""
        return private or chat_id == self.staff_chat_id or chat_id in self.staff_chats

    @property
    def notifies(self) -> bool:
        """Cards are queued for the staff chat (even while the bot itself is off)."""
        return bool(self.token_env and self.staff_chat_id)


@dataclass(frozen=True)
class DeskSettings:
    """The desk's workflow knobs (issue 3)."""

    reopen_days: int = 7  # MAIL-5: a reply to a resolved/closed ticket reopens it within this window
    notify_statuses: tuple[str, ...] = DEFAULT_NOTIFY  # the sender is emailed on these changes
    appeal_registration_days: int = 3  # APL-6, 59-FZ art. 8
    appeal_answer_days: int = 30  # APL-6, 59-FZ art. 12
    appeal_extension_max_days: int = 30  # one extension of at most this many days
    # Issue 5 (MAIL-8, reminders, closing, timers).
    form_check: bool = True  # a new request missing Appendix-1 parts waits in `Обратная связь`
    feedback_reminder_days: tuple[int, ...] = (2, 5)  # working days in `Обратная связь` -> reminder
    auto_close_days: int = 5  # working days in `Решена` without an answer -> `Закрыта`; 0 = never
    appeal_warn_days: tuple[int, ...] = (1, 3)  # calendar days before an APL-6 deadline -> warning
    timer_seconds: float = 60.0  # how often the daemon looks for due deadlines and reminders


@dataclass(frozen=True)
class DepartmentSettings:
    """Where the regulated status emails about appeals go (APL-3, APL-5)."""

    address: str = "org-appeal@mos.ru"
    notify: bool = True


@dataclass(frozen=True)
class WorktimeSettings:
    """Working calendar and deadlines (issue 5: MAIL-7, APL-6); see `inboxdesk/worktime.py`."""

    tz: str = "Europe/Moscow"
    day_start: time = time(8)
    day_end: time = time(17)
    weekdays: tuple[int, ...] = (0, 1, 2, 3, 4)  # Monday = 0
    extra_days_off: tuple[date, ...] = ()  # production-calendar changes the library lacks
    extra_work_days: tuple[date, ...] = ()
    acceptance_hours: float = 8.0  # MAIL-7 / regulation 4.6
    warn_before: tuple[timedelta, ...] = (timedelta(hours=2), timedelta(minutes=30))  # longest first
    appeal_deadline_roll: str = "next"  # next | previous | none: a 59-FZ term ending on a day off


@dataclass(frozen=True)
class HttpSettings:
    """The daemon's health and metrics endpoints (issue 13); off unless `listen` is set."""

    listen: str = ""  # "127.0.0.1:9187"


@dataclass(frozen=True)
class LogSettings:
    format: str = "text"  # text | json


@dataclass(frozen=True)
class RetentionSettings:
    """How long personal data is kept (issue 13, 152-FZ art. 5 part 7); None keeps it for good.

    Days count from a filtered letter's arrival, or from the last status change of a record with no
    work left (workflow.DONE); a record reopened before then starts over.
    """

    filtered_raw_days: int | None = None  # raw letters of mail that made no record
    closed_raw_days: int | None = None  # raw letters in, and sent letters out, of a finished record
    closed_files_days: int | None = None  # the attachments' bytes of a finished record
    anonymise_days: int | None = None  # the requester's personal data on a finished record

    @property
    def keeps_everything(self) -> bool:
        return all(getattr(self, key) is None for key in RETENTION_KEYS)


RETENTION_KEYS = ("filtered_raw_days", "closed_raw_days", "closed_files_days", "anonymise_days")


@dataclass(frozen=True)
class IntakeSettings:
    """How intake uses the machine (DESIGN §6)."""

    workers: int | None = None  # processes that parse mail; None = auto (one per core, at most 2)


@dataclass(frozen=True)
class Settings:
    database_url: str
    mailboxes: tuple[MailboxSettings, ...]
    outbound: OutboundSettings
    institution: InstitutionSettings
    base_dir: Path = field(default_factory=Path.cwd)
    telegram: TelegramSettings = field(default_factory=TelegramSettings)
    desk: DeskSettings = field(default_factory=DeskSettings)
    department: DepartmentSettings = field(default_factory=DepartmentSettings)
    staff: tuple[StaffMember, ...] = ()
    worktime: WorktimeSettings = field(default_factory=WorktimeSettings)
    intake: IntakeSettings = field(default_factory=IntakeSettings)
    http: HttpSettings = field(default_factory=HttpSettings)
    log: LogSettings = field(default_factory=LogSettings)
    retention: RetentionSettings = field(default_factory=RetentionSettings)
    # Sender address or domain (lower case) -> organisation, for requests that do not name it.
    organisations: dict[str, str] = field(default_factory=dict)

    def mailbox(self, name: str) -> MailboxSettings:
        for box in self.mailboxes:
            if box.name == name:
                return box
        known = ", ".join(b.name for b in self.mailboxes) or "none"
        raise SettingsError(f"no mailbox named {name!r} (configured: {known})")

    def resolve(self, path: str) -> Path:
        """A path from the file, relative to the file's folder."""
        p = Path(path)
        return p if p.is_absolute() else self.base_dir / p


class _Table:
    """Reads one TOML table, remembers the key path for messages and collects its problems.

    A wrong value is a problem and reads as its default (a required one as blank), so the rest of
    the file is still checked; a missing required key stops the section (SettingsError).
    """

    def __init__(self, data: Any, where: str, problems: _Problems) -> None:
        if not isinstance(data, dict):
            raise SettingsError(f"{where}: expected a table")
        self.data, self.where, self.used, self.problems = data, where, set(), problems

    def fail(self, message: str) -> None:
        """A problem that does not stop reading the section."""
        self.problems.lines.append(message)

    def get(self, key: str, kind: type, default: Any = ..., choices: tuple[str, ...] = ()) -> Any:
        self.used.add(key)
        name = f"{self.where}.{key}" if self.where else key
        if key not in self.data:
            if default is ...:
                raise SettingsError(f"{name}: missing (required)")
            return default
        value = self.data[key]
        if kind is float and isinstance(value, int) and not isinstance(value, bool):
            value = float(value)
        problem = None
        if kind is tuple:
            if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
                problem = f"{name}: expected a list of strings"
            else:
                value = tuple(value)
        elif not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
            problem = f"{name}: expected {_KIND_NAMES.get(kind, kind.__name__)}, got {value!r}"
        elif choices and value not in choices:
            problem = f"{name}: must be one of {', '.join(choices)}, got {value!r}"
        if problem is None:
            return value
        self.fail(problem)
        return _BLANK.get(kind) if default is ... else default

    def reject_unknown(self) -> None:
        prefix = f"{self.where}." if self.where else ""
        for key in sorted(set(self.data) - self.used):
            self.fail(f"{prefix}{key}: unknown key")


_BLANK: dict[type, Any] = {str: "", int: 0, float: 0.0, bool: False, tuple: (), dict: {}, list: []}
_KIND_NAMES = {str: "a string", int: "an integer", float: "a number", bool: "true or false"}


def _mailbox(data: Any, index: int, seen: set[str], problems: _Problems) -> MailboxSettings:
    t = _Table(data, f"mailbox[{index}]", problems)
    name = t.get("name", str)
    if name in seen:
        t.fail(f"mailbox[{index}].name: duplicate mailbox name {name!r}")
    seen.add(name)
    kind = t.get("kind", str, choices=("tickets", "appeals"))
    source = t.get("source", str, choices=("imap", "maildir"))
    security = t.get("security", str, "ssl", choices=("none", "starttls", "ssl"))
    box = MailboxSettings(
        name=name,
        kind=kind,
        address=t.get("address", str).strip().lower(),
        source=source,
        host=t.get("host", str, ""),
        port=t.get("port", int, DEFAULT_PORTS[("imap", security)]),
        security=security,
        username=t.get("username", str, ""),
        password_env=t.get("password_env", str, ""),
        folder=t.get("folder", str, "INBOX"),
        processed_folder=t.get("processed_folder", str, ""),
        path=t.get("path", str, ""),
        allowed_domains=tuple(d.strip().lower().lstrip("@") for d in t.get("allowed_domains", tuple, ())),
        allow_subdomains=t.get("allow_subdomains", bool, False),
        idle=t.get("idle", bool, False),
        poll_seconds=t.get("poll_seconds", float, 60.0),
        id_prefix=t.get("id_prefix", str, "HD" if kind == "tickets" else "OBR"),
        max_attachment_bytes=t.get("max_attachment_bytes", int, 10 * 1024 * 1024),
        acknowledge=t.get("acknowledge", bool, True),
        batch_size=t.get("batch_size", int, 200),
        tls_verify=t.get("tls_verify", bool, True),
        authentication=t.get("authentication", str, "off", choices=("off", "warn", "enforce")),
        trusted_authserv_ids=tuple(v.strip().lower() for v in t.get("trusted_authserv_ids", tuple, ())),
        tls_ca_file=t.get("tls_ca_file", str, ""),
    )
    t.reject_unknown()
    where = f"mailbox[{index}]"
    if box.authentication != "off" and not box.trusted_authserv_ids:
        t.fail(f"{where}.trusted_authserv_ids: required when authentication = \"{box.authentication}\" "
               "(the authserv-id your receiving server writes into Authentication-Results)")
    if "@" not in box.address:
        t.fail(f"{where}.address: not an email address: {box.address!r}")
    if source == "imap" and not box.host:
        t.fail(f"{where}.host: required when source = \"imap\"")
    if source == "imap" and not box.username:
        t.fail(f"{where}.username: required when source = \"imap\"")
    if source == "maildir" and not box.path:
        t.fail(f"{where}.path: required when source = \"maildir\"")
    if not 0 < box.port < 65536:
        t.fail(f"{where}.port: must be 1..65535, got {box.port}")
    if box.poll_seconds <= 0:
        t.fail(f"{where}.poll_seconds: must be positive")
    if not box.id_prefix.replace("_", "").isalnum():
        t.fail(f"{where}.id_prefix: letters and digits only, got {box.id_prefix!r}")
    if box.batch_size < 1:
        t.fail(f"{where}.batch_size: must be at least 1")
    return box


def _outbound(data: Any, problems: _Problems) -> OutboundSettings:
    t = _Table(data, "outbound", problems)
    transport = t.get("transport", str, "maildir", choices=("smtp", "maildir"))
    security = t.get("security", str, "starttls", choices=("none", "starttls", "ssl"))
    out = OutboundSettings(
        transport=transport,
        host=t.get("host", str, ""),
        port=t.get("port", int, DEFAULT_PORTS[("smtp", security)]),
        security=security,
        username=t.get("username", str, ""),
        password_env=t.get("password_env", str, ""),
        path=t.get("path", str, "var/outbound"),
        timeout_seconds=t.get("timeout_seconds", float, 30.0),
        max_attempts=t.get("max_attempts", int, 10),
        retry_base_seconds=t.get("retry_base_seconds", float, 30.0),
        auto_mail_per_hour=t.get("auto_mail_per_hour", int, 20),
        auto_mail_per_record_hour=t.get("auto_mail_per_record_hour", int, 6),
        auto_mail_per_domain_hour=t.get("auto_mail_per_domain_hour", int, 0),
        auto_mail_total_hour=t.get("auto_mail_total_hour", int, 0),
        tls_verify=t.get("tls_verify", bool, True),
        tls_ca_file=t.get("tls_ca_file", str, ""),
    )
    t.reject_unknown()
    if transport == "smtp" and not out.host:
        t.fail('outbound.host: required when transport = "smtp"')
    if not 0 < out.port < 65536:
        t.fail(f"outbound.port: must be 1..65535, got {out.port}")
    if out.max_attempts < 1:
        t.fail("outbound.max_attempts: must be at least 1")
    return out


def _telegram(data: Any, problems: _Problems) -> TelegramSettings:
    t = _Table(data, "telegram", problems)
    tg = TelegramSettings(
        token_env=t.get("token_env", str, ""),
        base_url=t.get("base_url", str, TelegramSettings.base_url),
        base_file_url=t.get("base_file_url", str, TelegramSettings.base_file_url),
        staff_chat_id=t.get("staff_chat_id", int, 0),
        staff_chats=_chat_ids(t, "staff_chats"),
        poll_timeout_seconds=t.get("poll_timeout_seconds", float, 30.0),
        request_timeout_seconds=t.get("request_timeout_seconds", float, 20.0),
        max_attempts=t.get("max_attempts", int, 10),
        retry_base_seconds=t.get("retry_base_seconds", float, 5.0),
    )
    t.reject_unknown()
    for key in ("base_url", "base_file_url"):
        if not getattr(tg, key).startswith(("http://", "https://")):
            t.fail(f"telegram.{key}: must start with http:// or https://")
    if tg.poll_timeout_seconds < 0 or tg.request_timeout_seconds <= 0:
        t.fail("telegram: timeouts must be positive")
    if tg.max_attempts < 1:
        t.fail("telegram.max_attempts: must be at least 1")
    return tg


def _chat_ids(t: _Table, key: str) -> tuple[int, ...]:
    t.used.add(key)
    raw = t.data.get(key, [])
    if not isinstance(raw, list) or not all(isinstance(v, int) and not isinstance(v, bool) for v in raw):
        t.fail(f"{t.where}.{key}: expected a list of chat IDs (integers), got {raw!r}")
        return ()
    return tuple(raw)


def _desk(data: Any, problems: _Problems) -> DeskSettings:
    t = _Table(data, "desk", problems)
    desk = DeskSettings(
        reopen_days=t.get("reopen_days", int, 7),
        notify_statuses=t.get("notify_statuses", tuple, DEFAULT_NOTIFY),
        appeal_registration_days=t.get("appeal_registration_days", int, 3),
        appeal_answer_days=t.get("appeal_answer_days", int, 30),
        appeal_extension_max_days=t.get("appeal_extension_max_days", int, 30),
        form_check=t.get("form_check", bool, True),
        feedback_reminder_days=_days(t, "feedback_reminder_days", (2, 5)),
        auto_close_days=t.get("auto_close_days", int, 5),
        appeal_warn_days=_days(t, "appeal_warn_days", (1, 3)),
        timer_seconds=t.get("timer_seconds", float, 60.0),
    )
    t.reject_unknown()
    if desk.timer_seconds <= 0:
        t.fail("desk.timer_seconds: must be positive")
    for status in desk.notify_statuses:
        if status not in SENDER_NOTICES:
            t.fail(f"desk.notify_statuses: no letter for status {status!r}; "
                                f"possible: {', '.join(SENDER_NOTICES)}")
    for key in ("reopen_days", "appeal_registration_days", "appeal_answer_days",
                "appeal_extension_max_days", "auto_close_days"):
        if getattr(desk, key) < 0:
            t.fail(f"desk.{key}: must not be negative")
    return desk


def _days(t: _Table, key: str, default: tuple[int, ...]) -> tuple[int, ...]:
    """A list of distinct positive whole days, e.g. `[2, 5]`; kept in ascending order."""
    t.used.add(key)
    raw = t.data.get(key, list(default))
    if not isinstance(raw, list) or not all(isinstance(v, int) and not isinstance(v, bool) for v in raw):
        t.fail(f"{t.where}.{key}: expected a list of whole numbers of days, got {raw!r}")
        return default
    if any(v < 1 for v in raw):
        t.fail(f"{t.where}.{key}: days must be 1 or more, got {raw!r}")
        return default
    return tuple(sorted(set(raw)))


def _department(data: Any, problems: _Problems) -> DepartmentSettings:
    t = _Table(data, "department", problems)
    dep = DepartmentSettings(address=t.get("address", str, DepartmentSettings.address).strip().lower(),
                             notify=t.get("notify", bool, True))
    t.reject_unknown()
    if "@" not in dep.address:
        t.fail(f"department.address: not an email address: {dep.address!r}")
    return dep


def _staff(items: Any, problems: _Problems) -> tuple[StaffMember, ...]:
    members: list[StaffMember] = []
    for i, data in enumerate(items):
        t = _Table(data, f"staff[{i}]", problems)
        telegram_id = t.get("telegram_id", int, 0)
        member = StaffMember(name=t.get("name", str).strip(), role=t.get("role", str, choices=ROLES),
                             telegram_id=telegram_id or None, email=t.get("email", str, "").strip(),
                             full_name=t.get("full_name", str, "").strip())
        t.reject_unknown()
        if not member.name or any(c.isspace() for c in member.name):
            t.fail(f"staff[{i}].name: one word expected, got {member.name!r}")
        if any(m.name == member.name for m in members):
            t.fail(f"staff[{i}].name: duplicate staff name {member.name!r}")
        if member.telegram_id and any(m.telegram_id == member.telegram_id for m in members):
            t.fail(f"staff[{i}].telegram_id: {member.telegram_id} is already used")
        members.append(member)
    return tuple(members)


_WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_DURATION = re.compile(r"(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?")


def _clock(value: str, name: str) -> time:
    m = re.fullmatch(r"(\d{1,2}):(\d{2})", value.strip())
    if not m or int(m[1]) > 23 or int(m[2]) > 59:
        raise SettingsError(f"{name}: expected a time like \"08:00\", got {value!r}")
    return time(int(m[1]), int(m[2]))


def _dates(values: tuple[str, ...], name: str) -> tuple[date, ...]:
    out = set()
    for v in values:
        try:
            out.add(date.fromisoformat(v.strip()))
        except ValueError:
            raise SettingsError(f"{name}: expected dates like \"2026-11-03\", got {v!r}") from None
    return tuple(sorted(out))


def _duration(value: str, name: str) -> timedelta:
    m = _DURATION.fullmatch(value.replace(" ", "").lower())
    if not m or not any(m.groups()):
        raise SettingsError(f"{name}: expected a duration like \"2h\", \"30m\" or \"1h30m\", got {value!r}")
    h, mi, se = (int(g or 0) for g in m.groups())
    return timedelta(hours=h, minutes=mi, seconds=se)


def _worktime(data: Any, problems: _Problems) -> WorktimeSettings:
    t = _Table(data, "worktime", problems)
    tz = t.get("tz", str, WorktimeSettings.tz)
    try:
        ZoneInfo(tz)
    except (ZoneInfoNotFoundError, ValueError):
        raise SettingsError(f"worktime.tz: unknown time zone {tz!r}") from None
    start = _clock(t.get("day_start", str, "08:00"), "worktime.day_start")
    end = _clock(t.get("day_end", str, "17:00"), "worktime.day_end")
    if not start < end:
        raise SettingsError("worktime.day_end: must be later than day_start")
    names = [n.strip().lower() for n in t.get("weekdays", tuple, _WEEKDAYS[:5])]
    bad = [n for n in names if n not in _WEEKDAYS]
    if bad or not names:
        raise SettingsError(f"worktime.weekdays: expected names from {', '.join(_WEEKDAYS)}, "
                            f"got {bad or '[]'}")
    off = _dates(t.get("extra_days_off", tuple, ()), "worktime.extra_days_off")
    on = _dates(t.get("extra_work_days", tuple, ()), "worktime.extra_work_days")
    if set(off) & set(on):
        raise SettingsError(f"worktime.extra_work_days: {min(set(off) & set(on))} is also in extra_days_off")
    hours = t.get("acceptance_hours", float, 8.0)
    if hours <= 0:
        raise SettingsError("worktime.acceptance_hours: must be positive")
    warn = sorted({_duration(v, "worktime.warn_before") for v in t.get("warn_before", tuple, ("2h", "30m"))},
                  reverse=True)
    if warn and warn[0] >= timedelta(hours=hours):
        raise SettingsError("worktime.warn_before: each warning must be shorter than acceptance_hours")
    roll = t.get("appeal_deadline_roll", str, "next", choices=("next", "previous", "none"))
    t.reject_unknown()
    return WorktimeSettings(tz=tz, day_start=start, day_end=end,
                            weekdays=tuple(sorted({_WEEKDAYS.index(n) for n in names})),
                            extra_days_off=off, extra_work_days=on, acceptance_hours=hours,
                            warn_before=tuple(warn), appeal_deadline_roll=roll)


def _log(data: Any, problems: _Problems) -> LogSettings:
    t = _Table(data, "log", problems)
    log = LogSettings(format=t.get("format", str, "text", choices=("text", "json")))
    t.reject_unknown()
    return log


def _http(data: Any, problems: _Problems) -> HttpSettings:
    t = _Table(data, "http", problems)
    listen = t.get("listen", str, "").strip()
    t.reject_unknown()
    _host, sep, port = listen.rpartition(":")
    if listen and (not sep or not port.isdigit() or not 0 < int(port) < 65536):
        t.fail(f'http.listen: expected "host:port" such as "127.0.0.1:9187", got {listen!r}')
        return HttpSettings()
    return HttpSettings(listen=listen)


def _intake(data: Any, problems: _Problems) -> IntakeSettings:
    t = _Table(data, "intake", problems)
    raw = t.data.get("workers", "auto")
    t.used.add("workers")
    if raw == "auto":
        workers = None
    elif isinstance(raw, int) and not isinstance(raw, bool) and 0 <= raw <= 64:
        workers = raw
    else:
        raise SettingsError(f'intake.workers: expected "auto" or an integer 0..64, got {raw!r}')
    t.reject_unknown()
    return IntakeSettings(workers=workers)


def _retention(data: Any, problems: _Problems) -> RetentionSettings:
    t = _Table(data, "retention", problems)
    days: dict[str, int | None] = {}
    for key in RETENTION_KEYS:
        value = t.get(key, int, None)
        if value is not None and value < 1:
            t.fail(f"retention.{key}: expected a number of days of at least 1, got {value}")
            value = None
        days[key] = value
    t.reject_unknown()
    return RetentionSettings(**days)


def _organisations(data: Any, problems: _Problems) -> dict[str, str]:
    t = _Table(data, "organisations", problems)
    found: dict[str, str] = {}
    for key in list(t.data):
        name = t.get(key, str, "").strip()
        if not name:
            t.fail(f"organisations.{key}: expected the organisation's name")
            continue
        found[key.strip().lower().lstrip("@")] = name
    return found


def _check_retention(parts: dict[str, Any], problems: _Problems) -> None:
    """A record anonymised while its sender may still reopen it would lose the reply."""
    retention, desk = parts.get("retention"), parts.get("desk")
    days = retention.anonymise_days if retention else None
    if desk and days is not None and days <= desk.reopen_days:
        problems.lines.append(f"retention.anonymise_days: {days} is within desk.reopen_days "
                              f"({desk.reopen_days}): a sender's reply could reopen a record that no "
                              "longer knows them")


_WithCa = TypeVar("_WithCa", "MailboxSettings", "OutboundSettings")


def parse_settings(data: dict[str, Any], base_dir: Path) -> Settings:
    """Settings from an already-parsed TOML document; SettingsError lists every problem."""
    problems = _Problems()
    root = _Table(data, "", problems)
    url = "sqlite:///var/inboxdesk.sqlite3"
    with problems.section():
        url = _database_url(root.get("database", dict, {}), problems)
    if url.startswith("sqlite:///") and not url.startswith("sqlite:////") and ":memory:" not in url:
        url = "sqlite:///" + str(base_dir / url.removeprefix("sqlite:///"))

    seen: set[str] = set()
    mailboxes = []
    for i, raw in enumerate(root.get("mailbox", list, [])):
        with problems.section():
            mailboxes.append(_mailbox(raw, i, seen, problems))

    parts: dict[str, Any] = {}
    for name, read, key, empty in (
            ("institution", _institution, "institution", {}), ("outbound", _outbound, "outbound", {}),
            ("telegram", _telegram, "telegram", {}), ("desk", _desk, "desk", {}),
            ("department", _department, "department", {}), ("staff", _staff, "staff", []),
            ("worktime", _worktime, "worktime", {}), ("intake", _intake, "intake", {}),
            ("http", _http, "http", {}), ("log", _log, "log", {}),
            ("retention", _retention, "retention", {}),
            ("organisations", _organisations, "organisations", {})):
        with problems.section():
            parts[name] = read(root.get(key, type(empty), empty), problems)
    root.reject_unknown()
    _check_retention(parts, problems)
    mailboxes = [_resolve_ca(b, f"mailbox[{i}]", base_dir, problems) for i, b in enumerate(mailboxes)]
    if "outbound" in parts:
        parts["outbound"] = _resolve_ca(parts["outbound"], "outbound", base_dir, problems)
    if problems.lines:
        raise SettingsError("\n".join(problems.lines))
    return Settings(database_url=url, mailboxes=tuple(mailboxes), base_dir=base_dir, **parts)


def _resolve_ca(part: _WithCa, where: str, base_dir: Path, problems: _Problems) -> _WithCa:
    """`tls_ca_file` named relative to the settings file, like every path in it; it must exist."""
    if not part.tls_ca_file:
        return part
    path = Path(part.tls_ca_file)
    path = path if path.is_absolute() else base_dir / path
    if not path.is_file():
        problems.lines.append(f"{where}.tls_ca_file: no such file: {path}")
    return replace(part, tls_ca_file=str(path))


def _database_url(data: Any, problems: _Problems) -> str:
    """`url`, or the URL in the variable `url_env` names (a PostgreSQL password stays out of the file)."""
    t = _Table(data, "database", problems)
    url = t.get("url", str, "")
    url_env = t.get("url_env", str, "")
    t.reject_unknown()
    if url_env:
        from_env = os.environ.get(url_env, "").strip()
        if from_env:
            return from_env
        if not url:
            raise SettingsError(f"database.url_env: environment variable {url_env} is not set "
                                "(and no database.url to fall back on)")
    return url or "sqlite:///var/inboxdesk.sqlite3"


def _institution(data: Any, problems: _Problems) -> InstitutionSettings:
    t = _Table(data, "institution", problems)
    institution = InstitutionSettings(name=t.get("name", str, InstitutionSettings.name),
                                      id=t.get("id", str, "").strip())
    t.reject_unknown()
    return institution


def load_settings(path: str | os.PathLike[str] | None = None) -> Settings:
    """Settings from `path`, else `$INBOXDESK_CONFIG`, else `./settings.toml`."""
    chosen = Path(path or os.environ.get("INBOXDESK_CONFIG") or "settings.toml")
    try:
        data = tomllib.loads(chosen.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise SettingsError(f"{chosen}: settings file not found") from None
    except tomllib.TOMLDecodeError as exc:
        raise SettingsError(f"{chosen}: not valid TOML: {exc}") from None
    return parse_settings(data, chosen.resolve().parent)
