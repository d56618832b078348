"""Settings from `settings.toml`: strict, typed, and loud about mistakes.

Every problem names its key (``mailbox[1].port: expected an integer``) and stops start-up.
Secrets never live in the file: a `*_env` key names the environment variable that holds them.
"""

from __future__ import annotations

import os
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

DEFAULT_PORTS = {("imap", "ssl"): 993, ("imap", "starttls"): 143, ("imap", "none"): 143,
                 ("smtp", "ssl"): 465, ("smtp", "starttls"): 587, ("smtp", "none"): 25}


class SettingsError(ValueError):
    """The settings file is wrong; the message names the key."""


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
    auto_mail_per_hour: int = 20  # OUT-1: cap automatic mail to one address
    tls_verify: bool = True

    @property
    def password(self) -> str:
        return os.environ.get(self.password_env, "") if self.password_env else ""


@dataclass(frozen=True)
class InstitutionSettings:
    name: str = "ГБУЗС «МИАЦ»"
    id: str = ""


@dataclass(frozen=True)
class Settings:
    database_url: str
    mailboxes: tuple[MailboxSettings, ...]
    outbound: OutboundSettings
    institution: InstitutionSettings
    base_dir: Path = field(default_factory=Path.cwd)

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
    """Reads one TOML table and remembers the key path for messages."""

    def __init__(self, data: Any, where: str) -> None:
        if not isinstance(data, dict):
            raise SettingsError(f"{where}: expected a table")
        self.data, self.where, self.used = data, where, set()

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
        if kind is tuple:
            if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
                raise SettingsError(f"{name}: expected a list of strings")
            return tuple(value)
        if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
            raise SettingsError(f"{name}: expected {_KIND_NAMES.get(kind, kind.__name__)}, got {value!r}")
        if choices and value not in choices:
            raise SettingsError(f"{name}: must be one of {', '.join(choices)}, got {value!r}")
        return value

    def reject_unknown(self) -> None:
        unknown = sorted(set(self.data) - self.used)
        if unknown:
            prefix = f"{self.where}." if self.where else ""
            raise SettingsError(f"{prefix}{unknown[0]}: unknown key")


_KIND_NAMES = {str: "a string", int: "an integer", float: "a number", bool: "true or false"}


def _mailbox(data: Any, index: int, seen: set[str]) -> MailboxSettings:
    t = _Table(data, f"mailbox[{index}]")
    name = t.get("name", str)
    if name in seen:
        raise SettingsError(f"mailbox[{index}].name: duplicate mailbox name {name!r}")
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
    )
    t.reject_unknown()
    where = f"mailbox[{index}]"
    if "@" not in box.address:
        raise SettingsError(f"{where}.address: not an email address: {box.address!r}")
    if source == "imap" and not box.host:
        raise SettingsError(f"{where}.host: required when source = \"imap\"")
    if source == "imap" and not box.username:
        raise SettingsError(f"{where}.username: required when source = \"imap\"")
    if source == "maildir" and not box.path:
        raise SettingsError(f"{where}.path: required when source = \"maildir\"")
    if not 0 < box.port < 65536:
        raise SettingsError(f"{where}.port: must be 1..65535, got {box.port}")
    if box.poll_seconds <= 0:
        raise SettingsError(f"{where}.poll_seconds: must be positive")
    if not box.id_prefix.replace("_", "").isalnum():
        raise SettingsError(f"{where}.id_prefix: letters and digits only, got {box.id_prefix!r}")
    if box.batch_size < 1:
        raise SettingsError(f"{where}.batch_size: must be at least 1")
    return box


def _outbound(data: Any) -> OutboundSettings:
    t = _Table(data, "outbound")
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
        tls_verify=t.get("tls_verify", bool, True),
    )
    t.reject_unknown()
    if transport == "smtp" and not out.host:
        raise SettingsError('outbound.host: required when transport = "smtp"')
    if not 0 < out.port < 65536:
        raise SettingsError(f"outbound.port: must be 1..65535, got {out.port}")
    if out.max_attempts < 1:
        raise SettingsError("outbound.max_attempts: must be at least 1")
    return out


def parse_settings(data: dict[str, Any], base_dir: Path) -> Settings:
    """Settings from an already-parsed TOML document."""
    root = _Table(data, "")
    db = _Table(root.get("database", dict, {}), "database")
    url = db.get("url", str, "sqlite:///var/inboxdesk.sqlite3")
    db.reject_unknown()
    if url.startswith("sqlite:///") and not url.startswith("sqlite:////") and ":memory:" not in url:
        url = "sqlite:///" + str(base_dir / url.removeprefix("sqlite:///"))

    boxes_raw = root.get("mailbox", list, [])
    seen: set[str] = set()
    mailboxes = tuple(_mailbox(b, i, seen) for i, b in enumerate(boxes_raw))

    inst = _Table(root.get("institution", dict, {}), "institution")
    institution = InstitutionSettings(name=inst.get("name", str, InstitutionSettings.name),
                                      id=inst.get("id", str, ""))
    inst.reject_unknown()

    outbound = _outbound(root.get("outbound", dict, {}))
    root.reject_unknown()
    return Settings(database_url=url, mailboxes=mailboxes, outbound=outbound,
                    institution=institution, base_dir=base_dir)


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
