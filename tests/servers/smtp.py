"""A real SMTP server (aiosmtpd) on a loopback port that captures what the code under test sends."""

from __future__ import annotations

import shutil
import ssl
import tempfile
import threading
import time
from dataclasses import dataclass, field
from email import message_from_bytes, policy
from email.message import EmailMessage
from pathlib import Path
from typing import Any, Literal

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword

from . import free_port, self_signed_cert

Mode = Literal["accept", "tempfail", "permfail"]
REPLIES: dict[str, str] = {
    "tempfail": "451 4.3.0 Temporary failure, try again later",
    "permfail": "550 5.7.1 Message rejected",
}


@dataclass(frozen=True)
class CapturedMessage:
    """One accepted message: the SMTP envelope, the bytes as received and their parsed form."""

    mail_from: str
    rcpt_tos: list[str]
    raw: bytes
    message: EmailMessage = field(repr=False)
    auth_login: str | None = None


class _Handler:
    def __init__(self, server: SmtpServer) -> None:
        self.server = server

    async def handle_MAIL(self, _smtp: Any, session: Any, envelope: Any, address: str,
                          mail_options: list[str]) -> str:
        if self.server.auth and not session.authenticated:
            return "530 5.7.0 Authentication required"
        envelope.mail_from = address
        envelope.mail_options.extend(mail_options)
        return "250 OK"

    async def handle_DATA(self, _smtp: Any, session: Any, envelope: Any) -> str:
        return self.server._receive(session, envelope)


class SmtpServer:
    """aiosmtpd in a thread; `stop()`/`start()` keep the port, `mode`/`fail_next()` simulate refusals.

    tls: "none", "starttls" (offered, not required) or "ssl" (implicit TLS); a self-signed certificate
    is made for it (`cert_path`). With `auth=(login, password)` AUTH PLAIN/LOGIN is required.
    """

    host = "127.0.0.1"

    def __init__(
        self,
        *,
        auth: tuple[str, str] | None = None,
        tls: Literal["none", "starttls", "ssl"] = "none",
        port: int | None = None,
    ) -> None:
        self.port = port or free_port()
        self.auth = auth
        self.tls = tls
        self.mode: Mode = "accept"
        self._fail_next: list[Mode] = []
        self._messages: list[CapturedMessage] = []
        self._cond = threading.Condition()
        self.attempts = 0  # DATA commands seen, refused ones included
        self._controller: Controller | None = None
        self._certdir: Path | None = None
        self.cert_path: Path | None = None
        self._ssl_context: ssl.SSLContext | None = None
        if tls != "none":
            self._certdir = Path(tempfile.mkdtemp(prefix="inboxdesk-smtp-", dir="/tmp"))
            self.cert_path, key = self_signed_cert(self._certdir)
            self._ssl_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
            self._ssl_context.load_cert_chain(self.cert_path, key)

    # --- lifecycle -------------------------------------------------------------------------------

    @property
    def running(self) -> bool:
        return self._controller is not None

    def start(self) -> None:
        """Listen on the same port again (a stopped aiosmtpd loop cannot restart: make a new one)."""
        if self._controller is not None:
            return
        kwargs: dict[str, Any] = {}
        if self.tls == "starttls":
            kwargs.update(tls_context=self._ssl_context, require_starttls=False)
        elif self.tls == "ssl":
            kwargs.update(ssl_context=self._ssl_context)
        if self.auth:
            # AUTH is required by handle_MAIL rather than aiosmtpd's auth_required, which warns on every
            # connection when TLS is not required too (plaintext AUTH on loopback is fine in tests).
            kwargs.update(authenticator=self._authenticate, auth_require_tls=False)
        controller = Controller(_Handler(self), hostname=self.host, port=self.port, **kwargs)
        controller.start()
        self._controller = controller

    def stop(self) -> None:
        """Close the listener and every open connection."""
        controller, self._controller = self._controller, None
        if controller is not None:
            controller.stop()

    def close(self) -> None:
        """Stop and remove the certificate directory."""
        self.stop()
        if self._certdir:
            shutil.rmtree(self._certdir, ignore_errors=True)

    def __enter__(self) -> SmtpServer:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- behaviour -------------------------------------------------------------------------------

    def fail_next(self, count: int, mode: Mode = "tempfail") -> None:
        """Refuse the next `count` messages with 451 (tempfail) or 550 (permfail), then use `mode`."""
        with self._cond:
            self._fail_next += [mode] * count

    def _authenticate(self, _server: Any, _session: Any, _envelope: Any, _mechanism: str,
                      auth_data: Any) -> AuthResult:
        if isinstance(auth_data, LoginPassword) and self.auth and (
            auth_data.login.decode(errors="replace"),
            auth_data.password.decode(errors="replace"),
        ) == self.auth:
            return AuthResult(success=True, auth_data=auth_data)
        # handled=False lets aiosmtpd answer 535 itself; handled=True would leave the client hanging.
        return AuthResult(success=False, handled=False)

    def _receive(self, session: Any, envelope: Any) -> str:
        with self._cond:
            self.attempts += 1
            mode = self._fail_next.pop(0) if self._fail_next else self.mode
            if mode != "accept":
                return REPLIES[mode]
            raw = envelope.original_content or envelope.content
            login = getattr(session, "auth_data", None)
            self._messages.append(CapturedMessage(
                mail_from=envelope.mail_from,
                rcpt_tos=list(envelope.rcpt_tos),
                raw=raw,
                message=message_from_bytes(raw, policy=policy.default),  # type: ignore[arg-type]
                auth_login=login.login.decode() if isinstance(login, LoginPassword) else None,
            ))
            self._cond.notify_all()
        return "250 2.0.0 OK"

    # --- assertions ------------------------------------------------------------------------------

    @property
    def messages(self) -> list[CapturedMessage]:
        """A snapshot of the accepted messages, in arrival order."""
        with self._cond:
            return list(self._messages)

    def clear(self) -> None:
        with self._cond:
            self._messages.clear()
            self.attempts = 0

    def wait_for(self, n: int, timeout: float = 5.0) -> list[CapturedMessage]:
        """Wait until at least `n` messages were accepted; raise TimeoutError otherwise."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while len(self._messages) < n:
                left = deadline - time.monotonic()
                if left <= 0:
                    got = len(self._messages)
                    raise TimeoutError(f"SMTP server got {got} of {n} messages in {timeout} s")
                self._cond.wait(left)
            return list(self._messages)
