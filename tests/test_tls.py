"""Issue 10, transport security: IMAP and SMTP over TLS verify the certificate and the host name
by default; a private CA is trusted through `tls_ca_file`; a failed verification is one clear
line naming the server. Against the real Dovecot and aiosmtpd, each with its own certificate
(not in the system's trust store), implicit TLS and STARTTLS."""

from __future__ import annotations

import socket

import pytest

from tests.servers.smtp import SmtpServer
from tests.story import cli, imap_box, smtp_out, write_settings

ENV = "INBOXDESK_TEST_IMAP_PASSWORD"


def _other_name_for_loopback() -> str | None:
    """A host name of this machine that reaches 127.0.0.1 but is not in the test certificates."""
    name = socket.gethostname()
    try:
        return name if name not in ("localhost",) and socket.gethostbyname(name) == "127.0.0.1" else None
    except OSError:
        return None


@pytest.mark.parametrize("security", ["ssl", "starttls"])
def test_imap_and_smtp_verify_certificates_and_names(tmp_path, dovecot, imap_account, monkeypatch, security):
    monkeypatch.setenv(ENV, imap_account.password)
    imap_port = dovecot.ssl_port if security == "ssl" else dovecot.port
    with SmtpServer(tls=security) as smtp:
        def check(host: str = "127.0.0.1", ca: str = "") -> tuple[int, list[str]]:
            box = imap_box(dovecot, imap_account, ENV, host=host, port=imap_port, security=security)
            out = smtp_out(smtp, host=host, security=security)
            if ca:
                box["tls_ca_file"], out["tls_ca_file"] = str(dovecot.cert_path), str(smtp.cert_path)
            config = write_settings(tmp_path, f"sqlite:///{tmp_path / 'db.sqlite3'}", [box], out)
            status, text = cli(config, "check-config")
            return status, text.splitlines()

        status, lines = check()  # the system's trust store knows neither certificate
        assert status == 1 and len(lines) == 2, lines
        assert lines[0].startswith(f"ПРОБЛЕМА: mailbox help: IMAP 127.0.0.1:{imap_port}")
        assert "not trusted" in lines[0]
        assert lines[1].startswith(f"ПРОБЛЕМА: outbound: SMTP 127.0.0.1:{smtp.port}")
        assert "certif" in lines[1].lower()

        assert check(ca="private CA") == (0, ["настройки и все серверы в порядке"])

        other = _other_name_for_loopback()
        if other is None:
            pytest.skip("no second name for 127.0.0.1 on this machine for the wrong-host case")
        status, lines = check(host=other, ca="private CA")  # trusted certificate, wrong name
        assert status == 1 and len(lines) == 2, lines
        assert f"IMAP {other}:{imap_port}" in lines[0] and "hostname" in lines[0].lower()
        assert f"SMTP {other}:{smtp.port}" in lines[1] and "hostname" in lines[1].lower()


def test_a_missing_ca_file_is_named(tmp_path):
    config = write_settings(tmp_path, f"sqlite:///{tmp_path / 'db.sqlite3'}", [],
                            {"transport": "smtp", "host": "relay.example", "tls_ca_file": "ca/miac.pem"})
    status, out = cli(config, "check-config")
    missing = tmp_path / "ca" / "miac.pem"
    assert (status, out) == (1, f"ПРОБЛЕМА: outbound.tls_ca_file: no such file: {missing}\n")
