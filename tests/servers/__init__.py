"""Real servers the test suite starts itself: Dovecot (IMAP), aiosmtpd (SMTP), PostgreSQL databases."""

from __future__ import annotations

import os
import socket
import subprocess
import time
from pathlib import Path
from typing import NoReturn

import pytest

INSTALL_HINT = "run `sudo bash scripts/install-test-servers.sh`"


def unavailable(what: str) -> NoReturn:
    """Skip the test when a server is missing locally; fail under CI, where the setup must provide it."""
    message = f"{what} ({INSTALL_HINT})"
    if os.environ.get("CI"):
        pytest.fail(f"CI: {message}", pytrace=False)
    pytest.skip(message)


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port nobody listens on right now (the kernel picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


def port_open(host: str, port: int, timeout: float = 0.2) -> bool:
    """True when something accepts TCP connections on host:port."""
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def wait_port(host: str, port: int, timeout: float = 10.0, alive: subprocess.Popen | None = None) -> None:
    """Wait until host:port accepts connections; raise early if the `alive` process exits."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if port_open(host, port):
            return
        if alive is not None and alive.poll() is not None:
            raise RuntimeError(f"process exited with code {alive.returncode} before {host}:{port} opened")
        time.sleep(0.01)
    raise TimeoutError(f"{host}:{port} did not open within {timeout} s")


def self_signed_cert(directory: Path, common_name: str = "localhost") -> tuple[Path, Path]:
    """Write cert.pem and key.pem (self-signed, RSA 2048, no passphrase) into `directory`."""
    cert, key = directory / "cert.pem", directory / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
         "-subj", f"/CN={common_name}", "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1",
         "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True,
    )
    return cert, key
