"""A local Maildir as a mail source: unread mail in new/ and cur/, processed mail flagged S and moved."""

from __future__ import annotations

import heapq
import logging
import os
import threading
import time
from pathlib import Path

from mailflow.sources import FetchedMail, SourceError

log = logging.getLogger(__name__)

SUBDIRS = ("new", "cur", "tmp")
MAX_BATCH_BYTES = 32 * 1024 * 1024  # as for IMAP: bound what one fetch_new holds in memory


class MaildirSource:
    """A Maildir folder; `source_ref` is the message's maildir key (file name without ":2,flags")."""

    def __init__(
        self,
        path: str | os.PathLike[str],
        processed_folder: str = "",
        stop_event: threading.Event | None = None,
        poll_interval: float = 0.25,
    ) -> None:
        if "/" in processed_folder or processed_folder.startswith("."):
            raise ValueError(f"processed folder must be a plain Maildir++ name, not {processed_folder!r}")
        self.path = Path(path)
        self.processed_folder = processed_folder
        self.stop_event = stop_event
        self.poll_interval = poll_interval
        self._where: dict[str, tuple[str, str]] = {}  # key -> (subdir, file name) from the last fetch
        # Keys handed out since open(): a file that cannot be finished (or is finished elsewhere)
        # is not handed out again in the same pass, so a poll loop always ends.
        self._handed: set[str] = set()

    def __repr__(self) -> str:
        return f"MaildirSource({self.path})"

    def open(self) -> None:
        """Create new/, cur/ and tmp/ when missing; a path that cannot be a Maildir is a SourceError."""
        try:
            make_maildir(self.path)
        except OSError as exc:
            raise SourceError(f"Maildir {self.path}: {exc.strerror or exc}") from exc

    def close(self) -> None:
        self._where.clear()
        self._handed.clear()

    def check(self) -> None:
        """Open and close once (for check-config)."""
        self.open()
        self.close()

    def uidvalidity(self) -> int | None:
        return None

    def fetch_new(self, after_uid: int, limit: int) -> list[FetchedMail]:
        """Messages in new/ and unseen ones in cur/ not yet handed out since open(), oldest first
        (mtime, then name); after_uid is ignored."""
        if limit <= 0:
            return []
        candidates: list[tuple[int, str, str, int]] = []  # (mtime_ns, name, subdir, size)
        for sub in ("new", "cur"):
            try:
                entries = os.scandir(self.path / sub)
            except OSError as exc:
                raise SourceError(f"Maildir {self.path}: {exc.strerror or exc}") from exc
            with entries:
                for entry in entries:
                    name = entry.name
                    if (name.startswith(".") or (sub == "cur" and "S" in _flags(name))
                            or _key(name) in self._handed):
                        continue
                    try:
                        st = entry.stat()
                    except FileNotFoundError:  # moved away meanwhile
                        continue
                    if entry.is_file():
                        candidates.append((st.st_mtime_ns, name, sub, st.st_size))
        mails: list[FetchedMail] = []
        total = 0
        for _mtime, name, sub, size in heapq.nsmallest(limit, candidates):
            if mails and total + size > MAX_BATCH_BYTES:
                break
            try:
                raw = (self.path / sub / name).read_bytes()
            except FileNotFoundError:
                continue
            except OSError as exc:
                raise SourceError(f"Maildir {self.path}: cannot read {sub}/{name}: {exc.strerror}") from exc
            key = _key(name)
            self._where[key] = (sub, name)
            self._handed.add(key)
            mails.append(FetchedMail(source_ref=key, raw=raw))
            total += size
        return mails

    def mark_processed(self, refs: list[str]) -> None:
        """Add the S flag and move into cur/ (or into the `.processed_folder` sub-Maildir)."""
        refs = [r for r in refs if r and "/" not in r and not r.startswith(".")]
        if not refs:
            return
        target = self.path / f".{self.processed_folder}" if self.processed_folder else self.path
        try:
            if self.processed_folder:
                make_maildir(target)
                (target / "maildirfolder").touch()  # marks a Maildir++ subfolder for mail servers
            if any(r not in self._where for r in refs):
                self._where.update(self._scan())
            for key in refs:
                where = self._where.pop(key, None)
                if where is None:  # already moved or deleted: nothing left to do
                    continue
                sub, name = where
                if sub == "cur" and "S" in _flags(name) and not self.processed_folder:
                    continue  # finished already
                flags = "".join(sorted(set(_flags(name)) | {"S"}))
                try:
                    os.rename(self.path / sub / name, _free_name(target / "cur", key, flags))
                except FileNotFoundError:
                    continue
        except OSError as exc:
            raise SourceError(f"Maildir {self.path}: cannot mark processed: {exc.strerror or exc}") from exc

    def wait_for_mail(self, timeout: float) -> bool:
        """Sleep up to `timeout`, waking early (True) when something lands in new/."""
        deadline = time.monotonic() + timeout
        before = self._new_mtime()
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                return False
            if self.stop_event is not None:
                if self.stop_event.wait(min(left, self.poll_interval)):
                    return False
            else:
                time.sleep(min(left, self.poll_interval))
            if self._new_mtime() != before:
                return True

    def _new_mtime(self) -> int | None:
        try:
            return os.stat(self.path / "new").st_mtime_ns
        except OSError:
            return None

    def _scan(self) -> dict[str, tuple[str, str]]:
        found: dict[str, tuple[str, str]] = {}
        for sub in ("new", "cur"):
            for name in os.listdir(self.path / sub):
                if not name.startswith("."):
                    found[_key(name)] = (sub, name)
        return found


def make_maildir(path: Path) -> None:
    """tmp/, new/ and cur/ under `path`, whichever are missing (a folder may exist already,
    empty: `check-config` makes it to prove it writable)."""
    for sub in SUBDIRS:
        (path / sub).mkdir(parents=True, exist_ok=True)


def _free_name(cur: Path, key: str, flags: str) -> Path:
    """`cur/key:2,flags`, or `cur/key.N:2,flags` when a file of that key is already there (a
    copy delivered under a used name must not overwrite the message that had it first)."""
    path, n = cur / f"{key}:2,{flags}", 1
    while path.exists():
        path, n = cur / f"{key}.{n}:2,{flags}", n + 1
    return path


def _key(name: str) -> str:
    return name.split(":", 1)[0]


def _flags(name: str) -> str:
    """The flag letters of a file name "key:2,FS" ("" when there is no info part)."""
    _base, sep, info = name.partition(":")
    return info[2:] if sep and info.startswith("2,") else ""
