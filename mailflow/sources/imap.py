"""An IMAP folder as a mail source (imapclient): UID-based fetching, \\Seen + MOVE after processing, IDLE."""

from __future__ import annotations

import contextlib
import imaplib
import logging
import socket
import ssl
import threading
import time
from collections.abc import Iterator, Sequence

from imapclient import IMAPClient
from imapclient.exceptions import CapabilityError, LoginError

from mailflow.sources import FetchedMail, SourceError
from mailflow.tls import client_context

log = logging.getLogger(__name__)

SECURITY = ("none", "starttls", "ssl")
FETCH_BATCH = 100  # FETCH BODY.PEEK[] in batches of 100 measured fastest on Dovecot (~4,000 msg/s)
STORE_BATCH = 1000  # UIDs per STORE/MOVE command; compact sets keep the command line short
# The messages one fetch_new returns stay in memory together; stop adding once this much is held
# (at least one message is always returned, however big).
MAX_BATCH_BYTES = 32 * 1024 * 1024
SEEN = b"\\Seen"


class ImapSource:
    """One folder of one IMAP account; not thread-safe (one connection, used by one thread)."""

    def __init__(
        self,
        host: str,
        port: int | None,
        security: str,
        username: str,
        password: str,
        folder: str = "INBOX",
        processed_folder: str = "",
        timeout: float = 30,
        ssl_verify: bool = True,
        ca_file: str = "",
        stop_event: threading.Event | None = None,
    ) -> None:
        if security not in SECURITY:
            raise ValueError(f"IMAP security must be one of {', '.join(SECURITY)}, not {security!r}")
        self.host = host
        self.port = port or (993 if security == "ssl" else 143)
        self.security = security
        self.username = username
        self._password = password
        self.folder = folder or "INBOX"
        self.processed_folder = processed_folder if processed_folder != self.folder else ""
        self.timeout = timeout
        self.ssl_verify, self.ca_file = ssl_verify, ca_file
        self.stop_event = stop_event  # interrupts the sleep of servers without IDLE
        self._client: IMAPClient | None = None
        self._uidvalidity: int | None = None
        self._processed_ready = False

    def __repr__(self) -> str:  # never shows the password
        return f"ImapSource({self.username}@{self.host}:{self.port}/{self.folder}, {self.security})"

    # --- connection ------------------------------------------------------------------------------

    def open(self) -> None:
        """Connect, log in and select the folder read-write; any failure is a SourceError."""
        self.close()
        context = self._ssl_context() if self.security != "none" else None
        with self._errors("connect"):
            client = IMAPClient(self.host, port=self.port, ssl=self.security == "ssl",
                                ssl_context=context, timeout=self.timeout)
        self._client = client
        try:
            if self.security == "starttls":
                with self._errors("STARTTLS"):
                    client.starttls(context)
            with self._errors("login"):
                client.login(self.username, self._password)
            with self._errors("select"):
                selected = client.select_folder(self.folder, readonly=False)
                self._uidvalidity = int(selected[b"UIDVALIDITY"])  # KeyError: a server without UIDs
            self._take_news()  # the SELECT's EXISTS is not news: the first fetch reads everything
        except SourceError:
            self._drop()
            raise
        log.debug("IMAP %s:%s: %s opened %s (UIDVALIDITY %s)", self.host, self.port, self.username,
                  self.folder, self._uidvalidity)

    def close(self) -> None:
        """Log out quietly; a dead connection is just dropped."""
        client, self._client = self._client, None
        self._processed_ready = False
        if client is None:
            return
        try:
            client.logout()
        except Exception:
            with contextlib.suppress(Exception):
                client.shutdown()

    def check(self) -> None:
        """Open and close once (for check-config); raises SourceError with the reason."""
        try:
            self.open()
        finally:
            self.close()

    def uidvalidity(self) -> int | None:
        """UIDVALIDITY of the folder from the last SELECT (None before open)."""
        return self._uidvalidity

    # --- reading ---------------------------------------------------------------------------------

    def fetch_new(self, after_uid: int, limit: int) -> list[FetchedMail]:
        """Up to `limit` messages with UID > after_uid, oldest first; BODY.PEEK[] keeps them unseen."""
        client = self._connected()
        if limit <= 0:
            return []
        with self._errors("fetch"):
            # Dovecot shows a session new mail only when it syncs, at the end of a command: NOOP first
            # so SEARCH sees everything. What arrives after the NOOP is news for wait_for_mail.
            client.noop()
            self._forget_untagged()
            found = client.search(["UID", f"{max(after_uid, 0) + 1}:*"])
            # "N:*" always matches the last message, even when its UID is below N.
            uids = sorted(uid for uid in found if uid > after_uid)[:limit]
            if not uids:
                return []
            sizes = client.fetch(uids, [b"RFC822.SIZE"])
            chosen: list[int] = []
            total = 0
            for uid in uids:
                size = int(sizes.get(uid, {}).get(b"RFC822.SIZE", 0))
                if chosen and total + size > MAX_BATCH_BYTES:
                    break
                chosen.append(uid)
                total += size
            mails: list[FetchedMail] = []
            for start in range(0, len(chosen), FETCH_BATCH):
                part = chosen[start:start + FETCH_BATCH]
                data = client.fetch(part, [b"BODY.PEEK[]"])
                for uid in part:
                    raw = data.get(uid, {}).get(b"BODY[]")
                    if raw is None:  # expunged by someone else between SEARCH and FETCH
                        continue
                    mails.append(FetchedMail(source_ref=f"{self._uidvalidity}:{uid}", raw=raw,
                                             uidvalidity=self._uidvalidity, uid=uid))
        return mails

    # --- acknowledging ---------------------------------------------------------------------------

    def mark_processed(self, refs: list[str]) -> None:
        """Set \\Seen and move to the processed folder (COPY if the server lacks MOVE); never deletes."""
        client = self._connected()
        current = str(self._uidvalidity)
        uids = sorted({int(uid) for v, _, uid in (ref.partition(":") for ref in refs)
                       if v == current and uid.isdigit()})
        if not uids:
            return
        with self._errors("mark processed"):
            if self.processed_folder:
                self._ensure_processed_folder(client)
            can_move = client.has_capability("MOVE")
            for start in range(0, len(uids), STORE_BATCH):
                uid_set = _compact(uids[start:start + STORE_BATCH])
                client.add_flags(uid_set, [SEEN], silent=True)
                if self.processed_folder:
                    if can_move:
                        client.move(uid_set, self.processed_folder)
                    else:
                        # Without MOVE the message stays here too (\Seen, below the checkpoint):
                        # deleting and expunging is not our call to make.
                        client.copy(uid_set, self.processed_folder)
            self._forget_untagged(keep_news=True)

    def _ensure_processed_folder(self, client: IMAPClient) -> None:
        if self._processed_ready:
            return
        if not client.folder_exists(self.processed_folder):
            try:
                client.create_folder(self.processed_folder)
                log.info("IMAP %s:%s: created folder %s for %s", self.host, self.port,
                         self.processed_folder, self.username)
            except imaplib.IMAP4.error:
                # Another instance may have created it just now.
                if not client.folder_exists(self.processed_folder):
                    raise
            with contextlib.suppress(imaplib.IMAP4.error):
                client.subscribe_folder(self.processed_folder)  # so mail clients show it
        self._processed_ready = True

    # --- waiting ---------------------------------------------------------------------------------

    def wait_for_mail(self, timeout: float) -> bool:
        """IDLE until the server reports new mail (True) or `timeout` passes (False).

        A connection lost while idling is reopened and reported as True, so the caller fetches.
        """
        client = self._connected()
        if self._take_news():
            return True
        if not client.has_capability("IDLE"):
            self._sleep(timeout)
            return False
        try:
            return self._idle(client, timeout)
        except (imaplib.IMAP4.abort, OSError) as exc:
            # Includes imapclient issue #519 (a response line split across packets aborts
            # idle_check) and a server that went away: start over on a new connection.
            log.info("IMAP %s:%s: connection lost while idling (%s); reconnecting", self.host,
                     self.port, exc)
            self.open()
            return True
        except imaplib.IMAP4.error as exc:
            self._drop()
            raise self._error("IDLE", exc) from exc

    def _idle(self, client: IMAPClient, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        client.idle()
        news = False
        early_empty = 0
        while not news:
            left = deadline - time.monotonic()
            if left <= 0:
                break
            responses = client.idle_check(timeout=left)
            if any(_is_bye(r) for r in responses):
                raise imaplib.IMAP4.abort("server said BYE")
            news = any(_is_news(r) for r in responses)
            if responses or deadline - time.monotonic() <= 0.01:
                early_empty = 0
                continue
            # idle_check swallows EOF and returns [] at once, so a closed connection would spin
            # here. A few early empty returns are harmless (a TLS record without data); many in a
            # row mean EOF.
            early_empty += 1
            if early_empty > 20:
                raise imaplib.IMAP4.abort("connection closed during IDLE")
            time.sleep(0.05)
        # On errors above the connection is abandoned instead: DONE cannot be sent on it.
        _text, responses = client.idle_done()
        news = news or any(_is_news(r) for r in responses)
        self._take_news()  # the responses to DONE are stored too; they are reported already
        return news

    def _sleep(self, timeout: float) -> None:
        if self.stop_event is not None:
            self.stop_event.wait(timeout)
        else:
            time.sleep(timeout)

    # --- helpers ---------------------------------------------------------------------------------

    def _connected(self) -> IMAPClient:
        if self._client is None:
            raise SourceError(f"IMAP {self.host}:{self.port}: not connected")
        return self._client

    def _drop(self) -> None:
        """Forget a connection that failed; the caller opens a new one."""
        client, self._client = self._client, None
        self._processed_ready = False
        if client is not None:
            with contextlib.suppress(Exception):
                client.shutdown()

    def _ssl_context(self) -> ssl.SSLContext:
        return client_context(self.ssl_verify, self.ca_file)

    def _untagged(self) -> dict:
        client = self._client
        return client._imap.untagged_responses if client is not None else {}  # imaplib keeps them here

    def _take_news(self) -> bool:
        """True (once) if an earlier command's responses announced new mail."""
        untagged = self._untagged()
        exists = untagged.pop("EXISTS", None)
        recent = untagged.pop("RECENT", None) or []
        return bool(exists) or any(n not in (b"0", "0") for n in recent)

    def _forget_untagged(self, keep_news: bool = False) -> None:
        """Drop accumulated untagged responses (imaplib would keep every EXPUNGE of a long session)."""
        untagged = self._untagged()
        for key in list(untagged):
            if not (keep_news and key in ("EXISTS", "RECENT")):
                del untagged[key]

    @contextlib.contextmanager
    def _errors(self, action: str) -> Iterator[None]:
        """Turn imapclient, socket and TLS errors into one SourceError; drop broken connections."""
        try:
            yield
        except SourceError:
            raise
        except (imaplib.IMAP4.abort, OSError) as exc:  # the connection is unusable now
            self._drop()
            raise self._error(action, exc) from exc
        except (imaplib.IMAP4.error, CapabilityError, ValueError, KeyError) as exc:
            if action in ("connect", "STARTTLS", "login", "select"):
                self._drop()
            raise self._error(action, exc) from exc

    def _error(self, action: str, exc: BaseException) -> SourceError:
        detail = _describe(exc)
        if isinstance(exc, LoginError) or action == "login":
            text = f"login failed for {self.username} ({detail})"
        elif action == "select":
            text = f"cannot open folder {self.folder!r} ({detail})"
        elif action == "connect":
            text = detail
        else:
            text = f"{action} failed: {detail}"
        if self._password and len(self._password) > 2:
            text = text.replace(self._password, "***")
        return SourceError(f"IMAP {self.host}:{self.port}: {text}")


def _describe(exc: BaseException) -> str:
    """A short human reason: 'connection refused', 'timed out', the server's own words, …"""
    if isinstance(exc, ConnectionRefusedError):
        return "connection refused"
    if isinstance(exc, socket.gaierror):
        return f"cannot resolve host ({exc.strerror})"
    if isinstance(exc, TimeoutError | socket.timeout):
        return "timed out"
    if isinstance(exc, ssl.SSLCertVerificationError):
        return f"TLS certificate not trusted ({exc.verify_message})"
    if isinstance(exc, ssl.SSLError):
        return f"TLS error ({exc.reason or exc})"
    if isinstance(exc, imaplib.IMAP4.abort):
        return f"connection lost ({_server_text(exc)})"
    if isinstance(exc, OSError):
        return exc.strerror or str(exc) or type(exc).__name__
    return _server_text(exc) or type(exc).__name__


def _server_text(exc: BaseException) -> str:
    """imaplib wraps server replies as repr(bytes); unwrap "b'[AUTHENTICATIONFAILED] …'"."""
    text = str(exc.args[0] if exc.args else exc)
    if text.startswith(("b'", 'b"')) and text.endswith(text[1]):
        text = text[2:-1]
    return text.strip()


def _is_news(response: tuple) -> bool:
    if len(response) < 2:
        return False
    return response[1] == b"EXISTS" or (response[1] == b"RECENT" and response[0] != 0)


def _is_bye(response: tuple) -> bool:
    return len(response) >= 1 and response[0] == b"BYE"


def _compact(uids: Sequence[int]) -> str:
    """Sorted UIDs as an IMAP sequence set: [1, 2, 3, 7] -> "1:3,7"."""
    parts: list[str] = []
    start = prev = uids[0]
    for uid in uids[1:]:
        if uid != prev + 1:
            parts.append(f"{start}:{prev}" if prev != start else str(start))
            start = uid
        prev = uid
    parts.append(f"{start}:{prev}" if prev != start else str(start))
    return ",".join(parts)
