"""A private Dovecot IMAP server on a loopback port, with passwd-file users and Maildir storage."""

from __future__ import annotations

import atexit
import contextlib
import ctypes
import itertools
import os
import re
import secrets
import shutil
import signal
import ssl
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from imapclient import IMAPClient, imap_utf7

from . import free_port, self_signed_cert, wait_port

# The configuration verified in ../shared/TESTING.md; DIR and PORT are filled in, TLS is appended.
# One difference: a passwd-file per user. Dovecot rereads a passwd-file at most once a second, so a
# user added to a shared file right after another one could not log in yet; a new file is read at once.
CONFIG = """\
instance_name = inboxdesk-test
base_dir  = DIR/run
state_dir = DIR/state
log_path  = DIR/dovecot.log
protocols = imap
listen = 127.0.0.1
ssl = no
disable_plaintext_auth = no
auth_mechanisms = plain login
auth_failure_delay = 0
passdb {
  driver = passwd-file
  args = scheme=PLAIN username_format=%u DIR/users.d/%u
}
userdb {
  driver = static
  args = uid=nobody gid=nogroup home=DIR/mail/%d/%n
}
mail_location = maildir:~/Maildir
mail_fsync = never
namespace inbox {
  inbox = yes
}
protocol imap {
  mail_max_userip_connections = 50
}
service imap-login {
  inet_listener imap {
    address = 127.0.0.1
    port = PORT
  }
  inet_listener imaps {
    port = 0
  }
}
service anvil {
  unix_listener anvil-auth-penalty {
    mode = 0
  }
}
"""

TLS_CONFIG = """\
ssl = yes
ssl_cert = <DIR/cert.pem
ssl_key = <DIR/key.pem
service imap-login {
  inet_listener imaps {
    address = 127.0.0.1
    port = SSLPORT
    ssl = yes
  }
}
"""

# Dovecot keeps a folder's UIDVALIDITY in these files (Maildir root or the `.Folder` subdirectory);
# the list index caches it too.
_INDEX_FILES = ("dovecot-uidlist", "dovecot.index", "dovecot.index.log", "dovecot.index.log.2",
                "dovecot.index.cache")
_APPENDUID = re.compile(rb"\[APPENDUID \d+ ([\d:,]+)\]")


class DovecotMissing(RuntimeError):
    """The dovecot binary is not installed (or cannot run as a private instance here)."""


@dataclass(frozen=True)
class ImapAccount:
    """A mail user of the test server."""

    address: str
    password: str


def find_dovecot() -> str | None:
    """Path to the dovecot binary; /usr/sbin is often missing from a non-root PATH."""
    return shutil.which("dovecot") or next(
        (p for p in ("/usr/sbin/dovecot", "/usr/local/sbin/dovecot") if os.access(p, os.X_OK)), None
    )


class DovecotServer:
    """One private `dovecot -F` instance; restartable on the same ports to simulate outages."""

    host = "127.0.0.1"

    def __init__(self, tls: bool = False, binary: str | None = None, extra_config: str = "") -> None:
        """`extra_config` is appended to the configuration, e.g. "imap_capability = IMAP4rev1 UIDPLUS"."""
        self.binary = binary or find_dovecot()
        if not self.binary:
            raise DovecotMissing("dovecot binary not found (Debian package dovecot-imapd)")
        if os.geteuid() != 0:
            # The verified config relies on root: mail runs as nobody, logins as dovenull.
            raise DovecotMissing("a private Dovecot for tests must run as root")
        self.tls = tls
        self.extra_config = extra_config
        self.dir = Path(tempfile.mkdtemp(prefix="inboxdesk-dovecot-", dir="/tmp"))
        try:
            self._prepare()
        except BaseException:
            shutil.rmtree(self.dir, ignore_errors=True)
            raise
        self._passwords: dict[str, str] = {}
        self._counter = itertools.count(1)
        self._proc: subprocess.Popen | None = None
        atexit.register(self.stop)

    def _prepare(self) -> None:
        # Dovecot's auth and mail processes run as other users and must traverse this directory.
        self.dir.chmod(0o755)
        mail = self.dir / "mail"
        mail.mkdir()
        os.chown(mail, _uid("nobody"), _gid("nogroup"))
        self.port = free_port()
        self.ssl_port: int | None = free_port() if self.tls else None
        self.cert_path: Path | None = None
        config = CONFIG
        if self.tls:
            self.cert_path, _key = self_signed_cert(self.dir)
            config += TLS_CONFIG.replace("SSLPORT", str(self.ssl_port))
        config += self.extra_config + "\n"
        self.config_path = self.dir / "dovecot.conf"
        self.config_path.write_text(config.replace("DIR", str(self.dir)).replace("PORT", str(self.port)))
        self.users_dir = self.dir / "users.d"
        self.users_dir.mkdir()

    # --- lifecycle -------------------------------------------------------------------------------

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def start(self) -> None:
        """Start (or restart) the server on its ports and wait until it accepts connections."""
        if self.running:
            return
        # PDEATHSIG fires when the forking *thread* ends: only safe from the main thread (a test may
        # restart the server from a timer thread).
        main_thread = threading.current_thread() is threading.main_thread()
        with open(self.dir / "stdout.log", "ab") as out:
            self._proc = subprocess.Popen(
                [self.binary, "-F", "-c", str(self.config_path)],
                stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                start_new_session=True, preexec_fn=_die_with_parent if main_thread else None,
            )
        try:
            wait_port(self.host, self.port, alive=self._proc)
            if self.ssl_port:
                wait_port(self.host, self.ssl_port, alive=self._proc)
        except (RuntimeError, TimeoutError) as exc:
            self.stop()
            raise RuntimeError(f"dovecot did not start: {exc}\n{self.log_tail()}") from exc

    def stop(self) -> None:
        """Stop the server like an outage: clients are disconnected, the ports close."""
        proc, self._proc = self._proc, None
        if proc is None:
            return
        # SIGTERM to the process group we created for this instance (its id is our master's pid):
        # the master alone takes ~1 s to stop and leaves imap processes serving connected clients.
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        deadline = time.monotonic() + 5
        while _group_members(proc.pid) and time.monotonic() < deadline:
            time.sleep(0.01)

    def close(self) -> None:
        """Stop the server and remove its directory."""
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)

    def __enter__(self) -> DovecotServer:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def log_tail(self, lines: int = 30) -> str:
        """The end of Dovecot's own log, for error messages."""
        text = ""
        for name in ("dovecot.log", "stdout.log"):
            with contextlib.suppress(OSError):
                text += (self.dir / name).read_text(errors="replace")
        return "\n".join(text.splitlines()[-lines:])

    # --- users -----------------------------------------------------------------------------------

    def add_user(self, address: str, password: str) -> ImapAccount:
        """Add (or change) a user; works while the server runs."""
        if any(c in address + password for c in ":\n\r") or "/" in address or address.startswith("."):
            raise ValueError("unusable address or password for a passwd-file")
        changed = address in self._passwords and self._passwords[address] != password
        self._passwords[address] = password
        path = self.users_dir / address
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_text(f"{address}:{{PLAIN}}{password}\n")
        tmp.replace(path)
        if changed and self.running:
            time.sleep(1.1)  # Dovecot may have the old file cached for up to a second
        return ImapAccount(address, password)

    def new_user(self, prefix: str = "user", domain: str = "example.test") -> ImapAccount:
        """A fresh user with a random password, so tests sharing the server do not collide."""
        address = f"{prefix}-{next(self._counter)}-{secrets.token_hex(3)}@{domain}"
        return self.add_user(address, secrets.token_urlsafe(12))

    # --- IMAP helpers for test setup and assertions ----------------------------------------------

    def client(self, user: str, *, security: str = "none", timeout: float = 10) -> IMAPClient:
        """A logged-in imapclient connection as `user` ("none", "starttls" or "ssl")."""
        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        if security == "ssl":
            if not self.ssl_port:
                raise ValueError("server started without tls=True")
            client = IMAPClient(self.host, port=self.ssl_port, ssl=True, ssl_context=context, timeout=timeout)
        else:
            client = IMAPClient(self.host, port=self.port, ssl=False, timeout=timeout)
            if security == "starttls":
                client.starttls(context)
        client.login(user, self._passwords[user])
        return client

    @contextlib.contextmanager
    def session(self, user: str) -> Iterator[IMAPClient]:
        """A short-lived logged-in connection that logs out at the end."""
        client = self.client(user)
        try:
            yield client
        finally:
            with contextlib.suppress(Exception):
                client.logout()

    def append(self, user: str, raw: bytes, folder: str = "INBOX", flags: Sequence[str | bytes] = ()) -> int:
        """Append one message (creating `folder` if needed) and return its UID."""
        with self.session(user) as client:
            _ensure_folder(client, folder)
            response = client.append(folder, raw, flags=tuple(flags))
        return _appended_uids(response)[-1]

    def append_many(
        self, user: str, raws: Iterable[bytes], folder: str = "INBOX", flags: Sequence[str | bytes] = ()
    ) -> list[int]:
        """Append many messages over one connection (MULTIAPPEND batches); returns their UIDs."""
        uids: list[int] = []
        with self.session(user) as client:
            _ensure_folder(client, folder)
            multi = client.has_capability("MULTIAPPEND")
            for batch in _batches(raws, max_count=500, max_bytes=16 << 20):
                if multi:
                    items = [{"msg": raw, "flags": tuple(flags)} if flags else raw for raw in batch]
                    uids += _appended_uids(client.multiappend(folder, items))
                else:
                    for raw in batch:
                        uids += _appended_uids(client.append(folder, raw, flags=tuple(flags)))
        return uids

    def folder_messages(self, user: str, folder: str = "INBOX") -> list[tuple[int, tuple[bytes, ...], bytes]]:
        """(uid, flags, raw bytes) of every message in `folder`, by UID; [] if the folder is missing.

        Reads with BODY.PEEK[] on a read-only selection, so assertions never change \\Seen.
        """
        with self.session(user) as client:
            if folder.upper() != "INBOX" and not client.folder_exists(folder):
                return []
            client.select_folder(folder, readonly=True)
            uids = client.search("ALL")
            data = client.fetch(uids, ["FLAGS", "BODY.PEEK[]"]) if uids else {}
        return [(uid, tuple(d[b"FLAGS"]), d[b"BODY[]"]) for uid, d in sorted(data.items())]

    def uidvalidity(self, user: str, folder: str = "INBOX") -> int:
        """The folder's current UIDVALIDITY as the server reports it."""
        with self.session(user) as client:
            return int(client.folder_status(folder, [b"UIDVALIDITY"])[b"UIDVALIDITY"])

    def recreate_folder(self, user: str, folder: str = "INBOX", keep_messages: bool = True) -> int:
        """Give `folder` a new UIDVALIDITY, as after a server migration; returns the new value.

        The messages stay (renumbered from UID 1) unless `keep_messages` is false. Works for INBOX,
        which IMAP cannot DELETE: Dovecot's UID list and indexes are removed on disk, and sessions
        of that user are disconnected first so that no running process writes the old state back.
        """
        old = self.uidvalidity(user, folder)
        self.kick(user)
        maildir = self.maildir_path(user)
        if folder.upper() == "INBOX":
            folder_dir = maildir
        else:  # Maildir++ keeps folder "A.B" in the directory ".A.B", names in modified UTF-7
            folder_dir = maildir / ("." + imap_utf7.encode(folder).decode())
        if not folder_dir.is_dir():
            raise ValueError(f"no folder {folder!r} for {user}")
        for name in _INDEX_FILES:
            (folder_dir / name).unlink(missing_ok=True)
        for path in maildir.glob("dovecot.list.index*"):
            path.unlink()
        if not keep_messages:
            for sub in ("cur", "new"):
                for path in (folder_dir / sub).iterdir():
                    path.unlink()
        new = self.uidvalidity(user, folder)
        if new == old:
            raise RuntimeError(f"UIDVALIDITY of {folder!r} did not change ({old})")
        return new

    def delete_folder(self, user: str, folder: str) -> None:
        """IMAP DELETE of a folder other than INBOX (its messages go with it)."""
        with self.session(user) as client:
            if client.folder_exists(folder):
                client.delete_folder(folder)

    def kick(self, user: str) -> None:
        """Disconnect every IMAP session of `user` (as a server restart would, but for one user)."""
        if not self.running:
            return
        # `doveadm who` lines: "user  count proto (pid pid …) (ips)"; wait for exactly those to end,
        # since a client may reconnect at once.
        who = self._doveadm("who", user, ok_codes=(0, 68))
        pids = [int(pid) for group in re.findall(r"\(([\d ]+)\)", who) for pid in group.split()]
        self._doveadm("kick", user, ok_codes=(0, 68))  # 68 (EX_NOUSER): nobody was connected
        deadline = time.monotonic() + 5
        while any(_alive(pid) for pid in pids) and time.monotonic() < deadline:
            time.sleep(0.01)

    def _doveadm(self, *args: str, ok_codes: tuple[int, ...] = (0,)) -> str:
        doveadm = str(Path(self.binary).with_name("doveadm"))
        if not os.access(doveadm, os.X_OK):
            doveadm = shutil.which("doveadm") or "doveadm"
        result = subprocess.run([doveadm, "-c", str(self.config_path), *args],
                                capture_output=True, text=True, timeout=30, check=False)
        if result.returncode not in ok_codes:
            raise RuntimeError(f"doveadm {' '.join(args)} failed ({result.returncode}): {result.stderr}")
        return result.stdout

    def maildir_path(self, user: str) -> Path:
        """Where the user's Maildir lives on disk (home is DIR/mail/%d/%n)."""
        local, _, domain = user.partition("@")
        return self.dir / "mail" / domain / local / "Maildir"


def _alive(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return False


def _group_members(pgid: int) -> list[int]:
    """Live (non-zombie) processes of a process group."""
    members = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if fields[0] != "Z" and int(fields[2]) == pgid:
            members.append(int(entry.name))
    return members


def _die_with_parent() -> None:
    # Runs in the child before exec: if the test process is killed, the kernel sends Dovecot SIGTERM,
    # so no stray server keeps a port and a temp dir.
    ctypes.CDLL(None).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


def _ensure_folder(client: IMAPClient, folder: str) -> None:
    if folder.upper() != "INBOX" and not client.folder_exists(folder):
        client.create_folder(folder)


def _appended_uids(response: bytes | tuple) -> list[int]:
    if isinstance(response, tuple):  # multiappend returns imaplib's raw (typ, [data])
        response = b" ".join(x for x in response[1] if isinstance(x, bytes))
    match = _APPENDUID.search(response or b"")
    if not match:
        return []
    uids: list[int] = []
    for part in match.group(1).decode().split(","):
        first, _, last = part.partition(":")
        uids += range(int(first), int(last or first) + 1)
    return uids


def _batches(raws: Iterable[bytes], max_count: int, max_bytes: int) -> Iterator[list[bytes]]:
    batch: list[bytes] = []
    size = 0
    for raw in raws:
        if batch and (len(batch) >= max_count or size + len(raw) > max_bytes):
            yield batch
            batch, size = [], 0
        batch.append(raw)
        size += len(raw)
    if batch:
        yield batch


def _uid(name: str) -> int:
    import pwd

    return pwd.getpwnam(name).pw_uid


def _gid(name: str) -> int:
    import grp

    return grp.getgrnam(name).gr_gid
